"""Sockets for the commands: addresses, bind-or-connect, raw receive, stoppable send, peers.

The commands move multipart messages as they are (lists of parts, taken off the socket by
`mflow.Stream.receive_parts` without copying) and decode only what they must.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

import zmq

import mflow
from mflow.errors import ConfigurationError, SendTimeoutError

from ._runtime import POLL_MS, Run
from ._security import secure_connect_arguments, track

__all__ = ["MODES", "Endpoint", "check_address", "is_wildcard", "open_stream",
           "send_message", "PeerWatch", "message_size"]

MODES = {"push": zmq.PUSH, "pull": zmq.PULL, "pub": zmq.PUB, "sub": zmq.SUB}

_ADDRESS = re.compile(r"([a-z]+)://(.+)")
_TRANSPORTS = ("tcp", "ipc", "inproc", "udp", "pgm", "epgm", "ws", "wss", "tipc", "vmci")
_EXAMPLES = "e.g. tcp://HOST:PORT, tcp://*:PORT or ipc:///tmp/name"


def check_address(address: str) -> None:
    """Raise `ConfigurationError` naming the problem if ``address`` is no ZeroMQ endpoint."""
    match = _ADDRESS.fullmatch(address)
    if match is None or match[1] not in _TRANSPORTS:
        raise ConfigurationError(f"'{address}' is not a ZeroMQ address ({_EXAMPLES})")
    if match[1] == "tcp":
        host, colon, port = match[2].rpartition(":")
        if not colon or not host:
            raise ConfigurationError(f"'{address}' has no port (expected tcp://HOST:PORT)")
        if port != "*" and not (port.isdigit() and int(port) < 65536):
            raise ConfigurationError(f"'{address}' has an invalid port {port!r}")


def is_wildcard(address: str) -> bool:
    """True for ``tcp://*:PORT`` (all interfaces), an address one can only bind."""
    return address.startswith("tcp://*:")


@dataclass(frozen=True)
class Endpoint:
    """What socket to open: ``address``, ``mode`` name, ``conn_type`` and ``queue_size``."""

    address: str
    mode: str
    conn_type: str
    queue_size: int = 100

    @classmethod
    def choose(cls, address: str, mode: str, conn_type: str | None, default: str,
               queue_size: int) -> Endpoint:
        """An endpoint that binds or connects as asked, else binds ``tcp://*``, else ``default``."""
        if conn_type is None:
            conn_type = mflow.BIND if is_wildcard(address) else default
        return cls(address, mode, conn_type, queue_size)

    def describe(self, stream: mflow.Stream) -> str:
        """E.g. ``Bound to tcp://127.0.0.1:40123 (PUSH, queue size 100)``."""
        verb = "Bound to" if self.conn_type == mflow.BIND else "Connected to"
        address = stream.endpoint if self.conn_type == mflow.BIND else self.address
        return f"{verb} {address} ({self.mode.upper()}, queue size {self.queue_size})"


def open_stream(endpoint: Endpoint, *, linger: float = 1.0,
                blocking_send: bool = True, peers: PeerWatch | None = None) -> mflow.Stream:
    """Bind or connect a stream as ``endpoint`` says.

    Streams get a short send or receive timeout (`POLL_MS`), so that `send_message` and
    `Stream.receive_parts` return to look at the stop conditions while nothing moves. ``peers``
    starts watching for peers before the socket binds or connects, so none is missed.
    """
    check_address(endpoint.address)
    mode = MODES[endpoint.mode]
    stream = mflow.Stream()
    if peers is not None:
        mode = peers.prepare(stream, mode)
    sending = mode in (zmq.PUSH, zmq.PUB, zmq.XPUB)
    stream.connect(endpoint.address, conn_type=endpoint.conn_type, mode=mode,
                   queue_size=endpoint.queue_size, linger=int(linger * 1000), copy=False,
                   send_timeout=POLL_MS if sending and blocking_send else None,
                   receive_timeout=None if sending else POLL_MS,
                   **secure_connect_arguments(endpoint.conn_type))
    track(stream)
    return stream


class PeerWatch:
    """Tells whether a peer is connected to a stream, so that nothing is sent into the void.

    A PUB socket is opened as an XPUB (the same on the wire) and a peer counts once its
    subscription arrived, because a PUB drops whatever it sends before that. Any other
    socket counts connections with `mflow.ConnectionCountMonitor`.
    """

    def __init__(self) -> None:
        self.connected = threading.Event()
        self._subscriptions = False
        self._monitor: mflow.ConnectionCountMonitor | None = None

    def prepare(self, stream: mflow.Stream, mode: int) -> int:
        """Start watching ``stream`` (not yet connected); the socket type to open."""
        if mode == zmq.PUB:
            self._subscriptions = True
            return zmq.XPUB
        self._monitor = mflow.ConnectionCountMonitor(self._count)
        stream.register_socket_monitor(self._monitor)
        return mode

    def detach(self, stream: mflow.Stream) -> None:
        """Stop watching (the monitor thread ends)."""
        if self._monitor is not None:
            stream.remove_socket_monitor(self._monitor)
            self._monitor = None

    def _count(self, count: int) -> None:
        if count > 0:
            self.connected.set()
        else:
            self.connected.clear()

    def wait(self, stream: mflow.Stream, run: Run, timeout: float | None) -> bool:
        """Wait until a peer is there; False if the run stopped or ``timeout`` s passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not run.stopped():
            if self._ready(stream):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return False

    def _ready(self, stream: mflow.Stream) -> bool:
        if not self._subscriptions:
            return self.connected.wait(POLL_MS / 1000)
        if stream.socket.poll(POLL_MS) and stream.socket.recv()[:1] == b"\x01":
            self.connected.set()
        return self.connected.is_set()


def send_message(stream: mflow.Stream, parts: Sequence[Any], run: Run, block: bool = True
                 ) -> bool:
    """Send ``parts`` (bytes-like, or received frames) as one message; False if it was dropped.

    Blocking: waits while the peers' queues are full (or no peer is there), until the
    run is stopped. Non-blocking: drops the message at once when it cannot be queued
    (counted in ``stream.statistics.send_dropped``).
    """
    while True:
        try:
            return stream.send_multipart(parts, block)
        except SendTimeoutError:  # the stream's short send timeout: look at the run
            if run.stopped():
                return False


def message_size(parts: Sequence[Any]) -> int:
    """Total bytes of a message's parts."""
    return sum(map(len, parts))
