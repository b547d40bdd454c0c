"""SLS Detector Package receiver stream: golden bytes, every bitmode, end of acquisition,
size checks and sending."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mflow
from mflow import dispatch
from mflow.errors import ConfigurationError, MalformedMessageError
from mflow.handlers.sls import Handler, decode_image, encode_image
from mflow.receiver import ReceiveHandler

from .conformance import assert_same, decode, encode, load_golden
from .fixtures.cases import CASES

pytestmark = pytest.mark.usefixtures("receive_path")

SLS_CASES = sorted(name for name in CASES if name.startswith("sls_"))


def header(bitmode: int, x: int, y: int, size: int, **extra) -> dict:
    return {"jsonversion": 5, "bitmode": bitmode, "shape": [x, y], "size": size, "data": 1, **extra}


def frames(head: dict, *parts: bytes) -> list[bytes]:
    return [json.dumps(head).encode(), *parts]


# -- golden fixtures and round trips ----------------------------------------------------


def test_registered_under_the_sls_dispatch_key():
    assert mflow.get_handler(dispatch.SLS) is Handler


# -- bitmodes ---------------------------------------------------------------------------


@pytest.mark.parametrize("bitmode, dtype", [(8, "<u1"), (16, "<u2"), (32, "<u4")])
def test_whole_byte_bitmodes_are_views_in_y_x_order(bitmode, dtype):
    image = np.arange(1024 * 2, dtype=dtype).reshape(2, 1024)
    blob = image.tobytes()
    decoded = decode_image(header(bitmode, 1024, 2, len(blob)), memoryview(blob))
    assert decoded.dtype == np.dtype(dtype) and decoded.shape == (2, 1024)
    assert np.shares_memory(decoded, np.frombuffer(blob, np.uint8))
    np.testing.assert_array_equal(decoded, image)


def test_4_bit_pixels_come_high_nibble_first():
    decoded = decode_image(header(4, 3, 2, 3), b"\x12\x34\x5f")
    np.testing.assert_array_equal(decoded, [[1, 2, 3], [4, 5, 15]])
    assert decoded.dtype == np.uint8


def test_12_bit_pixels_pack_two_in_three_bytes():
    # 0xabc, 0x123 | 0xfff, 0x001 | 0x800
    blob = bytes([0xBC, 0x3A, 0x12, 0xFF, 0x1F, 0x00, 0x00, 0x08])
    decoded = decode_image(header(12, 5, 1, len(blob)), blob)
    np.testing.assert_array_equal(decoded, [[0xABC, 0x123, 0xFFF, 0x001, 0x800]])
    assert decoded.dtype == np.uint16


@pytest.mark.parametrize("bitmode, dtype", [(4, "u1"), (12, "<u2")])
@pytest.mark.parametrize("x, y", [(4, 2), (5, 3), (1, 1), (0, 0)])
def test_packed_bitmodes_round_trip(bitmode, dtype, x, y):
    image = np.random.default_rng(x).integers(0, 1 << bitmode, (y, x)).astype(dtype)
    blob = bytes(encode_image(image, bitmode))
    assert len(blob) == (x * y * bitmode + 7) // 8
    np.testing.assert_array_equal(decode_image(header(bitmode, x, y, len(blob)), blob), image)


def test_end_of_acquisition_has_no_image():
    end = {"jsonversion": 5, "bitmode": 0, "shape": [0, 0], "size": 0, "data": 0}
    assert decode(Handler, frames(end)) == {"header": end, "image": None}


# -- malformed messages -----------------------------------------------------------------


@pytest.mark.parametrize(
    "parts",
    [
        frames(header(16, 4, 2, 16), b"\x00" * 15),
        frames(header(16, 4, 2, 16), b"\x00" * 17),
        frames(header(16, 4, 2, 15), b"\x00" * 16),
        frames(header(4, 4, 2, 4), b"\x00" * 5),
        frames(header(12, 4, 2, 12), b"\x00" * 11),
        frames(header(24, 4, 2, 24), b"\x00" * 24),
        frames(header("16", 4, 2, 16), b"\x00" * 16),
        frames({**header(16, 4, 2, 16), "shape": [4]}, b"\x00" * 16),
        frames({**header(16, 4, 2, 16), "shape": [4, -2]}, b"\x00" * 16),
    ],
    ids=[
        "short part",
        "long part",
        "header size disagrees",
        "4-bit size",
        "12-bit size",
        "unsupported bitmode",
        "bitmode text",
        "shape not x, y",
        "negative size",
    ],
)
def test_an_image_that_cannot_be_decoded_is_none_and_named(parts):
    receiver = ReceiveHandler(None)
    receiver.load(parts)
    message = Handler.receive(receiver)
    assert message["image"] is None and message["header"]["jsonversion"] == 5
    assert message["image_error"].startswith("MalformedMessageError")
    assert message["payload_errors"] == {"image": message["image_error"]}
    assert receiver.statistics.payload_errors == {"malformed": 1}


@pytest.mark.parametrize(
    "parts",
    [
        frames(header(16, 4, 2, 16)),
        frames(header(16, 4, 2, 16), b"\x00" * 16, b""),
        [b"[1, 2]", b"\x00"],
    ],
    ids=["missing image", "extra part", "header not an object"],
)
def test_malformed_messages_raise(parts):
    with pytest.raises(MalformedMessageError):
        decode(Handler, parts)


def test_unsupported_bitmode_is_named_in_the_error():
    with pytest.raises(MalformedMessageError, match="unsupported SLS bitmode 24"):
        decode_image(header(24, 1, 1, 3), b"\x00" * 3)


def test_a_bad_image_is_delivered_as_none_and_the_next_one_decodes(stream_pair):
    sender, receiver = stream_pair()
    sender.send_multipart(frames(header(16, 4, 2, 16), b"\x00" * 15))
    sender.send_multipart(load_golden("sls_jungfrau_16bit"))
    assert receiver.receive().data["image"] is None
    assert receiver.statistics.payload_errors["malformed"] == 1
    assert_same(receiver.receive().data, CASES["sls_jungfrau_16bit"]()[2])


def test_a_strict_stream_raises_for_a_bad_image(stream_pair):
    sender, receiver = stream_pair(strict=True)
    sender.send_multipart(frames(header(16, 4, 2, 16), b"\x00" * 15))
    with pytest.raises(MalformedMessageError):
        receiver.receive()
    assert receiver.statistics.skipped["malformed"] == 1


def test_unpacking_stays_within_the_decoded_bytes_budget(stream_factory):
    sender = stream_factory("tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUSH)
    receiver = stream_factory(sender.endpoint, max_decoded_bytes=15)
    sender.send_multipart(frames(header(4, 4, 2, 4), b"\x12" * 4))  # 8 pixels, 8 bytes
    sender.send_multipart(frames(header(12, 4, 2, 12), b"\x00" * 12))  # 8 pixels, 16 bytes
    assert receiver.receive().data["image"].shape == (2, 4)
    assert receiver.receive().data["image"] is None
    assert receiver.statistics.payload_errors == {"decoded_size": 1}


# -- sending ----------------------------------------------------------------------------


def test_send_sets_shape_size_bitmode_and_jsonversion():
    parts = encode(Handler, {"header": {"frameIndex": 3}, "image": np.zeros((2, 5), "<u4")})
    assert json.loads(parts[0]) == {
        "jsonversion": 5,
        "frameIndex": 3,
        "bitmode": 32,
        "shape": [5, 2],
        "size": 40,
    }
    assert parts[1] == b"\x00" * 40


def test_send_end_of_acquisition_is_one_part():
    parts = encode(Handler, {"header": {"jsonversion": 5, "frameIndex": 0}, "image": None})
    assert [json.loads(part) for part in parts] == [{"jsonversion": 5, "frameIndex": 0, "data": 0}]


@pytest.mark.parametrize(
    "message",
    [
        {"header": {"bitmode": 4}, "image": np.full((2, 2), 16, "u1")},
        {"header": {"bitmode": 12}, "image": np.full((2, 2), 4096, "<u2")},
        {"header": {"bitmode": 12}, "image": np.full((2, 2), -1, "<i2")},
        {"header": {"bitmode": 24}, "image": np.zeros((2, 2), "<u4")},
        {"header": {}, "image": np.zeros(4, "<u2")},
    ],
    ids=["4-bit overflow", "12-bit overflow", "negative", "unsupported bitmode", "not 2-D"],
)
def test_sending_what_the_bitmode_cannot_carry_is_a_configuration_error(message):
    with pytest.raises(ConfigurationError):
        encode(Handler, message)
