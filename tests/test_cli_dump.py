"""``mflow dump`` and ``m_dump``: recordings byte for byte, listings, faults.

In-process, but for a kill, a signal and a file size limit: those need a process.
"""

from __future__ import annotations

import os
import resource
import signal

import pytest
import zmq

from mflow.recording import FolderReader, RecordingReader, open_recording

from .conftest import header, invoke, make_socket, mixed_messages, send_messages, wait_until

pytestmark = pytest.mark.usefixtures("receive_path")


def recorded(path) -> list[list[bytes]]:
    with open_recording(path) as reader:
        return [message.parts for message in reader]


@pytest.fixture
def source(zmq_context):
    """A bound PUSH socket for a dump to connect to, and its endpoint."""
    return make_socket(zmq_context, zmq.PUSH)


@pytest.mark.parametrize("file_format", ["file", "folder"])
def test_dump_records_every_part_byte_for_byte(commands, source, tmp_path, file_format):
    push, endpoint = source
    messages = mixed_messages(300, seed=1)
    path = tmp_path / "rec"
    dump = commands("dump", endpoint, str(path), "--format", file_format, "-n", "300", "--json")
    dump.event("start")
    send_messages(push, messages)
    assert dump.wait() == 0
    assert recorded(path) == messages
    summary = dump.summary()
    assert summary["messages"] == 300 and summary["path"] == str(path)
    assert summary["bytes"] == sum(len(p) for parts in messages for p in parts)


def test_file_recording_keeps_receive_times(commands, source, tmp_path):
    push, endpoint = source
    dump = commands("dump", endpoint, str(tmp_path / "r.mflow"), "-n", "2", "--json")
    dump.event("start")
    send_messages(push, [[b"a"], [b"b"]])
    assert dump.wait() == 0
    with RecordingReader(tmp_path / "r.mflow") as reader:
        first, second = list(reader)
    assert 0 < first.receive_time <= second.receive_time


def test_folder_layout_is_the_1_0_one(commands, source, tmp_path):
    push, endpoint = source
    dump = commands("dump", endpoint, str(tmp_path), "--format", "folder", "-n", "2", "--json")
    dump.event("start")
    send_messages(push, [[b"h0", b"", b"x"], [b"h1"]])
    assert dump.wait() == 0
    assert sorted(os.listdir(tmp_path)) == [
        "000000_000.raw",
        "000000_001.raw",
        "000000_002.raw",
        "000001_000.raw",
    ]
    assert (tmp_path / "000000_001.raw").read_bytes() == b""
    assert (tmp_path / "000000_002.raw").read_bytes() == b"x"


def test_m_dump_writes_folders_silently(commands, source, tmp_path):
    push, endpoint = source
    dump = commands(endpoint, str(tmp_path / "out"), "-n", "2", script="m_dump")
    wait_until(lambda: (tmp_path / "out").is_dir(), what="the folder to be created")
    send_messages(push, [[header(frame=0), b"data"], [header(frame=1)]])
    assert dump.wait() == 0
    assert dump.stdout == ""
    assert sorted(os.listdir(tmp_path / "out")) == [
        "000000_000.raw",
        "000000_001.raw",
        "000001_000.raw",
    ]


def test_m_dump_without_folder_prints_each_part(commands, source):
    push, endpoint = source
    dump = commands(endpoint, "-n", "1", script="m_dump")
    wait_until(lambda: push.poll(10, zmq.POLLOUT), what="m_dump to connect")
    send_messages(push, [[b'{"htype": "raw-1.0"}', b"\x00\x01"]])
    assert dump.wait() == 0
    assert dump.stdout_lines == ['b\'{"htype": "raw-1.0"}\'', "b'\\x00\\x01'"]


@pytest.mark.parametrize("skip, kept", [(0, 3), (2, 1), (3, 2), (9, 3)])
def test_skip_keeps_parts_numbered_below_it(commands, source, tmp_path, skip, kept):
    push, endpoint = source
    dump = commands("dump", endpoint, str(tmp_path / "r"), "-s", str(skip), "-n", "1", "--json")
    dump.event("start")
    send_messages(push, [[b"a", b"b", b"c"]])
    assert dump.wait() == 0
    assert recorded(tmp_path / "r") == [[b"a", b"b", b"c"][:kept]]


def test_skip_1_would_record_nothing(source, tmp_path):
    result = invoke("dump", source[1], str(tmp_path / "r"), "-s", "1")
    assert result.exit_code == 1
    assert "Error: --skip 1 keeps no part" in result.stderr


def test_listing_shows_sizes_and_headers(commands, source):
    push, endpoint = source
    dump = commands("dump", endpoint, "-n", "2")
    dump.line()
    send_messages(push, [[header(frame=7), b"12345"], [b"\xff"]])
    assert dump.line().startswith("#0  2 parts  ") and '"frame":7' in dump.stdout_lines[1]
    assert dump.line() == "#1  1 part  1 bytes  (1 bytes, not JSON)"
    assert dump.wait() == 0


def test_existing_recording_is_not_overwritten(source, tmp_path):
    path = tmp_path / "r.mflow"
    path.write_bytes(b"precious")
    dump = invoke("dump", source[1], str(path), "-n", "1")
    assert dump.exit_code == 1
    assert dump.stderr == f"Error: '{path}' already exists; use --overwrite to replace it\n"
    assert path.read_bytes() == b"precious"


