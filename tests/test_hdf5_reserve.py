"""mflow.hdf5._reserve: disk space reserved ahead of a growing data file, then given back."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

pytest.importorskip("h5py")
pytest.importorskip("hdf5plugin")

from mflow import codecs  # noqa: E402
from mflow.hdf5 import DectrisWriter, _reserve, dectris  # noqa: E402

MIB = 2**20


def allocated(path: str) -> int:
    return os.stat(path).st_blocks * 512


def reserving_directory(tmp_path) -> str:
    if _reserve._reserving_fallocate(str(tmp_path)) is None:
        pytest.skip(f"{tmp_path} is on a file system where no space is reserved")
    return str(tmp_path)


def test_space_is_reserved_past_the_end_and_given_back(tmp_path):
    path = os.path.join(reserving_directory(tmp_path), "growing")
    with open(path, "wb", buffering=0) as f:
        reservation = _reserve.SpaceReservation(path, 4 * MIB)
        assert os.path.getsize(path) == 0 and allocated(path) >= 4 * MIB
        for _ in range(12):
            f.write(bytes(MIB))
            reservation.wrote(MIB)
        assert os.path.getsize(path) == 12 * MIB  # readers see only what was written
        assert allocated(path) > 12 * MIB
    reservation.release()
    assert os.path.getsize(path) == 12 * MIB
    assert allocated(path) < 12 * MIB + MIB


def test_a_reservation_that_fails_ends_the_reserving_and_the_writes_go_on(tmp_path, monkeypatch):
    path = os.path.join(tmp_path, "growing")
    calls = []
    monkeypatch.setattr(
        _reserve, "_reserving_fallocate", lambda _: lambda *args: calls.append(args) or -1
    )
    with open(path, "wb", buffering=0) as f:
        reservation = _reserve.SpaceReservation(path, MIB)
        for _ in range(4):
            f.write(bytes(MIB))
            reservation.wrote(MIB)
    reservation.release()
    assert len(calls) == 1  # the first refusal ends it
    assert os.path.getsize(path) == 4 * MIB


def test_what_a_failed_reservation_took_is_given_back(tmp_path, monkeypatch):
    """A full disk keeps the blocks a reservation got before it failed."""
    path = os.path.join(reserving_directory(tmp_path), "growing")
    real = _reserve._reserving_fallocate(str(tmp_path))
    assert real is not None

    def takes_then_fails(*args: int) -> int:
        assert real(*args) == 0
        return -1

    monkeypatch.setattr(_reserve, "_reserving_fallocate", lambda _: takes_then_fails)
    open(path, "wb").close()
    reservation = _reserve.SpaceReservation(path, 4 * MIB)
    assert allocated(path) >= 4 * MIB
    reservation.release()
    assert allocated(path) == 0


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm here")
def test_nothing_is_reserved_in_memory():
    with tempfile.TemporaryDirectory(dir="/dev/shm") as directory:
        assert _reserve._reserving_fallocate(directory) is None  # it costs more than it saves


def test_a_data_file_holds_no_reserved_space_once_the_series_is_written(tmp_path, monkeypatch):
    directory = reserving_directory(tmp_path)
    monkeypatch.setattr(dectris, "RESERVE_AHEAD", 2 * MIB)
    image = np.random.default_rng(0).integers(0, 2**16, (256, 256), dtype=np.uint16)
    blob = codecs.encode_bslz4(image)
    writer = DectrisWriter(directory, name="series")
    writer.write("dheader-1.0", {"header": {"htype": "dheader-1.0", "series": 1}})
    for frame in range(20):
        writer.write(
            "dimage-1.0",
            {
                "header": {"htype": "dimage-1.0", "series": 1, "frame": frame},
                "part_2": {"shape": [256, 256], "type": "uint16", "encoding": "bs16-lz4<"},
                "part_3_raw": blob,
            },
        )
    data_file = os.path.join(directory, "series_data_000001.h5")
    assert allocated(data_file) > os.path.getsize(data_file)  # reserved while written
    writer.close()
    assert allocated(data_file) < os.path.getsize(data_file) + MIB
