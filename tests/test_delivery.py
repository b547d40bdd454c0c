"""`mflow.Delivery` and `mflow.PeerTracker`: what a sending stream knows it delivered."""

from __future__ import annotations

import socket as plain_socket
import time

import pytest
import zmq

import mflow

from .conftest import TIMEOUT_MS, bind_random

pytestmark = pytest.mark.usefixtures("receive_path")


def nobody() -> tuple[plain_socket.socket, str]:
    holder = plain_socket.socket()
    holder.bind(("127.0.0.1", 0))
    return holder, f"tcp://127.0.0.1:{holder.getsockname()[1]}"


def test_a_stream_without_watch_peers_has_no_delivery(stream_pair):
    sender, receiver = stream_pair()
    assert sender.delivery is None and sender.peers is None


def test_nothing_left_without_a_peer():
    holder, address = nobody()
    try:
        stream = mflow.connect(address, mode=mflow.PUSH, linger=200, watch_peers=True)
        for _ in range(20):
            assert stream.send_multipart([b"x"])
        assert stream.delivery.sent == 20
        stream.disconnect()
    finally:
        holder.close()
    delivery = stream.delivery
    assert delivery.closed and delivery.undelivered == delivery.undelivered_max == 20
    assert not stream.peers.ever_connected and stream.peers.connection_attempts >= 0


def test_everything_left_for_a_peer_that_stays(context):
    pull = context.socket(zmq.PULL)
    pull.rcvtimeo = TIMEOUT_MS
    endpoint = bind_random(pull)
    stream = mflow.connect(endpoint, mode=mflow.PUSH, linger=5000, watch_peers=True)
    for number in range(50):
        stream.send_multipart([str(number).encode()])
    stream.disconnect()
    assert [pull.recv() for _ in range(50)] == [str(n).encode() for n in range(50)]
    assert stream.delivery.undelivered == stream.delivery.undelivered_max == 0
    pull.close(linger=0)


def test_a_linger_that_runs_out_loses_at_least_one(context):
    pull = context.socket(zmq.PULL)
    pull.rcvhwm = 1
    # A fixed, small kernel buffer: autotuning may grow it to tens of MiB (tcp_rmem), which
    # would take in every message below.
    pull.rcvbuf = 1 << 16
    endpoint = bind_random(pull)
    stream = mflow.connect(
        endpoint,
        mode=mflow.PUSH,
        linger=200,
        queue_size=10,
        watch_peers=True,
        send_timeout=TIMEOUT_MS,
        copy=False,
    )
    assert stream.peers.wait(TIMEOUT_MS / 1000)
    big = bytes(4 << 20)  # 8 of them: more than the peer's queue and the OS buffers hold
    for _ in range(8):  # the peer takes none of them: most stay queued
        stream.send_multipart([big])
    stream.disconnect()
    delivery = stream.delivery
    assert 1 <= delivery.undelivered <= delivery.undelivered_max <= 8
    pull.close(linger=0)


def eight_sent_to_one_peer():
    """A delivery of 8 messages sent while peer 7 was connected: its tracker and itself."""
    from mflow.delivery import Delivery, PeerTracker

    peers = PeerTracker()
    delivery = Delivery(peers, publishes=False, queue_size=10)
    peers({"event": zmq.EVENT_CONNECTED, "value": 7})
    peers({"event": zmq.EVENT_HANDSHAKE_SUCCEEDED, "value": 0})
    for _ in range(8):
        delivery.message_sent()
    return peers, delivery


def test_a_linger_that_ran_out_by_libzmqs_clock_but_not_quite_by_ours_loses_one():
    _, delivery = eight_sent_to_one_peer()
    delivery.after_close(200, closing_seconds=0.19986)  # as measured once under load
    assert delivery.undelivered == 1


def test_a_linger_that_ran_out_loses_one_even_when_its_end_was_seen_as_the_peer_leaving():
    peers, delivery = eight_sent_to_one_peer()
    delivery.before_close(200)
    # The engine ends when the linger runs out: the monitor may report it before closing
    # returns, as a peer that left with every queued message possibly lost.
    peers({"event": zmq.EVENT_DISCONNECTED, "value": 7})
    delivery.after_close(200, closing_seconds=0.25)
    assert (delivery.undelivered, delivery.undelivered_max) == (1, 8)


def test_a_pub_counts_what_it_sent_before_anyone_subscribed():
    stream = mflow.connect(
        "tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUB, linger=200, watch_peers=True
    )
    for _ in range(3):
        stream.send_multipart([b"x"])
    assert stream.delivery.undelivered == 3
    stream.disconnect()
    assert stream.delivery.undelivered == 3


