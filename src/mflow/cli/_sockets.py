"""Sockets for the commands: addresses, bind-or-connect, raw receive, stoppable send, peers.

The commands move multipart messages as they are (lists of parts, taken off the socket by
`mflow.Stream.receive_parts` without copying) and decode only what they must.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Sequence

import zmq

import mflow
from mflow.errors import ConfigurationError, SendTimeoutError

from ._output import Output
from ._runtime import POLL_MS, Run
from ._security import secure_connect_arguments
from ._streams import track

__all__ = [
    "MODES",
    "Endpoint",
    "check_address",
    "is_wildcard",
    "open_stream",
    "wait_for_peer",
    "send_message",
    "message_size",
    "PeerHints",
    "peers_of",
    "delivery_of",
    "PARTNERS",
    "HINT_SECONDS",
]

MODES = {"push": zmq.PUSH, "pull": zmq.PULL, "pub": zmq.PUB, "sub": zmq.SUB}

_ADDRESS = re.compile(r"([a-z]+)://(.+)")
_TRANSPORTS = ("tcp", "ipc", "inproc", "udp", "pgm", "epgm", "ws", "wss", "tipc", "vmci")
_EXAMPLES = "e.g. tcp://HOST:PORT, tcp://*:PORT or ipc:///tmp/name"

#: Seconds without a peer or a message before a receiving command says so.
HINT_SECONDS = 3.0

logger = logging.getLogger("mflow.cli")


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
    def choose(
        cls, address: str, mode: str, conn_type: str | None, default: str, queue_size: int
    ) -> Endpoint:
        """An endpoint that binds or connects as asked, else binds ``tcp://*``, else ``default``."""
        if conn_type is None:
            conn_type = mflow.BIND if is_wildcard(address) else default
        return cls(address, mode, conn_type, queue_size)

    def describe(self, stream: mflow.Stream) -> str:
        """E.g. ``Bound to tcp://127.0.0.1:40123 (PUSH, queue size 100)``, or ``Connecting
        to ...`` (a connection is made in the background; `PeerHints` says when it is)."""
        verb = "Bound to" if self.conn_type == mflow.BIND else "Connecting to"
        address = stream.endpoint if self.conn_type == mflow.BIND else self.address
        return f"{verb} {address} ({self.mode.upper()}, queue size {self.queue_size})"

    def announce(
        self, out: Output, stream: mflow.Stream, doing: str | None = None, **data: Any
    ) -> None:
        """The command's ``start`` event for ``stream``, opened as this endpoint (`describe`,
        then what the command does with it)."""
        text = self.describe(stream)
        out.event(
            "start",
            text if doing is None else f"{text}; {doing}",
            endpoint=stream.endpoint,
            mode=self.mode,
            conn_type=self.conn_type,
            **data,
        )


def open_stream(
    endpoint: Endpoint,
    *,
    linger: float = 1.0,
    blocking_send: bool = True,
    subscriptions: bool = False,
    decode_workers: int = 0,
    decode_pool: int | None = None,
) -> mflow.Stream:
    """Bind or connect a stream as ``endpoint`` says, watching its peers (`mflow.PeerTracker`).

        Streams get a short send or receive timeout (`POLL_MS`), so that `send_message` and
        `Stream.receive_parts` return to look at the stop conditions while nothing moves.
        ``subscriptions`` opens a PUB as an XPUB (the same on the wire), so that
        `wait_for_peer` sees a subscriber's subscription arrive. ``decode_workers`` decodes
        payloads on that many threads (`mflow.decoding`), ``decode_pool`` into that many reusable
    frames (`mflow.framepool`).
    """
    check_address(endpoint.address)
    mode = MODES[endpoint.mode]
    if subscriptions and mode == zmq.PUB:
        mode = zmq.XPUB
    sending = mode in (zmq.PUSH, zmq.PUB, zmq.XPUB)
    stream = mflow.connect(
        endpoint.address,
        conn_type=endpoint.conn_type,
        mode=mode,
        queue_size=endpoint.queue_size,
        linger=int(linger * 1000),
        copy=False,
        send_timeout=POLL_MS if sending and blocking_send else None,
        receive_timeout=None if sending else POLL_MS,
        watch_peers=True,
        decode_workers=decode_workers,
        decode_pool=decode_pool,
        **secure_connect_arguments(endpoint.conn_type),
    )
    track(stream)
    return stream


