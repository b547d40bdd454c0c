"""``mflow replay`` and ``m_replay``: both formats, timing, loops, damage, 1.0 folders.

In-process, but for a signal and the end of the process (which must not drop messages).
"""

from __future__ import annotations

import json
import os

import pytest
import zmq

from mflow.recording import FolderWriter, RecordingWriter

from .conftest import header, invoke, make_socket, mixed_messages, receive_messages


def write_recording(path, messages, file_format="file", times=None):
    writer = FolderWriter(path) if file_format == "folder" else RecordingWriter(path)
    with writer:
        for index, parts in enumerate(messages):
            writer.write(parts, receive_time=None if times is None else times[index])
    return path


def replay(start, zmq_context, path, *args, script=None):
    """Start a replay to a random port (``start``: `commands` or `tools`) and connect a PULL
    socket to it."""
    tool = start(
        *(["replay"] if script is None else []),
        str(path),
        "-a",
        "tcp://127.0.0.1:*",
        "--json",
        *args,
        script=script,
    )
    pull, _ = make_socket(zmq_context, zmq.PULL, bind=False, address=tool.endpoint())
    return tool, pull


@pytest.mark.parametrize("file_format", ["file", "folder"])
def test_replay_sends_every_message_as_recorded(commands, zmq_context, tmp_path, file_format):
    messages = mixed_messages(300, seed=3)
    path = write_recording(tmp_path / "r", messages, file_format)
    tool, pull = replay(commands, zmq_context, path)
    assert receive_messages(pull, 300) == messages
    assert tool.wait() == 0
    assert tool.summary()["messages"] == 300
    assert not pull.poll(100)


def test_replay_reads_folders_of_the_1_0_m_dump(commands, zmq_context, tmp_path):
    # 1.0's m_dump numbered messages by receive calls, failed ones included (B23), so
    # numbers may skip; its m_replay sent sorted(listdir) and decided "send more" from the
    # next directory entry, so a stray file sharing a prefix glued messages (B7).
    files = {
        "000000_000.raw": b"h0",
        "000000_001.raw": b"",
        "000000_002.raw": b"d0",
        "000000_zz_notes.txt": b"not part of the recording",
        "000002_000.raw": b"h2",
        "000002_001.raw": b"d2",
        "000010_000.raw": b"h10",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "000003_000.raw.d").mkdir()
    tool, pull = replay(commands, zmq_context, tmp_path)
    assert receive_messages(pull, 3) == [[b"h0", b"", b"d0"], [b"h2", b"d2"], [b"h10"]]
    assert tool.wait() == 0


def test_our_folders_replay_with_the_1_0_rules(tmp_path):
    # What the 1.0 m_replay does with a folder: every *.raw file of sorted(listdir), each
    # one frame, "send more" while the next name has the same text before the first "_".
    messages = mixed_messages(50, seed=4)
    write_recording(tmp_path, messages, "folder")
    names = [n for n in sorted(os.listdir(tmp_path)) if n.endswith(".raw")]
    replayed, current = [], []
    for index, name in enumerate(names):
        current.append((tmp_path / name).read_bytes())
        following = names[index + 1] if index + 1 < len(names) else None
        if following is None or following.split("_")[0] != name.split("_")[0]:
            replayed.append(current)
            current = []
    assert replayed == messages
    assert all(len(name) >= len("000000_000.raw") for name in names)


def test_count_and_loop(commands, zmq_context, tmp_path):
    messages = [[header(frame=n)] for n in range(4)]
    path = write_recording(tmp_path / "r", messages)
    tool, pull = replay(commands, zmq_context, path, "--loop", "-n", "10")
    assert receive_messages(pull, 10) == (messages * 3)[:10]
    assert tool.wait() == 0
    assert not pull.poll(100)


def test_count_without_loop_stops_early(commands, zmq_context, tmp_path):
    path = write_recording(tmp_path / "r", [[b"a"], [b"b"], [b"c"]])
    tool, pull = replay(commands, zmq_context, path, "-n", "2")
    assert receive_messages(pull, 2) == [[b"a"], [b"b"]]
    assert tool.wait() == 0


