"""``mflow stats`` and ``m_stats`` against real sockets."""

from __future__ import annotations

import json
import socket as plain_socket

import numpy as np
import pytest
import zmq

from .conftest import header, invoke, make_socket, send_messages, wait_until

pytestmark = pytest.mark.usefixtures("receive_path")


def array_message(frame: int, n: int = 4, **fields) -> list[bytes]:
    return [
        header("array-1.0", type="uint8", shape=[n], frame=frame, **fields),
        np.arange(n, dtype=np.uint8).tobytes(),
    ]


def test_counts_messages_bytes_types_gaps_and_errors(commands, zmq_context):
    push, endpoint = make_socket(zmq_context, zmq.PUSH)
    messages = [array_message(frame) for frame in (0, 1, 2, 4, 4, 3)]  # missed, dup, back
    messages += [
        [b"not json", b""],
        [header("array-1.0", type="uint8", shape=[4]), b"abc"],
        [header("dseries_end-1.0", series=1)],
        [header("no-such-type-1.0")],
    ]
    stats = commands("stats", endpoint, "--json", "-n", str(len(messages)))
    stats.event("start")
    send_messages(push, messages)
    assert stats.wait() == 0
    summary = stats.summary()
    assert summary["messages"] == len(messages)
    assert summary["bytes"] == sum(len(part) for parts in messages for part in parts)
    assert summary["by_type"] == {"array-1.0": 7, "dseries_end-1.0": 1, "no-such-type-1.0": 1}
    assert (summary["missed"], summary["duplicated"], summary["reverted"]) == (1, 1, 1)
    assert summary["decode_errors"] == {"bad_header": 1, "malformed": 1, "unknown_htype": 1}
    assert summary["seconds_since_last_message"] is not None


def test_plain_progress_and_summary(commands, zmq_context):
    push, endpoint = make_socket(zmq_context, zmq.PUSH)
    stats = commands("stats", endpoint, "-i", "0.05", "-n", "3")
    assert stats.line().startswith("Connecting to " + endpoint + " (PULL, queue size 100)")
    send_messages(push, [array_message(0)])
    line = stats.line(lambda text: text.startswith("messages: 1 "))
    assert "by type: array-1.0=1" in line and "decode errors: 0" in line
    send_messages(push, [array_message(1), array_message(2)])
    assert stats.wait() == 0
    summary = stats.stdout_lines[stats.stdout_lines.index("Summary:") :]
    assert "  messages:      3" in summary
    assert any(line.startswith("  gaps:") and "missed=0" in line for line in summary)


def test_decode_checks_compressed_images(commands, zmq_context):
    push, endpoint = make_socket(zmq_context, zmq.PUSH)
    part_2 = json.dumps(
        {"htype": "dimage_d-1.0", "shape": [4, 4], "type": "uint16", "encoding": "lz4<", "size": 3}
    ).encode()
    broken = [header("dimage-1.0", series=1, frame=0, hash=""), part_2, b"\xff\xff\xff", b"{}"]
    for decode, errors in (("--no-decode", {}), ("--decode", {"compression_error": 1})):
        stats = commands("stats", endpoint, "--json", "-n", "1", decode)
        stats.event("start")
        send_messages(push, [broken])
        assert stats.wait() == 0
        assert stats.summary()["decode_errors"] == errors


def test_decode_workers_count_every_image_and_error(commands, zmq_context):
    from mflow import synthetic

    push, endpoint = make_socket(zmq_context, zmq.PUSH)
    _, series = synthetic.make_source("dectris", synthetic.Spec(shape=(40, 30), images=6))
    messages = [next(series) for _ in range(8)]
    part_2 = json.dumps(
        {"htype": "dimage_d-1.0", "shape": [4, 4], "type": "uint16", "encoding": "lz4<", "size": 3}
    ).encode()
    messages.insert(3, [header("dimage-1.0", series=1, frame=9, hash=""), part_2, b"\xff", b"{}"])
    stats = commands(
        "stats", endpoint, "--json", "-n", str(len(messages)), "--decode", "--decode-workers", "2"
    )
    stats.event("start")
    send_messages(push, messages)
    assert stats.wait() == 0
    summary = stats.summary()
    assert summary["messages"] == len(messages)
    assert summary["by_type"] == {"dheader-1.0": 1, "dimage-1.0": 7, "dseries_end-1.0": 1}
    assert summary["decode_errors"] == {"compression_error": 1}