def test_a_socket_type_mismatch_is_counted_as_refused(context):
    pub = context.socket(zmq.PUB)
    endpoint = bind_random(pub)
    stream = mflow.connect(endpoint, mode=mflow.PULL, watch_peers=True)
    try:
        assert _wait(lambda: stream.peers.refused > 0)
        assert stream.peers.peers == 0 and not stream.peers.ever_connected
    finally:
        stream.disconnect()
        pub.close(linger=0)


def feed(peers, *events) -> None:
    """Feed ``peers`` monitor events: (event, value) pairs."""
    for kind, value in events:
        peers({"event": kind, "value": value})


def one_of_two_failed():
    """A `PeerTracker` of connections 11 and 12, opened in that order, one of which has
    failed its handshake (the event does not say which)."""
    from mflow.delivery import PeerTracker

    peers = PeerTracker()
    feed(
        peers,
        (zmq.EVENT_ACCEPTED, 11),
        (zmq.EVENT_ACCEPTED, 12),
        (zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400),
    )
    return peers


def test_a_peer_is_counted_when_a_refused_handshake_ends_before_its_own():
    # An allowed client of a CURVE server waits for ZAP's answer; a refused client that
    # connected after it can fail first (seen as everything undelivered at close).
    peers = one_of_two_failed()
    feed(peers, (zmq.EVENT_DISCONNECTED, 12), (zmq.EVENT_HANDSHAKE_SUCCEEDED, 0))
    assert (peers.peers, peers.ever_connected, peers.joined) == (1, True, 1)
    assert (peers.handshake_failures, peers.refused) == (1, 0)


def test_a_failed_handshake_leaving_is_not_taken_for_the_peer_leaving():
    peers = one_of_two_failed()
    lost = []
    peers.on_peer_lost = lambda: lost.append(1)
    feed(peers, (zmq.EVENT_HANDSHAKE_SUCCEEDED, 0), (zmq.EVENT_DISCONNECTED, 12))
    assert (peers.peers, lost) == (1, [])
    feed(peers, (zmq.EVENT_DISCONNECTED, 11))
    assert (peers.peers, lost, peers.refused) == (0, [1], 0)


def test_a_refused_connection_leaving_beside_a_failed_one_keeps_the_counts():
    peers = one_of_two_failed()
    feed(peers, (zmq.EVENT_DISCONNECTED, 12), (zmq.EVENT_DISCONNECTED, 11))
    assert (peers.peers, peers.handshake_failures, peers.refused) == (0, 1, 1)
    assert not peers.ever_connected


def tracker_counting_losses():
    """A `PeerTracker` and the list its peers lost are appended to."""
    from mflow.delivery import PeerTracker

    peers = PeerTracker()
    lost: list[int] = []
    peers.on_peer_lost = lambda: lost.append(1)
    return peers, lost


def test_a_peer_connected_before_a_failure_leaving_is_a_peer_lost():
    peers, lost = tracker_counting_losses()
    feed(
        peers,
        (zmq.EVENT_ACCEPTED, 10),
        (zmq.EVENT_HANDSHAKE_SUCCEEDED, 0),
        (zmq.EVENT_ACCEPTED, 11),  # an allowed client, waiting for ZAP
        (zmq.EVENT_ACCEPTED, 12),  # a plain client of a CURVE server
        (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, 71),
        (zmq.EVENT_DISCONNECTED, 10),
    )
    assert (peers.peers, lost) == (0, [1])
    feed(peers, (zmq.EVENT_DISCONNECTED, 12), (zmq.EVENT_HANDSHAKE_SUCCEEDED, 0))
    assert (peers.peers, peers.joined, peers.refused) == (1, 2, 0)
    feed(peers, (zmq.EVENT_DISCONNECTED, 11))
    assert (peers.peers, lost) == (0, [1, 1])


def test_a_refused_client_ending_is_not_taken_for_the_peer_when_the_success_was_not_its():
    # As seen with an allowed, a refused and a plain client of a CURVE server: the first
    # success is the second connection's, the first connection is the refused one.
    peers, lost = tracker_counting_losses()
    feed(
        peers,
        (zmq.EVENT_ACCEPTED, 37),
        (zmq.EVENT_ACCEPTED, 39),
        (zmq.EVENT_ACCEPTED, 46),
        (zmq.EVENT_HANDSHAKE_SUCCEEDED, 0),
        (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, 285212674),
        (zmq.EVENT_DISCONNECTED, 46),
        (zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400),
        (zmq.EVENT_DISCONNECTED, 37),
    )
    assert (peers.peers, lost, peers.refused, peers.handshake_failures) == (1, [], 0, 2)
    feed(peers, (zmq.EVENT_DISCONNECTED, 39))
    assert (peers.peers, lost) == (0, [1])


def _wait(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