#: The socket types each mode can talk to (ZeroMQ refuses the others during the handshake).
PARTNERS = {"pull": "PUSH", "sub": "PUB", "push": "PULL", "pub": "SUB"}


class PeerHints:
    """Tells a person what a receiving stream is waiting for, instead of silence.

    Says when the first peer connected (the start line says "Connecting to" until then),
    and warns once if after ``delay`` seconds no peer is connected (naming the likely
    socket-type mismatch when peers refused the handshake) or nothing arrived.
    """

    def __init__(
        self, stream: mflow.Stream, endpoint: Endpoint, out: Any, delay: float = HINT_SECONDS
    ) -> None:
        self.stream = stream
        self.endpoint = endpoint
        self.out = out
        self.delay = delay
        self.start = time.monotonic()
        self._announced = False
        self._warned = False

    def check(self, messages: int) -> None:
        """Look at the stream's peers (cheap; call it every round of the receive loop)."""
        peers = peers_of(self.stream)
        if not self._announced and peers.ever_connected:
            self._announced = True
            where = (
                self.endpoint.address
                if self.endpoint.conn_type == mflow.CONNECT
                else self.stream.endpoint
            )
            self.out.note(f"Connected to a peer on {where}")
        if self._warned or messages or time.monotonic() - self.start < self.delay:
            return
        self._warned = True
        logger.warning("%s", self.problem())

    def problem(self) -> str:
        """What is wrong, as far as the socket events tell."""
        peers, mode = peers_of(self.stream), self.endpoint.mode
        where = self.endpoint.address
        seconds = f"{self.delay:g} s"
        if peers.ever_connected:
            return f"connected to {where}, but no message in {seconds}"
        if peers.refused:
            return (
                f"{peers.refused} connection(s) with {where} ended in the handshake: "
                f"the peer's socket type does not fit a {mode.upper()} (it needs a "
                f"{PARTNERS[mode]}; check --mode on both sides)"
            )
        if peers.handshake_failures:
            return (
                f"{peers.handshake_failures} handshake(s) with {where} failed (security "
                "or protocol settings differ)"
            )
        if self.endpoint.conn_type == mflow.CONNECT:
            return (
                f"no peer at {where} after {seconds} ({peers.connection_attempts} "
                "connection attempts): is the host right and something bound to the port?"
            )
        return f"no peer has connected to {self.stream.endpoint} in {seconds}"


def peers_of(stream: mflow.Stream) -> mflow.PeerTracker:
    """The peers of a stream `open_stream` opened (it always watches them)."""
    if stream.peers is None:
        raise ConfigurationError("the stream does not watch its peers (watch_peers=True)")
    return stream.peers


def delivery_of(stream: mflow.Stream) -> mflow.Delivery:
    """The delivery accounting of a sending stream `open_stream` opened."""
    if stream.delivery is None:
        raise ConfigurationError("the stream is no sending stream watching its peers")
    return stream.delivery


def wait_for_peer(
    stream: mflow.Stream, run: Run, timeout: float | None, subscriptions: bool = False
) -> bool:
    """Wait until a peer is connected (with ``subscriptions``, to a PUB opened with them:
    subscribed, since a PUB drops whatever it sends before that); False if the run stopped
    or ``timeout`` seconds passed."""
    deadline = None if timeout is None else time.monotonic() + timeout
    subscribed = not delivery_of(stream).publishes or not subscriptions
    while not run.stopped():
        if peers_of(stream).wait(POLL_MS / 1000):
            while not subscribed and stream.poll(POLL_MS):
                parts = stream.receive_parts(block=False)
                subscribed = parts is not None and bytes(parts[0])[:1] == b"\x01"
            if subscribed:
                return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
    return False


def send_message(stream: mflow.Stream, parts: Sequence[Any], run: Run, block: bool = True) -> bool:
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