def test_realtime_keeps_the_recorded_gaps(commands, zmq_context, tmp_path):
    path = write_recording(tmp_path / "r", [[b"a"], [b"b"], [b"c"]], times=[100.0, 100.2, 100.4])
    tool, pull = replay(commands, zmq_context, path, "--realtime", "--wait-for-peer")
    receive_messages(pull, 3)
    assert tool.wait() == 0
    assert tool.summary()["elapsed"] >= 0.39


def test_realtime_speed(commands, zmq_context, tmp_path):
    path = write_recording(tmp_path / "r", [[b"a"], [b"b"]], times=[0.0, 10.0])
    tool, pull = replay(commands, zmq_context, path, "--realtime", "--speed", "100")
    receive_messages(pull, 2)
    assert tool.wait() == 0
    assert 0.09 <= tool.summary()["elapsed"] < 5


def test_realtime_needs_a_file_recording(tmp_path):
    write_recording(tmp_path, [[b"a"]], "folder")
    tool = invoke("replay", str(tmp_path), "--realtime", "-a", "tcp://127.0.0.1:*")
    assert tool.exit_code == 1
    assert "Error: --realtime needs recorded receive times" in tool.stderr


def test_rate(commands, zmq_context, tmp_path):
    path = write_recording(tmp_path / "r", [[b"x"]] * 6)
    tool, pull = replay(commands, zmq_context, path, "--rate", "50", "--wait-for-peer")
    receive_messages(pull, 6)
    assert tool.wait() == 0
    assert tool.summary()["elapsed"] >= 0.09


def test_truncated_recording_is_replayed_then_an_error(commands, zmq_context, tmp_path):
    path = write_recording(tmp_path / "r", [[b"a", b"1"], [b"b", b"2"], [b"c" * 100]])
    path.write_bytes(path.read_bytes()[:-10])  # as if the writer was killed
    tool, pull = replay(commands, zmq_context, path)
    assert receive_messages(pull, 2) == [[b"a", b"1"], [b"b", b"2"]]
    assert tool.wait() == 1
    assert "ends in an incomplete message" in tool.stderr and tool.stderr.count("\n") == 1


def test_corrupt_recording_is_replayed_up_to_the_damage(commands, zmq_context, tmp_path):
    path = write_recording(tmp_path / "r", [[b"a"], [b"b"], [b"c"]])
    data = bytearray(path.read_bytes())
    second = data.index(b"MREC", data.index(b"MREC") + 1)
    data[second + 4] ^= 0xFF  # damage the part count of record 1
    path.write_bytes(bytes(data))
    tool, pull = replay(commands, zmq_context, path)
    assert receive_messages(pull, 1) == [[b"a"]]
    assert tool.wait() == 1
    assert "is corrupt: record 1" in tool.stderr
    assert not pull.poll(100)


@pytest.mark.parametrize("content", [None, b"", b"not a recording"])
def test_missing_or_foreign_path_is_an_error(tmp_path, content):
    path = tmp_path / "r"
    if content is not None:
        path.write_bytes(content)
    tool = invoke("replay", str(path), "-a", "tcp://127.0.0.1:*")
    assert tool.exit_code == 1
    assert tool.stderr.startswith("Error: ") and str(path) in tool.stderr
    assert tool.stderr.count("\n") == 1


def test_pub_with_wait_for_peer_loses_nothing(commands, zmq_context, tmp_path):
    messages = [[header(frame=n), b"x"] for n in range(50)]
    path = write_recording(tmp_path / "r", messages)
    tool = commands(
        "replay", str(path), "-m", "pub", "--wait-for-peer", "-a", "tcp://127.0.0.1:*", "--json"
    )
    sub, _ = make_socket(zmq_context, zmq.SUB, bind=False, address=tool.endpoint())
    assert receive_messages(sub, 50) == messages
    assert tool.wait() == 0


def test_m_replay_sends_and_prints(commands, zmq_context, tmp_path):
    write_recording(tmp_path, [[b"h", b"d"], [b"e"]], "folder")
    pull, endpoint = make_socket(zmq_context, zmq.PULL)
    tool = commands(str(tmp_path), "-a", endpoint, "--connect", script="m_replay")
    assert receive_messages(pull, 2) == [[b"h", b"d"], [b"e"]]
    assert tool.wait() == 0
    assert tool.stdout_lines == [
        "Sending 000000_000.raw [True]",
        "Sending 000000_001.raw [False]",
        "Sending 000001_000.raw [False]",
    ]


