"""mflow.synthetic: every source yields messages its own decoder takes, as real producers send."""

from __future__ import annotations

import hashlib
import itertools
import json

import numpy as np
import pytest

import mflow
from mflow import synthetic
from mflow.dispatch import dispatch_key
from mflow.errors import ConfigurationError
from mflow.receiver import ReceiveHandler

from .conformance import decode


def decoded(parts: list) -> object:
    """``parts`` decoded (strictly) by the handler the dispatcher picks for them."""
    receiver = ReceiveHandler(None)
    receiver.load([bytes(memoryview(part)) for part in parts])
    handler = mflow.get_handler(dispatch_key(receiver))
    return decode(handler, [bytes(memoryview(part)) for part in parts])


SMALL = {
    "raw": synthetic.Spec(size=100),
    "array": synthetic.Spec(shape=(8, 4)),
    "dectris": synthetic.Spec(shape=(8, 6), images=3),
    "stream2": synthetic.Spec(shape=(8, 6), images=3),
    "bsread": synthetic.Spec(),
    "sls": synthetic.Spec(shape=(8, 6), images=3),
}


def test_every_source_has_a_small_spec_here():
    assert set(SMALL) == set(synthetic.SOURCES)


@pytest.mark.parametrize("kind", list(SMALL))
def test_every_message_of_two_series_decodes(kind):
    first, messages = synthetic.make_source(kind, SMALL[kind])
    batch = list(itertools.islice(messages, 10))
    assert batch[0] == first
    assert all(decoded(parts) is not None for parts in batch)


def _dectris_series(compression: str, dtype: str = "uint16") -> list[list]:
    spec = synthetic.Spec(shape=(8, 6), images=5, compression=compression, dtype=dtype)
    return list(itertools.islice(synthetic.dectris_messages(spec), 7))


def test_dectris_configuration_has_what_real_consumers_require():
    header = _dectris_series("bslz4")[0]
    config = json.loads(bytes(header[1]))
    assert config["trigger_mode"] == "ints"
    assert config["nimages"] == 5 and config["ntrigger"] == 1
    assert (config["x_pixels_in_detector"], config["y_pixels_in_detector"]) == (6, 8)
    assert config["bit_depth_image"] == 16 and config["compression"] == "bslz4"


@pytest.mark.parametrize("compression", synthetic.COMPRESSIONS)
def test_dectris_image_hash_is_the_md5_of_the_data_part(compression):
    for parts in _dectris_series(compression)[1:-1]:
        header = json.loads(bytes(parts[0]))
        assert header["hash"] == hashlib.md5(bytes(parts[2])).hexdigest()


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32"])
@pytest.mark.parametrize("compression", synthetic.COMPRESSIONS)
def test_dectris_images_are_the_detector_images_cycled(compression, dtype):
    expected = synthetic.detector_images((8, 6), dtype)
    images = [decoded(parts)["image"] for parts in _dectris_series(compression, dtype)[1:-1]]
    for index, image in enumerate(images):
        np.testing.assert_array_equal(image, expected[index % len(expected)])


def test_detector_images_are_deterministic_and_realistic():
    first, again = (
        synthetic.detector_images((64, 64), "uint16", count=2),
        synthetic.detector_images((64, 64), "uint16", count=2),
    )
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], first[1])
    assert first[0].max() == np.iinfo(np.uint16).max  # a hot pixel
    assert 2 <= np.median(first[0]) < 100


def test_a_bad_spec_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="two dimensions"):
        synthetic.make_source("dectris", synthetic.Spec(shape=(4, 4, 4)))


def test_dectris_headers_carry_an_eiger_geometry():
    config = json.loads(bytes(_dectris_series("bslz4")[0][1]))
    assert {k: config[k] for k in ("detector_distance", "wavelength", "beam_center_x")} == {
        "detector_distance": 0.12,
        "wavelength": 1.0,
        "beam_center_x": 3.0,
    }
    assert (config["omega_start"], config["omega_increment"]) == (0.0, 0.1)
    start = decoded(next(synthetic.stream2_messages(synthetic.Spec(shape=(8, 6)))))
    assert start["detector_translation"] == [0.0, 0.0, 0.12]
    assert start["incident_wavelength"] == 1.0 and start["beam_center_y"] == 4.0
    assert start["goniometer"] == {"omega": {"start": 0.0, "increment": 0.1}}
