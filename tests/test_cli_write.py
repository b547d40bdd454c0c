"""``mflow write``: a stream over a real socket to files, summary, refusals, a full disk."""

from __future__ import annotations

import json
import resource
import signal

import numpy as np
import pytest
import zmq

from .conftest import invoke, make_socket, send_messages, wait_until as wait_for
from .test_hdf5_dectris import sent_images, series

h5py = pytest.importorskip("h5py")

pytestmark = pytest.mark.usefixtures("receive_path")


@pytest.fixture
def source(zmq_context):
    """A bound PUSH socket for the writer to connect to, and its endpoint."""
    return make_socket(zmq_context, zmq.PUSH)


def _plain(messages):
    return [[bytes(part) for part in parts] for parts in messages]


@pytest.mark.parametrize("kind", ["dectris", "stream2"])
def test_write_makes_a_master_and_data_files(tools, source, tmp_path, kind):
    push, endpoint = source
    messages = _plain(series(kind, 5))
    write = tools(
        "write",
        endpoint,
        str(tmp_path),
        "-n",
        str(len(messages)),
        "--json",
        "--frames-per-file",
        "2",
        "--name",
        "run_{series}",
    )
    write.event("start")
    send_messages(push, messages)
    assert write.wait() == 0, write.stderr
    summary = write.summary()
    assert summary["images_written"] == 5 and summary["discarded"] == {}
    assert summary["series"] == [
        {
            "series": 1,
            "master": str(tmp_path / "run_1_master.h5"),
            "images": 5,
            "missing": 0,
            "ended": True,
        }
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "run_1_data_000001.h5",
        "run_1_data_000002.h5",
        "run_1_data_000003.h5",
        "run_1_master.h5",
    ]
    with h5py.File(tmp_path / "run_1_master.h5") as f:
        np.testing.assert_array_equal(f["/entry/data/data"][:], np.stack(sent_images(messages)))


def test_existing_files_are_an_error_without_overwrite(tools, source, tmp_path):
    push, endpoint = source
    (tmp_path / "series_1_master.h5").write_bytes(b"keep")
    write = tools("write", endpoint, str(tmp_path), "--json")
    write.event("start")
    send_messages(push, _plain(series("dectris", 1))[:1])
    assert write.wait() == 1
    assert write.stderr.startswith("Error: '") and "exists" in write.stderr
    assert write.stderr.count("\n") == 1
    assert (tmp_path / "series_1_master.h5").read_bytes() == b"keep"


def _rows(path) -> int:
    try:
        with h5py.File(path, "r", swmr=True) as f:
            return f["/entry/data/data"].shape[0]
    except (OSError, KeyError):
        return 0


def _master_images(path) -> int:
    """The images the master at ``path`` maps (0 while there is none)."""
    try:
        with h5py.File(path, "r", swmr=True) as f:
            return f["/entry/data/data"].shape[0]
    except (OSError, KeyError):
        return 0


def test_after_kill_9_the_master_reads_every_flushed_image(tools, source, tmp_path):
    push, endpoint = source
    messages = _plain(series("stream2", 12))
    write = tools("write", endpoint, str(tmp_path), "--json", "--frames-per-file", "3")
    write.event("start")
    send_messages(push, messages[:6])  # start and five images of twelve
    master = tmp_path / "series_1_master.h5"
    wait_for(lambda: _master_images(master) == 5, what="a master over five images")
    send_messages(push, messages[6:8])
    wait_for(lambda: _master_images(master) == 7, what="the master brought up to date")
    write.signal(signal.SIGKILL)
    assert write.wait() == -signal.SIGKILL
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "series_1_data_000001.h5",
        "series_1_data_000002.h5",
        "series_1_data_000003.h5",
        "series_1_master.h5",
    ]
    with h5py.File(master, "r", swmr=True) as f:
        np.testing.assert_array_equal(f["/entry/data/data"][:], np.stack(sent_images(messages)[:7]))
        specific = f["/entry/instrument/detector/detectorSpecific"]
        assert list(specific["missing_images"][:]) == list(range(8, 13))
        assert specific["images_written"][()] == 7
        assert f["/entry/sample/transformations/omega"].shape == (7,)
    # A reader without SWMR is refused with an error, never given fill values.
    with h5py.File(master, "r") as f, pytest.raises(OSError, match="open for write"):
        f["/entry/data/data"][:]


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))


def test_full_disk_is_one_error_line_and_flushed_images_stay_readable(tools, source, tmp_path):
    push, endpoint = source
    messages = _plain(series("dectris", 150, compression="none"))
    write = tools(
        "write",
        endpoint,
        str(tmp_path),
        "--compression",
        "none",
        "--json",
        "-i",
        "0",
        preexec_fn=_limit_file_size,
    )
    write.event("start")
    send_messages(push, messages[:21])
    path = tmp_path / "series_1_data_000001.h5"
    wait_for(lambda: _rows(path) == 20, what="20 images flushed")
    send_messages(push, messages[21:])
    assert write.wait() == 1
    assert write.stderr.startswith("Error: cannot write to"), write.stderr
    assert write.stderr.count("\n") == 1
    # The writer could not close it: a SWMR reader opens it (as after kill -9).
    with h5py.File(tmp_path / "series_1_data_000001.h5", "r", swmr=True) as f:
        data = f["/entry/data/data"]
        rows = data.shape[0]
        assert rows >= 20
        np.testing.assert_array_equal(data[:20], np.stack(sent_images(messages)[:20]))


