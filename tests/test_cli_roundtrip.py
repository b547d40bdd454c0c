"""dump → replay → dump reproduces 100,000 mixed messages byte for byte, in both formats.

The folder format writes one file per part (some 250,000 files per dump here), so its
recordings go to a memory file system when there is one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import zmq

from mflow.recording import open_recording

from .conftest import make_socket, mixed_messages, send_messages

COUNT = 100_000


def recorded(path) -> list[list[bytes]]:
    with open_recording(path) as reader:
        messages = [message.parts for message in reader]
        assert not reader.truncated and reader.corruption is None
    return messages


@pytest.fixture
def fast_tmp_path(tmp_path):
    """A temporary folder in memory (/dev/shm) if possible, else ``tmp_path``."""
    if not os.access("/dev/shm", os.W_OK):
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="mflow-test-") as path:
        yield Path(path)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("file_format", ["file", "folder"])
def test_dump_replay_dump_is_byte_for_byte(tools, zmq_context, fast_tmp_path, file_format):
    messages = mixed_messages(COUNT, seed=11, max_parts=4)
    first, second = fast_tmp_path / "first", fast_tmp_path / "second"
    push, source = make_socket(zmq_context, zmq.PUSH)
    dump = tools(
        "dump", source, str(first), "--format", file_format, "-n", str(COUNT), "--json", "-q"
    )
    dump.event("start")
    send_messages(push, messages)
    assert dump.wait(timeout=90) == 0, dump.stderr

    replay = tools("replay", str(first), "-a", "tcp://127.0.0.1:*", "--json", "-q")
    again = tools(
        "dump",
        replay.endpoint(),
        str(second),
        "--format",
        file_format,
        "-n",
        str(COUNT),
        "--json",
        "-q",
    )
    assert replay.wait(timeout=90) == 0, replay.stderr
    assert again.wait(timeout=90) == 0, again.stderr

    assert recorded(first) == messages
    assert recorded(second) == messages
