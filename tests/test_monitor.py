"""Socket-event listener, connection counting on both sides, the no-client action."""

from __future__ import annotations

import threading
import time

import pytest
import zmq

import mflow
from mflow.monitor import ConnectionCountMonitor, SocketEventListener, no_clients_timeout_notifier

from .conftest import wait_until

pytestmark = pytest.mark.usefixtures("receive_path")


class Counts:
    """Collects the counts a ConnectionCountMonitor reports (thread-safe enough for ints)."""

    def __init__(self):
        self.values = []

    def __call__(self, count):
        self.values.append(count)

    @property
    def last(self):
        return self.values[-1]


def test_counts_on_the_bind_side(stream_factory):
    counts = Counts()
    server = stream_factory("tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUSH)
    server.register_socket_monitor(ConnectionCountMonitor(counts))
    client = stream_factory(server.endpoint, mode=mflow.PULL)
    wait_until(lambda: counts.last == 1)
    client.disconnect()
    wait_until(lambda: counts.last == 0)


def test_counts_on_the_connect_side(stream_factory):
    """Bug B12: 1.0 ignored EVENT_CONNECTED, so a connected client counted 0."""
    counts = Counts()
    server = stream_factory("tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUSH)
    client = mflow.Stream()
    client.register_socket_monitor(ConnectionCountMonitor(counts))
    client.connect(server.endpoint, mode=mflow.PULL)
    try:
        wait_until(lambda: counts.last == 1)
        server.disconnect()
        wait_until(lambda: counts.last == 0)
    finally:
        client.disconnect()
    assert min(counts.values) == 0


def test_heartbeats_reach_callbacks(stream_factory):
    beats = threading.Event()
    listener_callbacks = [lambda event: beats.set() if event is None else None]
    stream = stream_factory("tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUSH)
    listener = SocketEventListener(listener_callbacks, receive_timeout=0.01)
    listener.start(stream.socket)
    try:
        assert beats.wait(5)
    finally:
        listener.stop()
    assert listener.monitor_thread is None


def test_listener_survives_closed_events_of_single_connections(stream_factory):
    """Bug B15: 1.0 stopped listening at the first EVENT_CLOSED of any connection."""
    events = []
    client = mflow.Stream()
    client.register_socket_monitor(lambda e: e and events.append(e["event"]))
    # nobody listens there: connection attempts fail, producing CLOSED events
    probe = zmq.Context.instance().socket(zmq.PUSH)
    port = probe.bind_to_random_port("tcp://127.0.0.1")
    probe.close(linger=0)
    client.connect(f"tcp://127.0.0.1:{port}", mode=mflow.PULL)
    try:
        wait_until(lambda: zmq.EVENT_CLOSED in events or zmq.EVENT_CONNECT_RETRIED in events)
        assert client._socket_event_listener.monitor_listening.is_set()
        assert client._socket_event_listener.monitor_thread.is_alive()
    finally:
        client.disconnect()


def test_remove_last_monitor_stops_the_listener(stream_factory):
    stream = stream_factory("tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUSH)
    monitor = ConnectionCountMonitor(Counts())
    stream.register_socket_monitor(monitor)
    assert stream._socket_event_listener.monitor_listening.is_set()
    stream.remove_socket_monitor(monitor)
    assert not stream._socket_event_listener.monitor_listening.is_set()


def test_notifier_fires_after_timeout_without_clients(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    fired = []
    notify = no_clients_timeout_notifier(lambda: fired.append(now[0]), 0.3)
    notify(0)
    now[0] += 0.2
    notify(0)
    assert fired == []
    now[0] += 0.15
    notify(0)
    assert len(fired) == 1
    notify(1)
    now[0] += 1.0
    notify(1)
    assert len(fired) == 1
    notify(0)
    now[0] += 0.31
    notify(0)
    assert len(fired) == 2


def test_no_client_action_fires_until_a_client_connects(stream_factory, monkeypatch):
    calls = []
    monkeypatch.setattr(SocketEventListener, "DEFAULT_SOCKET_RECEIVE_TIMEOUT", 0.01)
    server = stream_factory(
        "tcp://127.0.0.1:*",
        conn_type=mflow.BIND,
        mode=mflow.PUSH,
        no_client_action=lambda: calls.append(time.monotonic()),
        no_client_timeout=0.1,
    )
    wait_until(lambda: len(calls) >= 2)
    stream_factory(server.endpoint, mode=mflow.PULL)
    server.send(b"ping")  # returns once the peer is connected
    connected = len(calls)
    deadline = time.monotonic() + 0.5  # five timeouts' worth of silence
    while time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(calls) <= connected + 1  # at most one that was already due


def test_bsread_style_none_timeout_is_accepted(stream_factory):
    stream = stream_factory(
        "tcp://127.0.0.1:*",
        conn_type=mflow.BIND,
        mode=mflow.PUSH,
        no_client_action=None,
        no_client_timeout=None,
    )
    assert not stream._socket_monitors


@pytest.mark.parametrize(
    "events, expected",
    [
        ([zmq.EVENT_ACCEPTED, zmq.EVENT_ACCEPTED, zmq.EVENT_DISCONNECTED], 1),
        ([zmq.EVENT_CONNECTED, zmq.EVENT_DISCONNECTED, zmq.EVENT_DISCONNECTED], 0),
        ([zmq.EVENT_ACCEPTED, zmq.EVENT_MONITOR_STOPPED], 0),
        ([zmq.EVENT_ACCEPTED, zmq.EVENT_CLOSED], 1),
    ],
)
def test_connection_count_arithmetic(events, expected):
    counts = Counts()
    monitor = ConnectionCountMonitor(counts)
    for event in events:
        monitor({"event": event, "value": 0, "endpoint": b""})
    monitor(None)
    assert counts.values[0] == 0 and counts.last == expected == monitor.client_counter
