"""A series over several machines, here processes: detector → ``mflow fanout`` → three
``mflow write --part K/3`` → one master over all parts, read back pixel-exact in order."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zmq

from .conftest import make_socket, send_messages
from .test_hdf5_dectris import sent_images, series

h5py = pytest.importorskip("h5py")
pytest.importorskip("hdf5plugin")

pytestmark = pytest.mark.usefixtures("receive_path")


def _plain(messages):
    return [[bytes(part) for part in parts] for parts in messages]


@pytest.mark.parametrize("kind", ["dectris", "stream2"])
def test_a_fanned_out_series_becomes_one_master_in_image_order(tools, zmq_context, tmp_path, kind):
    messages = _plain(series(kind, 12))
    detector, source = make_socket(zmq_context, zmq.PUSH)
    fanout = tools(
        "fanout",
        source,
        "tcp://*:*",
        "tcp://*:*",
        "tcp://*:*",
        "--block",
        "2",
        "-n",
        str(len(messages)),
        "--json",
        "-i",
        "0.1",
    )
    outputs = [fanout.event("output")["endpoint"].replace("0.0.0.0", "127.0.0.1") for _ in range(3)]
    fanout.event("start")
    # Each writer gets the header, its 4 images (two data files) and the end.
    writers = {
        k: tools(
            "write",
            outputs[k - 1],
            str(tmp_path),
            "--json",
            "-n",
            "6",
            "--frames-per-file",
            "2",
            "--part",
            f"{k}/3",
        )
        for k in (1, 2, 3)
    }
    for writer in writers.values():
        writer.event("start")
    # The detector starts once every writer is there (else its images go to the others).
    fanout.line(
        lambda line: (
            '"progress"' in line and all(o["connected"] for o in json.loads(line)["outputs"])
        )
    )
    send_messages(detector, messages)
    assert fanout.wait() == 0, fanout.stderr
    for writer in writers.values():
        assert writer.wait() == 0, writer.stderr
    summary = fanout.summary()
    assert [o["images"] for o in summary["outputs"]] == [4, 4, 4]
    written = {k: w.summary()["images_written"] for k, w in writers.items()}
    assert written == {1: 4, 2: 4, 3: 4}
    with h5py.File(tmp_path / "series_1_master.h5") as f:
        np.testing.assert_array_equal(f["/entry/data/data"][:], np.stack(sent_images(messages)))