def test_interrupt_exits_130(tools, tmp_path):
    path = write_recording(tmp_path / "r", [[b"a"]] * 5)
    tool = tools("replay", str(path), "-a", "tcp://127.0.0.1:*", "--json")
    tool.event("start")
    tool.signal()
    assert tool.wait() == 130
    assert json.loads(tool.stdout_lines[-1])["event"] == "summary"


def test_the_last_messages_are_not_lost_at_the_end(tools, zmq_context, tmp_path):
    # The replay has queued everything (and printed its summary) before the consumer reads
    # a single message: closing must let the queue drain instead of dropping it (1.0: B7).
    messages = [[header(frame=n), bytes(1000)] for n in range(200)]
    path = write_recording(tmp_path / "r", messages)
    tool, pull = replay(tools, zmq_context, path, "--wait-for-peer")
    assert tool.event("summary")["messages"] == 200
    assert receive_messages(pull, 200) == messages
    assert tool.wait() == 0


@pytest.mark.parametrize("content", [None, "notes.txt"])
def test_a_folder_without_part_files_is_an_error(tmp_path, content):
    if content is not None:
        (tmp_path / content).write_bytes(b"not a part")
    tool = invoke("replay", str(tmp_path), "-a", "tcp://127.0.0.1:*")
    assert tool.exit_code == 1
    assert tool.stderr.startswith(f"Error: folder '{tmp_path}' holds no recording")
    assert tool.stderr.count("\n") == 1


def test_speed_without_realtime_is_an_error(tmp_path):
    path = write_recording(tmp_path / "r", [[b"a"]])
    tool = invoke("replay", str(path), "--speed", "2", "-a", "tcp://127.0.0.1:*")
    assert tool.exit_code == 1
    assert "--speed scales the recorded timing: it needs --realtime" in tool.stderr


def test_a_flipped_byte_in_a_part_is_replayed_up_to_the_damage(commands, zmq_context, tmp_path):
    path = write_recording(tmp_path / "r", [[b"a", b"first"], [b"b", b"second"], [b"c"]])
    data = bytearray(path.read_bytes())
    data[data.index(b"second")] ^= 0x01
    path.write_bytes(bytes(data))
    tool, pull = replay(commands, zmq_context, path)
    assert receive_messages(pull, 1) == [[b"a", b"first"]]
    assert tool.wait() == 1
    assert "is corrupt: record 1 at byte" in tool.stderr and "damaged part 1" in tool.stderr
    assert tool.stderr.count("\n") == 1
    assert not pull.poll(100)


def test_a_record_without_parts_is_replayed_up_to_the_damage(commands, zmq_context, tmp_path):
    from .test_recording import craft_record

    path = write_recording(tmp_path / "r", [[b"a"]], times=[1.0])
    path.write_bytes(path.read_bytes() + craft_record([], 2.0) + craft_record([b"c"], 3.0))
    tool, pull = replay(commands, zmq_context, path, "--realtime")
    assert receive_messages(pull, 1) == [[b"a"]]
    assert tool.wait() == 1
    assert "record 1 at byte" in tool.stderr and "has no parts" in tool.stderr
    assert "IndexError" not in tool.stderr


def test_a_huge_receive_time_is_damage_not_an_overflow(commands, zmq_context, tmp_path):
    from .test_recording import craft_record

    path = write_recording(tmp_path / "r", [[b"a"]], times=[1.0])
    path.write_bytes(path.read_bytes() + craft_record([b"b"], 1e300))
    tool, pull = replay(commands, zmq_context, path, "--realtime")
    assert receive_messages(pull, 1) == [[b"a"]]
    assert tool.wait() == 1
    assert "impossible receive time" in tool.stderr and "OverflowError" not in tool.stderr


def test_a_linked_part_file_is_refused_and_nothing_sent(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"not yours")
    folder = tmp_path / "dump"
    folder.mkdir()
    (folder / "000000_000.raw").symlink_to(secret)
    tool = invoke("replay", str(folder), "-a", "tcp://127.0.0.1:*")
    assert tool.exit_code == 1
    assert "is a symbolic link, not a regular file" in tool.stderr
    assert tool.stderr.count("\n") == 1