def test_a_folder_holding_a_recording_is_not_overwritten(source, tmp_path):
    (tmp_path / "000000_000.raw").write_bytes(b"precious")
    dump = invoke("dump", source[1], str(tmp_path), "--format", "folder", "-n", "1")
    assert dump.exit_code == 1
    assert "already holds a recording" in dump.stderr and "use --overwrite" in dump.stderr
    assert (tmp_path / "000000_000.raw").read_bytes() == b"precious"


def test_overwrite_replaces_a_recording(commands, source, tmp_path):
    push, endpoint = source
    path = tmp_path / "r.mflow"
    path.write_bytes(b"old")
    dump = commands("dump", endpoint, str(path), "--overwrite", "-n", "1", "--json")
    dump.event("start")
    send_messages(push, [[b"new"]])
    assert dump.wait() == 0
    assert recorded(path) == [[b"new"]]


def test_unwritable_path_is_one_line_and_exit_1(source, tmp_path):
    (tmp_path / "file").write_bytes(b"")
    for file_format in ("file", "folder"):
        dump = invoke("dump", source[1], str(tmp_path / "file" / "sub"), "--format", file_format)
        assert dump.exit_code == 1
        assert dump.stderr.startswith("Error: ") and "Traceback" not in dump.stderr


def test_kill_9_leaves_every_recorded_message_readable(tools, source, tmp_path):
    push, endpoint = source
    messages = mixed_messages(200, seed=2)
    path = tmp_path / "r.mflow"
    dump = tools("dump", endpoint, str(path), "--json", "-i", "0.01")
    dump.event("start")
    send_messages(push, messages)
    dump.line(lambda line: '"messages": 200' in line)  # a progress report after the last
    dump.process.send_signal(signal.SIGKILL)
    dump.wait()
    assert recorded(path) == messages


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))


@pytest.mark.parametrize("file_format", ["file", "folder"])
def test_full_disk_is_an_error_and_keeps_what_was_recorded(tools, source, tmp_path, file_format):
    push, endpoint = source
    messages = [[header(frame=n), bytes(1000)] for n in range(30)] + [[b"big", bytes(30_000)]]
    path = tmp_path / "r"
    dump = tools(
        "dump", endpoint, str(path), "--format", file_format, "--json", preexec_fn=_limit_file_size
    )
    dump.event("start")
    send_messages(push, messages)
    assert dump.wait() == 1
    assert dump.stderr.startswith(f"Error: cannot write to '{path}': File too large")
    assert dump.stderr.count("\n") == 1
    with open_recording(path, on_corruption="raise") as reader:
        survivors = [message.parts for message in reader]
    assert survivors == messages[: len(survivors)] and len(survivors) >= 18
    if file_format == "file":
        assert isinstance(reader, RecordingReader) and reader.truncated
    else:
        assert isinstance(reader, FolderReader)


def test_interrupt_flushes_and_exits_130(tools, source, tmp_path):
    push, endpoint = source
    dump = tools("dump", endpoint, str(tmp_path / "r.mflow"), "--json")
    dump.event("start")
    send_messages(push, [[b"one"], [b"two"]])
    wait_until(lambda: len(recorded(tmp_path / "r.mflow")) == 2, what="two messages recorded")
    dump.signal()
    assert dump.wait() == 130
    assert dump.summary()["messages"] == 2


def test_listing_shows_a_header_too_deep_to_parse_as_not_json(commands, source):
    push, endpoint = source
    dump = commands("dump", endpoint, "-n", "2")
    dump.line()
    send_messages(push, [[b"[" * 3000], [header(frame=1)]])
    assert dump.line() == "#0  1 part  3000 bytes  (3000 bytes, not JSON)"
    assert '"frame":1' in dump.line()
    assert dump.wait() == 0


def test_full_disk_counts_only_complete_messages(tools, source, tmp_path):
    push, endpoint = source
    messages = [[header(frame=n), bytes(1000)] for n in range(30)]
    path = tmp_path / "r"
    dump = tools("dump", endpoint, str(path), "--json", preexec_fn=_limit_file_size)
    dump.event("start")
    send_messages(push, messages)
    assert dump.wait() == 1
    with open_recording(path) as reader:
        survivors = [message.parts for message in reader]
    assert f"the {len(survivors)} messages before are recorded" in dump.stderr
    assert dump.summary()["messages"] == len(survivors)


@pytest.mark.parametrize("file_format", ["file", "folder"])
def test_a_dump_that_recorded_nothing_leaves_nothing_behind(tools, source, tmp_path, file_format):
    push, endpoint = source
    path = tmp_path / "r"
    dump = tools(
        "dump", endpoint, str(path), "--format", file_format, "--json", preexec_fn=_limit_file_size
    )
    dump.event("start")
    send_messages(push, [[b"big", bytes(30_000)]])
    assert dump.wait() == 1
    assert "nothing was recorded" in dump.stderr
    assert not path.exists()


@pytest.mark.parametrize("file_format", ["file", "folder"])
def test_missing_parent_folder_is_refused_in_both_formats(source, tmp_path, file_format):
    path = tmp_path / "missing" / "r"
    dump = invoke("dump", source[1], str(path), "--format", file_format)
    assert dump.exit_code == 1
    assert f"folder '{tmp_path / 'missing'}' does not exist" in dump.stderr
    assert not (tmp_path / "missing").exists()