def test_decode_workers_need_decode():
    result = invoke("stats", "tcp://127.0.0.1:1", "--decode-workers", "2")
    assert result.exit_code == 1
    assert "Error: --decode-workers needs --decode" in result.stderr


def test_sub_mode_receives_from_a_publisher(commands, zmq_context):
    pub, endpoint = make_socket(zmq_context, zmq.PUB)
    stats = commands("stats", endpoint, "-m", "sub", "--json", "-n", "5")
    stats.event("start")
    frame = [0]

    def publish() -> bool:  # a PUB drops what it sends before the subscription arrives
        pub.send_multipart(array_message(frame[0]))
        frame[0] += 1
        return not stats.running

    wait_until(publish, what="stats to receive 5 published messages")
    assert stats.wait() == 0
    assert stats.summary()["messages"] == 5


def test_stats_binds_when_asked(commands, zmq_context):
    stats = commands("stats", "tcp://127.0.0.1:*", "--bind", "--json", "-n", "1")
    push, _ = make_socket(zmq_context, zmq.PUSH, bind=False, address=stats.endpoint())
    send_messages(push, [array_message(0)])
    assert stats.wait() == 0
    assert stats.summary()["messages"] == 1


def test_m_stats_keeps_the_1_0_output(commands, zmq_context):
    push, endpoint = make_socket(zmq_context, zmq.PUSH)
    stats = commands(endpoint, "-i", "0", "-n", "3", script="m_stats")
    assert stats.line() == "mflow stats started. Sampling interval is 0.00 seconds."
    assert stats.line() == "_" * 60
    send_messages(push, [array_message(frame) for frame in range(3)])
    assert stats.wait() == 0
    lines = stats.stdout_lines
    assert any(
        line.startswith("Data rate: ") and "MB/s    Message rate: " in line for line in lines
    )
    assert "Messages received:             3 messages" in lines
    assert lines[-1] == "_" * 60


def test_m_stats_accepts_the_1_0_long_options(commands, zmq_context):
    push, endpoint = make_socket(zmq_context, zmq.PUSH)
    stats = commands(
        endpoint, "--mode", "pull", "--sampling_interval", "0.25", "-n", "1", script="m_stats"
    )
    assert stats.line() == "mflow stats started. Sampling interval is 0.25 seconds."
    send_messages(push, [array_message(0)])
    assert stats.wait() == 0


def test_says_connecting_until_a_peer_is_there(commands, zmq_context):
    push, endpoint = make_socket(zmq_context, zmq.PUSH)
    stats = commands("stats", endpoint, "-n", "1")
    assert stats.line().startswith("Connecting to " + endpoint)
    assert stats.line() == f"Connected to a peer on {endpoint}"
    send_messages(push, [array_message(0)])
    assert stats.wait() == 0
    assert "WARNING" not in stats.stderr


@pytest.mark.parametrize(
    "mode, peer_type, needs", [("pull", zmq.PUB, "PUSH"), ("sub", zmq.PUSH, "PUB")]
)
def test_warns_of_a_socket_type_mismatch(commands, zmq_context, mode, peer_type, needs):
    _peer, endpoint = make_socket(zmq_context, peer_type)
    stats = commands("stats", endpoint, "-m", mode, "-d", "4")
    assert stats.wait() == 0
    assert "the peer's socket type does not fit a " + mode.upper() in stats.stderr
    assert f"it needs a {needs}" in stats.stderr
    assert "Connected to a peer" not in stats.stdout


def test_warns_when_no_one_is_listening(commands):
    holder = plain_socket.socket()
    holder.bind(("127.0.0.1", 0))
    address = f"tcp://127.0.0.1:{holder.getsockname()[1]}"
    try:
        stats = commands("stats", address, "-d", "4")
        assert stats.wait() == 0
    finally:
        holder.close()
    assert f"no peer at {address} after 3 s" in stats.stderr


def test_the_inspector_decodes_with_the_streams_own_handlers(stream_pair):
    from mflow.cli._inspect import Inspector

    sender, receiver = stream_pair()
    calls = []
    receiver.handlers["raw-1.0"] = lambda cursor: calls.append(cursor) or {"header": {}}
    inspector = Inspector(receiver, decode=False)
    sender.send_multipart([header(frame=0), b"x"])
    assert inspector.receive(5000)
    assert len(calls) == 1 and inspector.kinds == {"raw-1.0": 1}
    assert receiver.statistics.messages_by_htype == {"raw-1.0": 1}