def test_three_parts_make_one_master_in_image_order(tools, zmq_context, tmp_path):
    messages = _plain(series("dectris", 7))
    writers = []
    for k in (3, 2, 1):  # part 1 last: its master maps the files the others wrote
        push, endpoint = make_socket(zmq_context, zmq.PUSH)
        write = tools(
            "write",
            endpoint,
            str(tmp_path),
            "-n",
            str(len(messages)),
            "--json",
            "--frames-per-file",
            "2",
            "--part",
            f"{k}/3",
        )
        write.event("start")
        send_messages(push, messages)
        assert write.wait() == 0, write.stderr
        writers.append(write.summary())
    assert [w["images_written"] for w in writers] == [2, 2, 3]
    assert [w["other_parts"] for w in writers] == [5, 5, 4]
    with h5py.File(tmp_path / "series_1_master.h5") as f:
        np.testing.assert_array_equal(f["/entry/data/data"][:], np.stack(sent_images(messages)))
        assert sorted(k for k in f["/entry/data"] if k.startswith("data_")) == [
            f"data_{n:06d}" for n in range(1, 5)
        ]


def test_a_bad_part_is_a_usage_error(tmp_path):
    result = invoke("write", "tcp://127.0.0.1:5", str(tmp_path), "--part", "4/3")
    assert result.exit_code == 2 and "K/N" in result.stderr


def _contents(path) -> dict:
    """Every dataset's value and every attribute of the file at ``path``, comparable."""

    def plain(value):
        return np.asarray(value).tolist()

    contents = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, item: contents.update(
                {
                    name: (
                        plain(item[()]) if isinstance(item, h5py.Dataset) else None,
                        {k: plain(v) for k, v in item.attrs.items()},
                    )
                }
            )
        )
        contents["links"] = sorted(f["/entry/data"])
    return contents


def _three_parts(tmp_path, messages) -> None:
    from mflow.hdf5 import DectrisWriter

    from .test_hdf5_dectris import NAMES, received

    for k in (3, 2, 1):  # part 1 last: its master maps the files the others wrote
        writer = DectrisWriter(str(tmp_path), names=NAMES, frames_per_file=2, part=(k, 3))
        for parts in messages:
            writer.write(*received(parts))
        writer.close()


def test_write_master_recreates_the_master_from_the_parts_data_files(tmp_path):
    messages = series("dectris", 7, header_detail="all")
    _three_parts(tmp_path, messages)
    master = tmp_path / "series_1_master.h5"
    written = _contents(master)
    assert "entry/instrument/detector/detectorSpecific/pixel_mask" in written
    master.unlink()
    result = invoke("write", "--master", str(tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    assert _contents(master) == written
    summary = [json.loads(line) for line in result.stdout.splitlines()][-1]
    assert summary["event"] == "summary"
    assert [(m["master"], m["images"], m["missing"]) for m in summary["masters"]] == [
        (str(master), 7, [])
    ]
    again = invoke("write", "--master", str(tmp_path))
    assert again.exit_code == 1 and "exists" in again.stderr  # only with --overwrite


@pytest.mark.parametrize("kind", ["dectris", "stream2"])
def test_write_master_names_the_images_of_a_missing_part(tmp_path, kind):
    messages = _plain(series(kind, 7, **({"header_detail": "all"} if kind == "dectris" else {})))
    _three_parts(tmp_path, messages)
    # Part 1 (data files 1 and 4: images 1, 2 and 7, the master, the header's arrays) lost.
    for name in ("series_1_data_000001.h5", "series_1_data_000004.h5", "series_1_master.h5"):
        (tmp_path / name).unlink()
    result = invoke("write", "--master", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert "4 images from 2 data files, 3 missing (1-2, 7)" in result.stdout, result.stdout
    with h5py.File(tmp_path / "series_1_master.h5") as f:
        data = f["/entry/data/data"]
        np.testing.assert_array_equal(data[2:6], np.stack(sent_images(messages)[2:6]))
        assert (data[:2] == np.iinfo(data.dtype).max).all()
        specific = f["/entry/instrument/detector/detectorSpecific"]
        assert list(specific["missing_images"][:]) == [1, 2, 7]
        assert ("pixel_mask" in specific) == (kind == "dectris")
        assert f["/entry/instrument/detector/distance"][()] == 0.12
        assert sorted(k for k in f["/entry/data"] if k.startswith("data_")) == [
            "data_000002",
            "data_000003",
        ]
