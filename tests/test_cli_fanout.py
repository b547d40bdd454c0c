"""``mflow fanout`` as a process between a simulated detector and several consumers."""

from __future__ import annotations

import json

import pytest
import zmq

from mflow import synthetic

from .conftest import make_socket, send_messages, wait_until as wait_for

pytestmark = pytest.mark.usefixtures("receive_path")


def header_of(message: list[bytes]) -> dict:
    return json.loads(message[0])


def test_a_series_is_divided_by_block_with_headers_and_ends_everywhere(tools, zmq_context):
    consumers = [make_socket(zmq_context, zmq.PULL) for _ in range(3)]
    detector, source = make_socket(zmq_context, zmq.PUSH)
    _, series = synthetic.make_source("dectris", synthetic.Spec(shape=(16, 16), images=12))
    fanout = tools(
        "fanout",
        source,
        *(address for _, address in consumers),
        "--block",
        "2",
        "-n",
        "14",
        "--json",
        "-i",
        "0.1",
    )
    # The detector starts once every consumer is there (else their images go to the others).
    fanout.line(
        lambda line: (
            '"progress"' in line
            and all(output["connected"] for output in json.loads(line)["outputs"])
        )
    )
    send_messages(detector, [next(series) for _ in range(14)])
    for index, (socket, _) in enumerate(consumers):
        messages = [socket.recv_multipart() for _ in range(6)]
        kinds = [header_of(m)["htype"] for m in messages]
        assert kinds == ["dheader-1.0"] + ["dimage-1.0"] * 4 + ["dseries_end-1.0"]
        frames = [header_of(m)["frame"] for m in messages[1:5]]
        assert frames == [f for f in range(12) if f // 2 % 3 == index]
    assert fanout.wait() == 0
    summary = fanout.summary()
    assert [o["images"] for o in summary["outputs"]] == [4, 4, 4]
    assert [o["headers"] for o in summary["outputs"]] == [1, 1, 1]
    assert summary["series_started"] == 1 and summary["dropped"] == 0


def test_a_consumer_killed_mid_series_does_not_stall_the_others_and_is_named(tools, zmq_context):
    consumers = [make_socket(zmq_context, zmq.PULL, hwm=4) for _ in range(3)]
    detector = tools(
        "generate",
        "dectris",
        "-a",
        "tcp://127.0.0.1:*",
        "--images",
        "30",
        "--shape",
        "16x16",
        "-n",
        "32",
        "--rate",
        "200",
        "--json",
        "--wait-for-peer",
    )
    fanout = tools(
        "fanout",
        detector.endpoint(),
        *(address for _, address in consumers),
        "--block",
        "2",
        "-n",
        "32",
        "--json",
        "--output-queue-size",
        "4",
    )
    victim, _ = consumers[2]
    assert header_of(victim.recv_multipart())["htype"] == "dheader-1.0"
    first_images = [header_of(victim.recv_multipart())["frame"] for _ in range(2)]
    assert first_images == [4, 5]
    victim.close(linger=0)

    received: dict[int, int] = {}
    for socket, _ in consumers[:2]:
        socket.rcvtimeo = 300
        while True:
            try:
                message = socket.recv_multipart()
            except zmq.Again:
                break
            if header_of(message)["htype"] == "dimage-1.0":
                frame = header_of(message)["frame"]
                received[frame] = received.get(frame, 0) + 1
    wait_for(lambda: fanout.process.poll() is not None, what="fanout to end")
    assert fanout.wait() == 1  # a loss may have happened, and the summary names it
    summary = fanout.summary()
    gone = summary["outputs"][2]
    assert gone["left_mid_series"] == 1 and not gone["connected"]
    assert gone["undelivered_max"] >= 1
    assert sum(o["rerouted"] for o in summary["outputs"][:2]) >= 1
    assert all(count == 1 for count in received.values())  # nothing twice
    # Every image reached a consumer, or is among what the summary names as possibly lost.
    missing = set(range(30)) - set(received) - set(first_images)
    assert len(missing) <= gone["undelivered_max"]
