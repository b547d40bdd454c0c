"""The commands' security options: a CURVE-protected split → merge chain over two hops
passes everything authorised and nothing else, and says what it refused.

The chain runs two commands side by side, so as processes; the rest in-process.
"""

from __future__ import annotations

import json
import shutil

import pytest
import zmq

import mflow
from mflow.security import Curve, create_keys, load_public_key, load_secret_key

from .conftest import TIMEOUT_MS, invoke, make_socket

pytestmark = pytest.mark.usefixtures("receive_path")


def connectable(endpoint: str) -> str:
    return endpoint.replace("0.0.0.0", "127.0.0.1")


def refused_client(context: zmq.Context, endpoint: str, server_key=None) -> zmq.Socket:
    """A PULL socket that does not reconnect (connected by the caller)."""
    socket = context.socket(zmq.PULL)
    socket.linger = 0
    socket.reconnect_ivl = -1
    if server_key is not None:
        socket.curve_serverkey = load_public_key(server_key)
    return socket


def test_mflow_keys_writes_a_pair_and_refuses_to_overwrite(tmp_path) -> None:
    done = invoke("keys", "split", "-d", str(tmp_path))
    assert done.exit_code == 0, done.stderr
    assert (tmp_path / "split.key").is_file() and (tmp_path / "split.key_secret").is_file()
    Curve.server(tmp_path / "split.key_secret")  # a certificate pyzmq reads
    again = invoke("keys", "split", "-d", str(tmp_path))
    assert again.exit_code == 1
    assert again.stderr.startswith("Error: ") and "already exists" in again.stderr


def test_curve_allow_without_a_secret_key_is_an_error(tmp_path) -> None:
    done = invoke("stats", "tcp://127.0.0.1:5", "--curve-allow", str(tmp_path), "-n", "1")
    assert done.exit_code == 1
    assert "--curve-allow needs --curve-secret-key" in done.stderr


def test_a_two_hop_curve_chain_passes_the_authorised_and_refuses_the_rest(
    tools, zmq_context, tmp_path
) -> None:
    keys, split_clients, merge_clients = (
        tmp_path / name for name in ("keys", "split-clients", "merge-clients")
    )
    for name in ("split", "merge", "consumer", "intruder"):
        create_keys(keys, name)
    split_clients.mkdir()
    merge_clients.mkdir()
    shutil.copy(keys / "merge.key", split_clients)
    shutil.copy(keys / "consumer.key", merge_clients)

    detector, source = make_socket(zmq_context, zmq.PUSH)
    split = tools(
        "split",
        source,
        "tcp://*:*",
        "--json",
        "-n",
        "20",
        "--curve-secret-key",
        str(keys / "split.key_secret"),
        "--curve-allow",
        str(split_clients),
    )
    split_output = connectable(split.event("output")["endpoint"])
    merge = tools(
        "merge",
        split_output,
        "-o",
        "tcp://*:*",
        "--json",
        "-n",
        "20",
        "-i",
        "0.1",
        "--curve-server-key",
        str(keys / "split.key"),
        "--curve-secret-key",
        str(keys / "merge.key_secret"),
        "--curve-allow",
        str(merge_clients),
    )
    merge_output = connectable(merge.event("start")["endpoint"])

    # Refused at the second hop: a client whose key is not allowed, and a plain one. They
    # try once: a client that reconnects while a ZAP-guarded socket closes can keep its
    # handshake pending, so that closing waits out its linger (see the closing notes).
    intruder = refused_client(zmq_context, merge_output, keys / "merge.key")
    intruder.curve_publickey, intruder.curve_secretkey = load_secret_key(
        keys / "intruder.key_secret"
    )
    intruder.connect(merge_output)
    plain = refused_client(zmq_context, merge_output)
    plain.connect(merge_output)
    merge.line(
        lambda line: (
            '"refused"' in line
            and {"key", "handshake"} <= json.loads(line).get("refused", {}).keys()
        )
    )

    with mflow.connect(
        merge_output,
        receive_timeout=TIMEOUT_MS,
        curve=Curve.client(keys / "merge.key", keys / "consumer.key_secret"),
    ) as consumer:
        for frame in range(20):
            detector.send_multipart(
                [json.dumps({"htype": "raw-1.0", "frame": frame}).encode(), b"payload"]
            )
        received = [consumer.receive() for _ in range(20)]
    assert [m.data["header"]["frame"] for m in received if m is not None] == list(range(20))
    assert not intruder.poll(300) and not plain.poll(300)

    assert split.wait() == 0, split.stderr
    assert merge.wait() == 0, (merge.stderr, json.dumps(merge.summary()))
    refused = merge.summary()["refused"]
    assert refused["key"] >= 1 and refused["handshake"] >= 1
    assert "refused" not in split.summary()  # the merge was allowed in


def test_messages_received_but_not_taken_are_counted_as_discarded_at_close(zmq_context):
    from mflow.cli._streams import discarded_at_close, start_tracking, track

    start_tracking()
    push = zmq_context.socket(zmq.PUSH)
    push.bind("inproc://not-taken")
    stream = mflow.connect("inproc://not-taken", context=zmq_context, receive_timeout=1000)
    track(stream)
    for frame in range(5):  # inproc: each send is in the stream's queue when it returns
        push.send_multipart([json.dumps({"htype": "raw-1.0", "frame": frame}).encode()])
    assert stream.receive().data["header"]["frame"] == 0
    assert discarded_at_close() == 4  # the summary's figure; the messages are taken off
    assert discarded_at_close() == 4  # and counted once
    stream.disconnect()
    assert stream.statistics.skipped["discarded_at_close"] == 4
    push.close(linger=0)
