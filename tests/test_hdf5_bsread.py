"""bsread and array-1.0 streams to HDF5: the ``bs h5`` layout and a growing array file."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
pytest.importorskip("hdf5plugin")

from mflow.synthetic import SOURCES, Spec, encode_with
from mflow.hdf5 import StreamWriter

from .test_hdf5_dectris import decoded, received


def write_all(directory: Path, messages: list) -> StreamWriter:
    writer = StreamWriter(str(directory))
    for parts in messages:
        writer.write(*received(parts))
    writer.close()
    return writer


@pytest.mark.parametrize("compression", ["none", "lz4", "bslz4"])
def test_bsread_channels_of_every_type_are_written(tmp_path: Path, compression: str) -> None:
    messages = list(itertools.islice(SOURCES["bsread"](Spec(compression=compression)), 5))
    writer = write_all(tmp_path, messages)
    assert writer.bsread.messages_written == 5 and not writer.bsread.discarded
    sent = [decoded(parts) for parts in messages]
    with h5py.File(tmp_path / "series_1.h5") as f:
        assert list(f["pulse_id"][:]) == [m["pulse_id"] for m in sent]
        for channel in sent[0]["data"]:
            rows = f[f"{channel}/data"]
            assert rows.shape[0] == 5
            for index, message in enumerate(sent):
                expected = message["data"][channel]
                if isinstance(expected, str):
                    assert rows[index].decode() == expected
                else:
                    np.testing.assert_array_equal(rows[index], expected)
            assert list(f[f"{channel}/pulse_id"][:]) == [m["pulse_id"] for m in sent]
            seconds, nanoseconds = sent[0]["timestamps"][channel]
            assert f[f"{channel}/timestamp"][0] == seconds
            assert f[f"{channel}/timestamp_offset"][0] == nanoseconds
        image = f["SIM:IMAGE/data"]
        assert image.shape == (5, 64, 64)
        assert image.id.get_create_plist().get_filter(0)[0] == 32008


def test_a_data_header_change_adds_and_stops_channels(tmp_path: Path) -> None:
    def message(pulse: int, channels: dict) -> list:
        return encode_with("bsr_m-1.1", {"pulse_id": pulse, "data": channels})

    messages = [
        message(0, {"A": 1.0}),
        message(1, {"A": 2.0, "B": "text"}),
        message(2, {"B": "more"}),
    ]
    writer = StreamWriter(str(tmp_path))
    writer.write(*received(messages[0]))
    with h5py.File(tmp_path / "series_1.h5", "r", swmr=True) as f:
        writer.flush()
        assert "B" not in f
    for parts in messages[1:]:
        writer.write(*received(parts))
    writer.close()
    with h5py.File(tmp_path / "series_1.h5") as f:
        assert list(f["A/data"][:]) == [1.0, 2.0] and list(f["A/pulse_id"][:]) == [0, 1]
        assert [v.decode() for v in f["B/data"][:]] == ["text", "more"]
        assert list(f["pulse_id"][:]) == [0, 1, 2]


def test_array_messages_grow_one_dataset_with_frame_numbers(tmp_path: Path) -> None:
    messages = list(itertools.islice(SOURCES["array"](Spec(shape=(16, 24))), 6))
    restarted = list(itertools.islice(SOURCES["array"](Spec(shape=(16, 24))), 2))
    writer = write_all(tmp_path, messages + restarted)
    assert writer.array.arrays_written == 8
    with h5py.File(tmp_path / "series_1.h5") as f:
        data = f["/entry/data/data"]
        assert data.shape == (6, 16, 24)
        for index, parts in enumerate(messages):
            np.testing.assert_array_equal(data[index], decoded(parts)["data"][0])
        assert list(f["/entry/data/frame"][:]) == list(range(6))
    with h5py.File(tmp_path / "series_2.h5") as f:  # the producer restarted: a new file
        assert list(f["/entry/data/frame"][:]) == [0, 1]
