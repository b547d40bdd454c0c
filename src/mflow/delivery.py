"""Who is connected to a socket, and what a sending socket could not deliver.

ZeroMQ says nothing about single messages: a send hands a message to a queue and returns,
and whatever is still queued when the socket closes and its linger runs out is dropped
without a word. What it does tell is its socket events (`PeerTracker` reads them) and, for
a stream that owns its context, whether closing finished before the linger ran out. From
these `Delivery` counts what a sending stream did not deliver:

Certain
    Every message sent while no peer was ever connected (nothing can have left);
    every message a PUB sent while no peer was connected (a PUB drops those at once);
    nothing lost at close when closing finished before the linger ran out (ZeroMQ handed
    everything queued to the operating system).
    When the linger ran out with messages queued, at least one was lost.
Upper bounds (``Delivery.undelivered_max``)
    When the linger ran out with messages queued, when the linger was 0, when the stream
    shares its context (closing then does not wait) or when a peer left while messages
    were sent: at most a queue's worth per connection may have been lost each time
    (``queue_size`` + 1 messages; all of them with an unlimited queue). A peer that took
    everything and left counts here too: ZeroMQ cannot tell it from one that left with
    messages queued. Messages the
    operating system had taken but the network lost with a dying peer are beyond what
    ZeroMQ can know; a subscriber's subscription arrives just after its connection, so a
    PUB's count is a lower bound in that instant.

A peer counts once its ZMTP handshake succeeded. A connection that ends before that, with
no handshake failure reported, was refused by the peer: the usual cause is a socket type
that does not fit (PULL against PUB, SUB against PUSH); `PeerTracker.refused` counts them.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import zmq

__all__ = ["PeerTracker", "Delivery"]

_OPENED = (zmq.EVENT_CONNECTED, zmq.EVENT_ACCEPTED)
_HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
    zmq.EVENT_HANDSHAKE_FAILED_AUTH,
)


def _linger_tolerance_ms(linger_ms: int) -> float:
    """How much sooner than by our clock libzmq's linger may run out: its timers count
    coarse milliseconds of a clock of its own (a close that ran out of a 200 ms linger was
    measured here at 199.9 ms)."""
    return max(5.0, linger_ms / 50)


class PeerTracker:
    """Counts a socket's peers from its monitor events (a `Stream` socket monitor).

    ``peers`` is the number connected now, ``ever_connected`` whether there was one,
    ``joined`` how many connected so far,
    ``refused`` the connections the peer ended before the handshake (likely a socket-type
    mismatch), ``handshake_failures`` those that failed it otherwise (e.g. security),
    ``connection_attempts`` the connect retries (no one listening, or an unknown host).
    ``on_peer_lost`` (if set) is called, on the monitor thread, when a peer leaves.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._pending: list[int] = []  # connections awaiting their handshake, oldest first
        # Handshake outcomes do not name their connection: each is put on the oldest
        # waiting one, and kept with the ones that were waiting when it came (it was one
        # of theirs), for `_disconnected` to set a wrong guess right.
        self._failed: dict[int, set[int]] = {}  # oldest first
        self._connected: dict[int, set[int]] = {}
        self.ever_connected = False
        self.joined = 0
        self.refused = 0
        self.handshake_failures = 0
        self.connection_attempts = 0
        self.on_peer_lost: Any = None

    @property
    def peers(self) -> int:
        """Peers connected now (handshake done)."""
        return len(self._connected)

    def __call__(self, event: dict | None) -> None:
        if event is None:
            return
        kind, value = event["event"], int(event["value"])
        with self._changed:
            if kind in _OPENED:
                self._pending.append(value)
            elif kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._succeeded()
            elif kind in _HANDSHAKE_FAILED:
                self.handshake_failures += 1
                if self._pending:
                    self._put_on_oldest_waiting(self._failed)
            elif kind == zmq.EVENT_CONNECT_RETRIED:
                self.connection_attempts += 1
            elif kind == zmq.EVENT_DISCONNECTED:
                self._disconnected(value)
            self._changed.notify_all()

    def _put_on_oldest_waiting(self, outcomes: dict[int, set[int]]) -> None:
        """Record an outcome on the oldest waiting connection, with all that may be its."""
        outcomes[self._pending[0]] = set(self._pending)
        del self._pending[0]

    def _succeeded(self) -> None:
        self.ever_connected = True
        self.joined += 1
        if self._pending:
            self._put_on_oldest_waiting(self._connected)
        elif self._failed:  # every waiting one taken by failures: one of them was this
            connection = next(iter(self._failed))
            self._connected[connection] = self._failed.pop(connection)

    def _disconnected(self, connection: int) -> None:
        failure = self._failure_exchangeable_with(connection)
        if connection in self._failed:
            del self._failed[connection]
        elif failure is not None:
            # A connection that failed its handshake ends at once: take this one for the
            # failed one, and the connection the failure was put on as having had this
            # one's role. A wrong guess (a peer that ended first, refused without a
            # failure) is set right when the other one ends.
            del self._failed[failure]
            if connection in self._connected:
                self._connected[failure] = self._connected.pop(connection)
            else:
                self._pending[self._pending.index(connection)] = failure
        elif connection in self._connected:
            del self._connected[connection]
            if self.on_peer_lost is not None:
                self.on_peer_lost()
        elif connection in self._pending:
            self._pending.remove(connection)
            self.refused += 1
        for candidates in (*self._failed.values(), *self._connected.values()):
            candidates.discard(connection)

    def _failure_exchangeable_with(self, connection: int) -> int | None:
        """The oldest connection a handshake failure was put on that may as well have been
        ``connection``'s (None if none)."""
        success_among = self._connected.get(connection, ())
        for failed, failure_among in self._failed.items():
            if connection in failure_among or failed in success_among:
                return failed
        return None

    def wait(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds (None: forever) for a peer; True if one is there."""
        with self._changed:
            return bool(self._changed.wait_for(lambda: self._connected, timeout))


class Delivery:
    """What a sending stream handed to ZeroMQ and what did not reach a peer (see the module).

    ``sent`` counts whole messages handed to ZeroMQ, ``undelivered`` those certainly not
    delivered, ``undelivered_max`` those that may not have been (the upper bound). Final
    once ``closed``.
    """

    def __init__(self, peers: PeerTracker, publishes: bool, queue_size: int) -> None:
        self.peers = peers
        self.publishes = publishes
        self.queue_size = queue_size
        self.sent = 0
        self.dropped_without_peer = 0
        self.lost_at_close = 0  # certainly lost: the linger ran out with messages queued
        self.possibly_lost = 0  # in addition, at most
        self.closed = False
        self._lock = threading.Lock()
        peers.on_peer_lost = self._peer_lost

    def message_sent(self) -> None:
        """Count one whole message handed to ZeroMQ."""
        self.sent += 1
        if self.publishes and not self.peers.peers:
            self.dropped_without_peer += 1

    def _queue_bound(self, connections: int) -> int:
        """At most how many of the messages not yet counted can sit in ``connections`` queues."""
        unaccounted = max(
            0, self.sent - self.dropped_without_peer - self.lost_at_close - self.possibly_lost
        )
        if self.queue_size == 0:
            return unaccounted
        return min(unaccounted, connections * (self.queue_size + 1))

    def _peer_lost(self) -> None:
        with self._lock:
            self.possibly_lost += self._queue_bound(1)

    def before_close(self, linger_ms: int) -> int:
        """Called by the stream before it closes: the linger (ms) to close with.

        Without a peer ever connected the linger is spent waiting for one; if none comes
        everything queued is lost anyway and the socket closes at once.
        """
        if self.peers.ever_connected or not self.sent:
            return linger_ms
        started = time.monotonic()
        if not self.peers.wait(max(0, linger_ms) / 1000):
            return 0
        return max(0, linger_ms - int((time.monotonic() - started) * 1000))

    def after_close(self, linger_ms: int, closing_seconds: float | None) -> None:
        """Called by the stream once closed: ``closing_seconds`` is how long closing took
        with an owned context (None: a shared context, closing did not wait)."""
        with self._lock:
            self.closed = True
            if not self.peers.ever_connected:
                return
            if closing_seconds is not None and linger_ms > 0:
                if closing_seconds * 1000 < linger_ms - _linger_tolerance_ms(linger_ms):
                    return  # everything queued left before the linger ran out
                # The linger ran out: at least one message was still queued.
                bound = self._queue_bound(max(1, self.peers.peers))
                if bound:
                    self.lost_at_close += 1
                    self.possibly_lost += bound - 1
                elif self.possibly_lost:  # the linger's end, seen first as the peer leaving
                    self.possibly_lost -= 1
                    self.lost_at_close += 1
            else:  # closing did not wait: what was queued is unknown
                self.possibly_lost += self._queue_bound(max(1, self.peers.peers))

    @property
    def undelivered(self) -> int:
        """Messages certainly not delivered."""
        if self.closed and not self.peers.ever_connected:
            return self.sent
        return min(self.sent, self.dropped_without_peer + self.lost_at_close)

    @property
    def undelivered_max(self) -> int:
        """Messages that may not have been delivered (``undelivered`` and more, at most)."""
        if self.closed and not self.peers.ever_connected:
            return self.sent
        return min(self.sent, self.undelivered + self.possibly_lost)

    def as_dict(self) -> dict[str, Any]:
        """``sent``, ``undelivered`` and ``undelivered_max``."""
        return {
            "sent": self.sent,
            "undelivered": self.undelivered,
            "undelivered_max": self.undelivered_max,
        }

    def describe(self) -> str:
        """E.g. ``0``, ``20 (no peer connected)`` or ``1 to 101 (...)``, for a summary."""
        low, high = self.undelivered, self.undelivered_max
        if low == high:
            return (
                f"{low} (no peer connected)" if low and not self.peers.ever_connected else str(low)
            )
        why = (
            "the linger ran out with messages queued"
            if self.lost_at_close
            else "a peer left or closing did not wait"
        )
        return f"{low} to {high} ({why})" if low else f"0, at most {high} ({why})"
