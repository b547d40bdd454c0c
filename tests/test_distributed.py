"""A series over several machines, here processes: detector → ``mflow fanout`` → three
``mflow write --part K/3`` → one master over all parts, read back pixel-exact in order."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from .conftest import Tool, make_socket, send_messages, wait_until
from .test_hdf5_dectris import sent_images, series

h5py = pytest.importorskip("h5py")
pytest.importorskip("hdf5plugin")

pytestmark = pytest.mark.usefixtures("receive_path")

#: Images per block of the fan-out and per data file of the writers.
BLOCK = 2


def plain(messages: list[list[Any]]) -> list[list[bytes]]:
    return [[bytes(part) for part in parts] for parts in messages]


def own_images(part: int, parts: int, images: int) -> list[int]:
    """The frame numbers (from 0) the fan-out sends to writer ``part`` of ``parts``."""
    return [f for f in range(images) if f // BLOCK % parts == part - 1]


def flushed_images(path: Path) -> list[int]:
    """The image numbers a SWMR reader sees in the data file at ``path`` (none yet: [])."""
    try:
        with h5py.File(path, "r", swmr=True, locking=False) as f:
            return [int(n) for n in f["/entry/data/image_nr"][:]]
    except (OSError, KeyError):
        return []


class FannedOut:
    """A test detector (a PUSH socket), ``mflow fanout`` and one ``mflow write --part K/N``
    per output, all connected and ready."""

    def __init__(
        self,
        tools: Callable[..., Tool],
        zmq_context: zmq.Context,
        directory: Path,
        messages: list[list[bytes]],
        writer_messages: Sequence[int],
        *writer_options: str,
    ) -> None:
        parts = len(writer_messages)
        self.detector, source = make_socket(zmq_context, zmq.PUSH)
        self.fanout = tools(
            "fanout",
            source,
            *["tcp://*:*"] * parts,
            "--block",
            str(BLOCK),
            "-n",
            str(len(messages)),
            "--json",
            "-i",
            "0.1",
        )
        outputs = [self.fanout.endpoint("output") for _ in range(parts)]
        self.fanout.event("start")
        self.writers = {
            k: tools(
                "write",
                outputs[k - 1],
                str(directory),
                "--json",
                "-i",
                "0.1",
                "-n",
                str(count),
                "--frames-per-file",
                str(BLOCK),
                "--part",
                f"{k}/{parts}",
                *writer_options,
            )
            for k, count in enumerate(writer_messages, start=1)
        }
        for writer in self.writers.values():
            writer.event("start")
        # The detector starts once every writer is there (else its images go to the others).
        self.wait_for_outputs(lambda outputs: all(o["connected"] for o in outputs))

    def wait_for_outputs(self, condition: Callable[[list[dict[str, Any]]], bool]) -> None:
        """Wait for a fan-out progress line whose outputs meet ``condition``."""
        self.fanout.line(
            lambda line: '"progress"' in line and condition(json.loads(line)["outputs"])
        )


@pytest.mark.parametrize("kind", ["dectris", "stream2"])
def test_a_fanned_out_series_becomes_one_master_in_image_order(tools, zmq_context, tmp_path, kind):
    messages = plain(series(kind, 12))
    # Each writer gets the header, its 4 images (two data files) and the end.
    run = FannedOut(tools, zmq_context, tmp_path, messages, [6, 6, 6])
    send_messages(run.detector, messages)
    assert run.fanout.wait() == 0, run.fanout.stderr
    for writer in run.writers.values():
        assert writer.wait() == 0, writer.stderr
    summary = run.fanout.summary()
    assert [o["images"] for o in summary["outputs"]] == [4, 4, 4]
    written = {k: w.summary()["images_written"] for k, w in run.writers.items()}
    assert written == {1: 4, 2: 4, 3: 4}
    with h5py.File(tmp_path / "series_1_master.h5") as f:
        np.testing.assert_array_equal(f["/entry/data/data"][:], np.stack(sent_images(messages)))


def test_a_writer_killed_mid_series_leaves_a_master_that_names_the_missing_frames(
    tools, zmq_context, tmp_path
):
    images = 24
    messages = plain(series("dectris", images))
    victim = 2  # not part 1, which writes the master
    before = [f for f in own_images(victim, 3, images) if f < 10]  # its first two blocks
    after = [f for f in own_images(victim, 3, images) if f >= 10]
    # Its first data file was closed when it opened the second; that one stays open for
    # writing when the part is killed, which makes it unreadable but to SWMR readers.
    missing_frames = before[BLOCK:] + after
    # Part 1 gets the header, its 8 images and the end; part 3 also the victim's later
    # images (it is the output after the victim's), which are not its to write. Part 1
    # waits for the other parts' images at the end, not for ever.
    counts = [10, 100, 10 + len(after)]
    run = FannedOut(tools, zmq_context, tmp_path, messages, counts, "--parts-wait", "5")
    send_messages(run.detector, messages[: 1 + 10])
    # Killed once its open data file shows its images to a SWMR reader (it flushed them).
    open_file = tmp_path / f"series_1_data_{before[BLOCK] // BLOCK + 1:06d}.h5"
    wait_until(lambda: flushed_images(open_file) == [f + 1 for f in before[BLOCK:]], what="flush")
    run.writers[victim].process.send_signal(signal.SIGKILL)
    run.wait_for_outputs(lambda outputs: not outputs[victim - 1]["connected"])
    send_messages(run.detector, messages[1 + 10 :])

    assert run.fanout.wait() == 1, run.fanout.stderr  # a consumer left mid-series
    assert run.writers[1].wait() == 0 and run.writers[3].wait() == 0
    outputs = run.fanout.summary()["outputs"]
    gone = outputs[victim - 1]
    assert gone["left_mid_series"] == 1 and not gone["connected"]
    assert gone["images"] == len(before) and gone["ends"] == 0 and gone["missed"] == 1
    assert outputs[2]["rerouted"] == len(after) and outputs[0]["rerouted"] == 0
    assert run.writers[3].summary()["other_parts"] == len(after)
    master = run.writers[1].summary()["series"]
    assert master[0]["ended"] and master[0]["missing"] == len(missing_frames)

    sent = sent_images(messages)
    with h5py.File(tmp_path / "series_1_master.h5") as f:
        data = f["/entry/data/data"]
        missing = set(f["/entry/instrument/detector/detectorSpecific/missing_images"][:])
        assert data.shape[0] == images
        assert missing == {f + 1 for f in missing_frames}  # image numbers, from 1
        fill = np.iinfo(data.dtype).max
        for frame in range(images):
            if frame in missing_frames:
                assert (data[frame] == fill).all(), frame
            else:
                np.testing.assert_array_equal(data[frame], sent[frame])
