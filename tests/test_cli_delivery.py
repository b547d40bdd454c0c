"""Every sending command says what did not reach a peer, and exits 1 when anything did not.

The commands in-process, real sockets on 127.0.0.1: "nobody listening" is a port held by a
plain TCP socket that never listens (connections are refused, and no one else can bind it).
"""

from __future__ import annotations

import socket as plain_socket
from typing import Iterator

import pytest
import zmq

from mflow.recording import RecordingWriter

from .conftest import header, invoke, make_socket, receive_messages, send_messages, summary_of

pytestmark = pytest.mark.usefixtures("receive_path")


@pytest.fixture
def nobody() -> Iterator[str]:
    """A tcp address on 127.0.0.1 where nobody listens (and nobody can start to)."""
    holder = plain_socket.socket()
    holder.bind(("127.0.0.1", 0))
    yield f"tcp://127.0.0.1:{holder.getsockname()[1]}"
    holder.close()


@pytest.fixture
def recording(tmp_path) -> str:
    path = tmp_path / "run.mflow"
    with RecordingWriter(path) as writer:
        for frame in range(20):
            writer.write([header(frame=frame), b"payload"])
    return str(path)


def test_replay_to_nobody_reports_every_message_undelivered(recording, nobody):
    result = invoke("replay", recording, "-a", nobody, "--connect", "--linger", "0.3", "--json")
    assert result.exit_code == 1, result.stderr
    assert summary_of(result)["sent"] == 20
    assert summary_of(result)["undelivered"] == summary_of(result)["undelivered_max"] == 20


def test_replay_to_nobody_says_so_in_plain_text(recording, nobody):
    result = invoke("replay", recording, "-a", nobody, "--connect", "--linger", "0.3")
    assert result.exit_code == 1
    assert "undelivered:" in result.stdout and "20 (no peer connected)" in result.stdout


def test_replay_to_a_listener_delivers_everything(recording, zmq_context):
    pull, endpoint = make_socket(zmq_context, zmq.PULL)
    result = invoke("replay", recording, "-a", endpoint, "--connect", "--json")
    assert result.exit_code == 0, result.stderr
    assert len(receive_messages(pull, 20)) == 20
    assert summary_of(result)["undelivered"] == summary_of(result)["undelivered_max"] == 0


def test_generate_to_nobody_reports_every_message_undelivered(nobody):
    result = invoke(
        "generate", "-s", "10B", "-n", "7", "-a", nobody, "--connect", "--linger", "0.3", "--json"
    )
    assert result.exit_code == 1
    assert summary_of(result)["undelivered"] == 7


def test_generate_on_pub_without_subscriber_reports_the_drops(zmq_context):
    result = invoke(
        "generate",
        "-s",
        "10B",
        "-n",
        "7",
        "-m",
        "pub",
        "-a",
        "tcp://127.0.0.1:*",
        "--linger",
        "0.3",
        "--json",
    )
    assert result.exit_code == 1
    assert summary_of(result)["undelivered"] == 7


def test_generate_to_a_listener_delivers_everything(zmq_context):
    pull, endpoint = make_socket(zmq_context, zmq.PULL)
    result = invoke("generate", "-s", "10B", "-n", "7", "-a", endpoint, "--connect", "--json")
    assert result.exit_code == 0
    assert len(receive_messages(pull, 7)) == 7
    assert summary_of(result)["undelivered"] == 0


def test_split_to_nobody_reports_the_output_undelivered(commands, zmq_context, nobody):
    push, source = make_socket(zmq_context, zmq.PUSH)
    pull, listening = make_socket(zmq_context, zmq.PULL)
    tool = commands("split", source, nobody, listening, "-n", "5", "--linger", "0.3", "--json")
    tool.event("start")
    send_messages(push, [[header(frame=n)] for n in range(5)])
    assert len(receive_messages(pull, 5)) == 5
    assert tool.wait() == 1
    to_nobody, to_listener = tool.summary()["outputs"]
    assert to_nobody["sent"] == 5 and to_nobody["undelivered"] == 5
    assert to_listener["sent"] == 5 and to_listener["undelivered"] == 0


def test_merge_to_nobody_reports_undelivered(commands, zmq_context, nobody):
    push, source = make_socket(zmq_context, zmq.PUSH)
    tool = commands(
        "merge", source, "-o", nobody, "--connect", "-n", "4", "--linger", "0.3", "--json"
    )
    tool.event("input")
    send_messages(push, [[header(frame=n)] for n in range(4)])
    assert tool.wait() == 1
    assert tool.summary()["undelivered"] == 4


def test_demo_delivers_everything_it_sends():
    result = invoke("demo", "-n", "30", "--rate", "1000", "--shape", "16x16", "--json")
    assert result.exit_code == 0, result.stderr
    assert summary_of(result)["sent"] == 30 and summary_of(result)["undelivered"] == 0
