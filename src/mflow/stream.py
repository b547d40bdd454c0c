"""`Stream`: one ZeroMQ socket with the 1.0 send / receive / forward semantics.

This is the one module that talks to pyzmq on behalf of the user and the one place where
pyzmq errors become mflow errors (`mflow.errors`).
"""

from __future__ import annotations

import logging
import reprlib
import socket as _socket
import time
import warnings
from typing import TYPE_CHECKING, Any, Callable, Sequence, cast

import zmq

from . import _allocator, _fastpath, dispatch
from .delivery import Delivery, PeerTracker
from .errors import (
    ConfigurationError,
    ConnectError,
    DecodeError,
    SendTimeoutError,
    StreamClosedError,
    StreamError,
    UnknownHtypeError,
)
from .handlers import get_receive_handler, get_send_handler
from .message import Message
from .monitor import ConnectionCountMonitor, SocketEventListener, no_clients_timeout_notifier
from .receiver import ReceiveHandler
from .statistics import Statistics

if TYPE_CHECKING:
    from .decoding import DecodeWorkers, InFlight
    from .framepool import FramePool
    from .security import Curve, Guard

__all__ = [
    "Stream",
    "connect",
    "disconnect",
    "poll_streams",
    "CONNECT",
    "BIND",
    "PUB",
    "SUB",
    "PUSH",
    "PULL",
]

logger = logging.getLogger(__name__)

CONNECT = "connect"
BIND = "bind"
PUB = zmq.PUB
SUB = zmq.SUB
PUSH = zmq.PUSH
PULL = zmq.PULL

_SEND_ONLY = (zmq.PUSH, zmq.PUB)
_RECEIVE_ONLY = (zmq.PULL, zmq.SUB)
_CLOSED_ERRNOS = (zmq.ETERM, zmq.ENOTSOCK)
_SOCKET_TYPES = frozenset(int(kind) for kind in zmq.SocketType)
#: The htypes the compiled receive path decodes itself (a per-stream handler for one of
#: them sends its messages the Python way).
_COMPILED_HTYPES = ("array-1.0",)
#: Kinds of skipped messages (reason, htype) a stream logs a warning for; the htypes come
#: from the network, so further kinds are only counted (``Stream.unlogged_skip_kinds``).
MAX_REPORTED_SKIP_KINDS = 100
#: What a value from the network can make decoding or accounting raise. Not every
#: exception: one raised by a signal handler during a blocking receive must propagate.
_VALUE_ERRORS = (ArithmeticError, LookupError, TypeError, ValueError, RecursionError)
#: Characters of a value from the network shown in a log line or an error message.
MAX_SHOWN = 100


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, MAX_SHOWN, MAX_SHOWN


def _text(error: BaseException) -> str:
    """The message of ``error`` (it may quote the network), bounded; never raises."""
    try:
        text = str(error)
    except Exception:  # noqa: BLE001  (its str must never fail a receive)
        text = type(error).__name__
    return text if len(text) <= 4 * MAX_SHOWN else f"{text[: 4 * MAX_SHOWN]}... ({len(text)} chars)"


def shown(value: Any) -> str:
    """A bounded repr of ``value`` (from the network: any depth, any size) for log lines."""
    try:
        text = _REPR.repr(value)
    except Exception:  # a repr must never fail a receive
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 2 * MAX_SHOWN else f"{text[: 2 * MAX_SHOWN]}..."


def message_taker(socket: zmq.Socket) -> Callable[[int], list[Any]]:
    """``take(flags)``: the frames of the next whole message off ``socket``, never copied.

    ``zmq.ZMQError`` (``zmq.Again`` on a timeout) propagates. Compiled-path frames where it
    runs, else ``zmq.Frame`` objects, whose ``more`` flag spares a ``getsockopt(RCVMORE)``
    per part.
    """
    speedups, handle = _fastpath.for_socket(socket)
    if speedups is not None:
        receive_frames = speedups.receive_frames

        def take_compiled(flags: int = 0) -> list[Any]:
            if socket.closed:  # pyzmq's error; the handle would be stale
                raise zmq.ZMQError(zmq.ENOTSOCK)
            return receive_frames(handle, flags)

        return take_compiled
    recv = socket.recv

    def take(flags: int = 0) -> list[Any]:
        frame = recv(flags, copy=False)
        frames = [frame]
        while frame.more:
            frame = recv(flags, copy=False)
            frames.append(frame)
        return frames

    return take


def _stream_error(error: zmq.ZMQError, doing: str) -> StreamError:
    """The mflow error for a pyzmq error raised while ``doing`` something."""
    if error.errno in _CLOSED_ERRNOS:
        return StreamClosedError(f"cannot {doing}: the stream is closed ({error})")
    return StreamError(f"cannot {doing}: {error}")


class Stream:
    """A ZeroMQ socket that sends and receives mflow messages.

    ``strict`` makes `receive` raise the `DecodeError` of a bad message instead of
    returning ``None``; ``decode`` (default on) lets handlers decode compressed payloads
    such as images. ``handlers`` maps htypes to receive functions (or handler classes)
    that take precedence over the global registry for this stream only.
    """

    def __init__(self, *, strict: bool = False, decode: bool = True) -> None:
        self.context: zmq.Context | None = None
        self._context_is_owned = False
        self.socket: zmq.Socket | None = None
        self.address: str | None = None
        self.conn_type: str | None = None
        self.zmq_copy = True
        self.zmq_track = False
        self.receiver: ReceiveHandler | None = None
        self._speedups: Any = None
        self._handle: int | None = None
        self._take_message: Callable[[int], list[Any]] | None = None
        self.strict = strict
        self.decode = decode
        self.handlers: dict[str, Any] = {}
        self._statistics = Statistics()
        self._reported: set[tuple[str, str | None]] = set()
        #: New kinds of skipped messages not logged as a warning: `MAX_REPORTED_SKIP_KINDS`
        #: kinds were already.
        self.unlogged_skip_kinds = 0
        self._socket_monitors: list[Callable[[dict | None], Any]] = []
        self._socket_event_listener = SocketEventListener(self._socket_monitors)
        #: With ``watch_peers``: who is connected, and (sending streams) what was delivered.
        self.peers: PeerTracker | None = None
        self.delivery: Delivery | None = None
        self._guard: Guard | None = None
        #: The frame pool images are decoded into (``connect(decode_pool=...)``), or ``None``.
        self.decode_pool: FramePool | None = None
        self._workers: DecodeWorkers | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def connect(
        self,
        address: str,
        conn_type: str = CONNECT,
        mode: int = PULL,
        receive_timeout: int | None = None,
        queue_size: int = 100,
        linger: int = 1000,
        context: zmq.Context | None = None,
        copy: bool = True,
        send_timeout: int | None = None,
        *,
        max_message_size: int | None = None,
        max_decoded_bytes: int | None = None,
        watch_peers: bool = False,
        curve: Curve | None = None,
        allow: Sequence[str] | None = None,
        deny: Sequence[str] | None = None,
        decode_pool: int | FramePool | None = None,
        decode_workers: int = 0,
    ) -> None:
        """Open the socket: connect to ``address``, or bind when ``conn_type`` is not "connect".

        ``mode`` is the socket type (PULL, SUB, PUSH, PUB, ...; SUB subscribes to
        everything), ``queue_size`` the high-water mark in both directions, timeouts in
        milliseconds (``None`` waits forever, ``0`` returns at once), ``copy=False``
        receives frames as zero-copy memoryviews and sends without copying.
        ``max_message_size`` (bytes) makes ZeroMQ refuse larger messages (MAXMSGSIZE);
        ``max_decoded_bytes`` caps what the compressed payloads of one received message may
        decode to (default: the image size the series header declared, else 2 GiB); a
        payload over the cap is not decoded and is counted in ``statistics.payload_errors``
        as ``decoded_size``.
        ``watch_peers`` sets `peers` (a `PeerTracker`) and, on a sending socket, `delivery`
        (a `Delivery`: what was sent and what did not reach a peer, final after
        `disconnect`); it runs the socket-event thread.
        ``curve`` (a `mflow.security.Curve`) encrypts and authenticates the connections,
        ``allow`` / ``deny`` list peer IP addresses to let in or refuse; every refusal
        is counted in ``statistics.refused`` (see `mflow.security`).
        ``decode_pool`` (a number of frames, or a `mflow.FramePool` to share) decodes
        images into reusable buffers, so that a steady stream allocates no new memory (see
        `mflow.framepool`). ``decode_workers`` (a number of threads) decodes compressed
        payloads in parallel with receiving, messages still delivered in order (see
        `mflow.decoding`); ``handler=`` on `receive` then decodes only messages not yet
        taken.
        The first stream of a process sets glibc's allocator up to reuse the memory of
        large messages rather than page-fault it in anew (`mflow._allocator`;
        ``MFLOW_MALLOC_DEFAULTS=1`` leaves it alone).
        Raises `ConnectError` (a ``RuntimeError``, as in 1.0) when binding or connecting
        fails; nothing stays open then.
        """
        if self.socket is not None and not self.socket.closed:
            raise ConfigurationError(f"stream is already connected to {self.address}")
        _check_arguments(mode, queue_size)
        if max_decoded_bytes is not None and (
            type(max_decoded_bytes) is not int or max_decoded_bytes < 0
        ):
            raise ConfigurationError(
                f"max_decoded_bytes must be a size in bytes, not {max_decoded_bytes!r}"
            )
        pool = _frame_pool(decode_pool)
        if type(decode_workers) is not int or decode_workers < 0:
            raise ConfigurationError(
                f"decode_workers must be a number of threads, not {decode_workers!r}"
            )
        _allocator.prepare_for_large_messages()
        self._context_is_owned = context is None
        self.context = zmq.Context() if context is None else context
        socket = None
        try:
            socket = self.context.socket(mode)
            if mode == zmq.SUB:
                socket.setsockopt(zmq.SUBSCRIBE, b"")
            socket.linger = linger
            socket.set_hwm(queue_size)
            if max_message_size is not None:
                socket.maxmsgsize = max_message_size
            if receive_timeout is not None:
                socket.rcvtimeo = int(receive_timeout)
            if send_timeout is not None:
                socket.sndtimeo = int(send_timeout)
            self._watch_peers(mode, queue_size, watch_peers)
            if curve is not None or allow or deny or max_message_size is not None:
                self._secure(socket, curve, allow, deny, max_message_size)
            if self._socket_monitors:
                self._socket_event_listener.start(socket)
            if conn_type == CONNECT:
                socket.connect(address)
            else:
                _bind(socket, address)
        except Exception as error:
            self._close(socket, linger=0)
            self.context = None
            if isinstance(error, ConfigurationError):
                raise
            raise ConnectError(f"Unable to {conn_type} to {address}: {error}") from error
        self.socket = socket
        self.address = address
        self.conn_type = conn_type
        self.zmq_copy = copy
        self.zmq_track = not copy
        self._speedups, self._handle = _fastpath.for_socket(socket)
        if self._speedups is not None:
            for key in _COMPILED_HTYPES:  # the compiled path finds them in the registry
                get_receive_handler(key)
        self._take_message = message_taker(socket)
        self.receiver = (
            None
            if mode in _SEND_ONLY
            else ReceiveHandler(
                socket, copy=copy, statistics=self.statistics, take_message=self._take_message
            )
        )
        if self.receiver is not None:
            self.receiver.max_decoded_bytes = max_decoded_bytes
            self.receiver.decode_pool = pool
            if decode_workers:
                from .decoding import DecodeWorkers  # threads only for streams that ask

                self._workers = DecodeWorkers(decode_workers)
        self.decode_pool = pool
        logger.info("%s to %s", "Connected" if conn_type == CONNECT else "Bound", address)

    def _watch_peers(self, mode: int, queue_size: int, watch: bool) -> None:
        if self.peers is not None:
            self.remove_socket_monitor(self.peers)
        self.peers = self.delivery = None
        if watch:
            self.peers = PeerTracker()
            self._socket_monitors.append(self.peers)
            if mode in (zmq.PUSH, zmq.PUB, zmq.XPUB):
                self.delivery = Delivery(self.peers, mode != zmq.PUSH, queue_size)

    def _secure(
        self,
        socket: zmq.Socket,
        curve: Curve | None,
        allow: Sequence[str] | None,
        deny: Sequence[str] | None,
        max_message_size: int | None,
    ) -> None:
        from . import security  # only streams that ask for it start ZAP threads

        context = cast(zmq.Context, self.context)  # connect() made it before the socket
        guard = security.secure(
            socket,
            context,
            self._count_refusal,
            curve=curve,
            allow=allow,
            deny=deny,
            max_message_size=max_message_size,
        )
        if guard is not None:
            self._guard = guard
            self._socket_monitors.append(guard.on_event)

    def _count_refusal(self, reason: str) -> None:
        self.statistics.refused[reason] += 1

    def _release_guard(self) -> None:
        guard, self._guard = self._guard, None
        if guard is not None:
            if guard.on_event in self._socket_monitors:
                self._socket_monitors.remove(guard.on_event)
            guard.close()

    @property
    def statistics(self) -> Statistics:
        """The receive and send counters (the live object every `Message` refers to).

        May be replaced by another `Statistics`; the stream counts into it from then on.
        """
        return self._statistics

    @statistics.setter
    def statistics(self, statistics: Statistics) -> None:
        self._statistics = statistics
        if self.receiver is not None:
            self.receiver.statistics = statistics

    @property
    def endpoint(self) -> str | None:
        """The endpoint actually in use, e.g. the port chosen for ``tcp://127.0.0.1:*``."""
        if self.socket is None or self.socket.closed:
            return None
        return cast(bytes, self.socket.last_endpoint).decode()

    @property
    def receive_timeout(self) -> int | None:
        """The receive timeout in milliseconds, ``None`` when a receive waits forever."""
        timeout = int(self._open_socket("read the receive timeout").rcvtimeo)
        return None if timeout < 0 else timeout

    def poll(self, timeout_ms: int | None = None, flags: int = zmq.POLLIN) -> bool:
        """Whether a message can be received (``flags=zmq.POLLIN``) or sent (``zmq.POLLOUT``)
        within ``timeout_ms`` milliseconds (``None`` waits as long as it takes, 0 not at all).

        Messages the decode workers have taken (`in_flight`) count as receivable.
        Raises `StreamClosedError` when the stream is not connected.
        """
        socket = self._open_socket("poll")
        if flags & zmq.POLLIN and self.in_flight:
            return True
        try:
            return bool(socket.poll(timeout_ms, flags))
        except zmq.ZMQError as error:
            raise _stream_error(error, "poll") from error

    @property
    def closed(self) -> bool:
        """True unless the stream is connected."""
        return self.socket is None or self.socket.closed

    def disconnect(self) -> None:
        """Close the socket (idempotent) and free its endpoint for reuse.

        Messages still queued for sending get ``linger`` milliseconds to leave: an owned
        context's termination waits for them, and the endpoint is free when this returns
        (with a shared context a sending socket's endpoint is freed in the background). A
        receiving socket leaves its endpoint first, so nothing more arrives for it. With
        ``watch_peers`` a sending stream that never had a peer spends the linger waiting
        for one, and `delivery` is final when this returns.

        What ZeroMQ had already received for a receiving stream is lost with the socket:
        those messages are counted in ``statistics.skipped["discarded_at_close"]`` (and
        logged), as are messages the decode workers had taken but not delivered. Call
        `drain` first to have the former instead.
        """
        socket = self.socket
        if socket is None or socket.closed:
            logger.debug("stream already disconnected")
            return
        discarded = self._stop_workers()
        try:
            if self.receiver is not None and socket.type in _RECEIVE_ONLY:
                # Only for receive-only sockets: leaving drops what connections still hold,
                # which would lose a sender's queued messages. The connect side loses its
                # queue when it leaves, the bind side keeps it: count before and after.
                discarded += self._discard_queued()
                if self.conn_type == CONNECT:
                    socket.disconnect(cast(str, self.address))  # connected: has one
                else:
                    socket.unbind(cast(bytes, socket.last_endpoint).decode())
                discarded += self._discard_queued()
        except zmq.ZMQError as error:
            logger.debug("could not leave %s: %s", self.address, error)
        finally:
            delivery = self.delivery
            socket_linger = cast(int, socket.linger)
            linger = socket_linger if delivery is None else delivery.before_close(socket_linger)
            closing = time.monotonic()
            self._close(socket, linger)
            if delivery is not None:
                delivery.after_close(
                    linger, time.monotonic() - closing if self._context_is_owned else None
                )
        self._count_discarded(discarded, "at disconnect")
        logger.info("Disconnected")

    def drain(self, limit: int | None = None) -> list[list[Any]]:
        """The messages ZeroMQ has already received for this stream, taken without waiting.

        Each message is its undecoded frames, as `receive_parts` gives them (not counted
        in ``statistics``); at most ``limit`` messages (by default `drain_limit`, so that a
        sender faster than the drain cannot keep it going). For consumers that stop: what
        is drained before `disconnect` is theirs, not discarded.
        """
        limit = self.drain_limit if limit is None else limit
        messages: list[list[Any]] = []
        while len(messages) < limit:
            frames = self.receive_parts(block=False)
            if frames is None:
                break
            messages.append(frames)
        return messages

    @property
    def drain_limit(self) -> int:
        """The most messages `drain` (and `disconnect`'s count) takes: ten receive queues."""
        socket = self._open_socket("drain")
        return 10 * max(int(socket.rcvhwm), 100)

    def discard_received(self) -> int:
        """Drop what ZeroMQ has already received for this receive-only stream, counted in
        ``statistics.skipped["discarded_at_close"]`` (and logged); the number dropped.

        For consumers that stop without taking the rest and report it before `disconnect`
        (which does the same). Use `drain` instead to have the messages.
        """
        socket = self.socket
        if self.receiver is None or socket is None or socket.closed:
            return 0
        if socket.type not in _RECEIVE_ONLY:
            return 0
        return self._count_discarded(self._discard_queued(), "on request")

    def _count_discarded(self, discarded: int, when: str) -> int:
        if discarded:
            self.statistics.skipped["discarded_at_close"] += discarded
            logger.info("discarded %d received messages %s", discarded, when)
        return discarded

    def _discard_queued(self) -> int:
        """Take and drop what is already received; the number of messages."""
        take = self._take_message
        if take is None:
            return 0
        discarded = 0
        for _ in range(self.drain_limit):
            try:
                take(zmq.NOBLOCK)
            except zmq.Again:
                break
            discarded += 1
        return discarded

    def _close(self, socket: zmq.Socket | None, linger: int | None = None) -> None:
        """The one way a socket of this stream is closed (disconnect, failed connect, GC).

        The event listener stops after the socket closed, so it sees the closing events.
        """
        self._stop_workers()
        if socket is not None:
            socket.close(linger=linger)
        self._socket_event_listener.stop()
        self._release_guard()
        if self._context_is_owned and self.context is not None:
            self.context.term()

    def _stop_workers(self) -> int:
        """Stop the decode workers, if any; the messages they had not delivered."""
        workers, self._workers = self._workers, None
        return 0 if workers is None else workers.close()

    @property
    def decode_workers(self) -> int:
        """The threads decoding payloads in parallel with receiving (0: none)."""
        return 0 if self._workers is None else self._workers.workers

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.disconnect()

    def __del__(self) -> None:
        socket = getattr(self, "socket", None)
        if socket is not None and not socket.closed:
            warnings.warn(
                f"unclosed mflow stream {self.address!r}",
                ResourceWarning,
                source=self,
                stacklevel=2,
            )
            self._close(socket, linger=0)

    # -- socket monitors ---------------------------------------------------------------

    def register_socket_monitor(self, monitor: Callable[[dict | None], Any]) -> None:
        """Call ``monitor(event)`` for every socket event (and ``None`` as a heartbeat)."""
        if monitor not in self._socket_monitors:
            self._socket_monitors.append(monitor)
        if not self._socket_event_listener.monitor_listening.is_set() and not self.closed:
            self._socket_event_listener.start(cast(zmq.Socket, self.socket))  # not closed

    def remove_socket_monitor(self, callback_function: Callable[[dict | None], Any]) -> None:
        """Stop calling ``callback_function``; the listener stops with the last monitor."""
        if callback_function in self._socket_monitors:
            self._socket_monitors.remove(callback_function)
        if not self._socket_monitors:
            self._socket_event_listener.stop()

    # -- receiving ---------------------------------------------------------------------

    def receive(
        self,
        handler: Callable[[ReceiveHandler], Any] | None = None,
        block: bool = True,
        *,
        decode: bool | None = None,
    ) -> Message | None:
        """The next message decoded by ``handler`` (by default the one its htype names).

        Returns ``None`` on a receive timeout, when nothing is waiting and ``block`` is
        false, or when the message cannot be decoded or accounted for (whatever a handler
        raises); every such case is counted in ``statistics.skipped`` (non-blocking polls
        that find nothing are not). A strict stream raises the decode error instead; a
        closed stream raises `StreamClosedError`. ``decode`` overrides the stream's
        ``decode`` for this call.

        With decode workers the message returned may have been taken by an earlier call
        (and ``handler`` / ``decode`` apply to the messages taken by this one); see
        `receive_in_flight`.
        """
        if self._workers is not None:
            return self._receive_in_order(self._workers, handler, block, decode)
        try:
            return self._receive(handler, block, decode)
        except zmq.Again:
            if block:
                self.statistics.message_failed("timeout")
            return None

    def _receive(
        self, handler: Callable[[ReceiveHandler], Any] | None, block: bool, decode: bool | None
    ) -> Message | None:
        """`receive`, but ``zmq.Again`` (not counted) when no message came or was waiting."""
        receiver = self._receiver()
        receiver.block = block
        flags = 0 if block else zmq.NOBLOCK
        try:
            if handler is None:
                message = self._receive_decoded(receiver, flags)
                if message is not None:
                    return message
            else:
                receiver.receive_message(flags)
        except zmq.Again:
            raise
        except zmq.ZMQError as error:
            raise _stream_error(error, "receive") from error
        except _VALUE_ERRORS as error:  # the compiled path decoding or counting a message
            receiver.end_message()
            self._skip(error, None)
            return None
        receiver.decode = self.decode if decode is None else decode
        key, data, header, failure = self._run_handler(receiver, handler)
        if failure is not None:
            self._skip(failure, key)
            return None
        return self._succeeded(key, header, data)

    def _run_handler(
        self, receiver: ReceiveHandler, handler: Callable[[ReceiveHandler], Any] | None
    ) -> tuple[str | None, Any, Any, Exception | None]:
        """Decode the loaded message with ``handler`` (default: the one its dispatch key
        names): ``(key, data, parsed frame 0, None)``, or ``(key, None, None, error)``."""
        receiver.strict = self.strict
        receiver._in_receive = True
        key = None
        try:
            if handler is None:
                key = dispatch.dispatch_key(receiver)
                handler = self._receive_handler(key) if self.handlers else get_receive_handler(key)
            data = handler(receiver)
            if not data:
                raise DecodeError("the handler returned no data")
            return key, data, receiver.parsed_header(), None
        except Exception as error:
            return key, None, None, error
        finally:
            receiver._in_receive = False
            receiver.end_message()  # what the handler left unread is not kept alive

    def _succeeded(self, key: str | None, header: Any, data: Any) -> Message | None:
        """Count a decoded message as received and make its `Message` (``None``: skipped)."""
        if type(header) is not dict:
            header = data  # a CBOR message (Stream V2) is its own header
        elif key is None:
            key = header.get("htype")
            if type(key) is not str:
                key = None
        try:
            self.statistics.message_succeeded(key, header)
        except Exception as error:  # a header field from the network its accounting refused
            self._skip(error, key)
            return None
        return Message(self.statistics, data)

    def _receive_in_order(
        self,
        workers: DecodeWorkers,
        handler: Callable[[ReceiveHandler], Any] | None,
        block: bool,
        decode: bool | None,
    ) -> Message | None:
        """`receive` with decode workers: take what is waiting (up to the workers' depth),
        then deliver the oldest message taken."""
        receiver = self._receiver()
        receiver.block = block
        receiver.decode = self.decode if decode is None else decode
        while not workers.full:
            first = not workers
            try:
                flags = 0 if first and block else zmq.NOBLOCK
                message = self._take_in_flight(receiver, handler, flags)
            except zmq.Again:
                if not first:
                    break
                if block:
                    self.statistics.message_failed("timeout")
                return None
            except zmq.ZMQError as error:
                raise _stream_error(error, "receive") from error
            workers.add(message)
        return self._deliver_in_flight(workers.oldest())

    @property
    def in_flight(self) -> int:
        """Messages the decode workers have taken but `receive` has not yet returned."""
        return 0 if self._workers is None else len(self._workers)

    def receive_in_flight(self) -> Message | None:
        """The oldest message in flight (see `in_flight`), taking nothing from the socket.

        ``None`` when none is in flight, or when it failed to decode (counted as by
        `receive`); for consumers that stop and want what was already taken.
        """
        workers = self._workers
        if workers is None or not workers:
            return None
        return self._deliver_in_flight(workers.oldest())

    def _take_in_flight(
        self, receiver: ReceiveHandler, handler: Callable[[ReceiveHandler], Any] | None, flags: int
    ) -> InFlight:
        """Take the next message and run its handler, its payloads left for the workers."""
        receiver.receive_message(flags)
        payloads: list[Any] = []
        receiver.deferred_payloads = payloads
        try:
            key, data, header, failure = self._run_handler(receiver, handler)
        finally:
            receiver.deferred_payloads = None
        statistics = self.statistics
        from .decoding import InFlight

        message = InFlight(key, header, data, payloads, statistics.bytes_received)
        statistics.bytes_received = 0
        message.error = failure
        return message

    def _deliver_in_flight(self, message: InFlight) -> Message | None:
        """Count ``message`` as the serial `receive` would have, and return it (or ``None``)."""
        statistics = self.statistics
        statistics.bytes_received = message.nbytes
        for decoding in message.payloads:
            decoding.count()
        if message.error is not None:
            self._skip(cast(Exception, message.error), message.key)
            return None
        return self._succeeded(message.key, message.header, message.data)

    def receive_handler(self, key: str) -> Callable[[Any], Any]:
        """The receive function for dispatch key ``key``: this stream's `handlers` first,
        then the registry (`UnknownHtypeError` if neither has one)."""
        return self._receive_handler(key)

    def _receive_decoded(self, receiver: ReceiveHandler, flags: int) -> Message | None:
        """Receive the next message and, where the compiled path can, decode it whole.

        Returns the finished `Message` (already counted) for a message the compiled path
        decoded, else ``None`` with the message loaded into ``receiver`` for a handler.
        """
        speedups = self._speedups
        if speedups is None or (
            self.handlers and any(key in self.handlers for key in _COMPILED_HTYPES)
        ):
            receiver.receive_message(flags)
            return None
        socket = self.socket
        if socket is None or socket.closed:
            raise zmq.ZMQError(zmq.ENOTSOCK)
        result = speedups.receive_message(self._handle, flags, self.statistics)
        if type(result) is not tuple:
            receiver.end_message()
            return result
        frames, header, raw_header = result
        if raw_header is None:
            receiver.load(frames)
        else:
            receiver.load(frames, header, raw_header)
        return None

    def _receive_handler(self, key: str) -> Callable[[Any], Any]:
        override = self.handlers.get(key)
        if override is None:
            return get_receive_handler(key)
        return getattr(override, "receive", override)

    def _skip(self, error: Exception, key: str | None) -> None:
        """Count and report a message that failed to decode; a strict stream raises."""
        if not isinstance(error, DecodeError):
            error = DecodeError(f"{type(error).__name__}: {_text(error)}")
        self.statistics.message_failed(error.reason)
        self._report_skip(error, key)
        if self.strict:
            raise error

    def _report_skip(self, error: DecodeError, key: str | None) -> None:
        """Log a skipped message: the first of each kind as a warning, the rest at debug."""
        kind = (error.reason, key if key is None else key[:MAX_SHOWN])
        text = _text(error)
        if kind in self._reported:
            logger.debug("skipped a message (%s): %s", error.reason, text)
            return
        if len(self._reported) >= MAX_REPORTED_SKIP_KINDS:
            self.unlogged_skip_kinds += 1
            if self.unlogged_skip_kinds == 1:
                logger.warning(
                    "skipped messages of more than %d kinds: further new kinds are "
                    "logged at debug level (counted in unlogged_skip_kinds)",
                    MAX_REPORTED_SKIP_KINDS,
                )
            logger.debug("skipped a message (%s): %s", error.reason, text)
            return
        self._reported.add(kind)
        logger.warning(
            "skipped a message (%s): %s; further %s messages%s are logged at debug level",
            error.reason,
            text,
            error.reason,
            f" of {shown(key)}" if key else "",
        )

    def receive_parts(self, block: bool = True) -> list[Any] | None:
        """The next message undecoded: its parts as frames, never copied.

        A frame is a ``zmq.Frame`` or the compiled path's equivalent (see
        `mflow._fastpath.FRAME_TYPES`): ``len()``, the buffer protocol, ``.bytes``,
        ``.buffer`` and ``.more`` work on both.

        ``None`` on a receive timeout or, when not blocking, if nothing is waiting. For
        tools that record or forward messages as they are; the message is not counted in
        ``statistics``.
        """
        receiver = self._receiver()
        take = self._take_message
        try:
            if take is None:
                raise zmq.ZMQError(zmq.ENOTSOCK)
            frames = take(0 if block else zmq.NOBLOCK)
        except zmq.Again:
            return None
        except zmq.ZMQError as error:
            raise _stream_error(error, "receive") from error
        receiver.end_message()
        return frames

    def _receiver(self) -> ReceiveHandler:
        if self.receiver is None:
            if self.closed:
                raise StreamClosedError("cannot receive: the stream is not connected")
            raise ConfigurationError("cannot receive on a send-only (PUSH/PUB) stream")
        return self.receiver

    def receive_raw(self, block: bool = True) -> Message | None:
        """The next message as raw-1.0: ``{"header": ..., "data": [parts]}``."""
        return self.receive(handler=get_receive_handler("raw-1.0"), block=block)

    # -- sending -----------------------------------------------------------------------

    def _open_socket(self, doing: str) -> zmq.Socket:
        if self.socket is None or self.socket.closed:
            raise StreamClosedError(f"cannot {doing}: the stream is not connected")
        return self.socket

    def send(
        self, message: Any, send_more: bool = False, block: bool = True, as_json: bool = False
    ) -> bool:
        """Send one frame (``as_json``: ``message`` serialised as JSON).

        ``send_more`` marks more frames of the same message to follow. Returns whether
        the frame was queued: a non-blocking send that would block drops it and counts
        it in ``statistics.send_dropped``; a blocking send that exceeds ``send_timeout``
        raises `SendTimeoutError` (also a ``zmq.Again``, as in 1.0).
        """
        socket = self._open_socket("send")
        flags = (zmq.SNDMORE if send_more else 0) | (0 if block else zmq.NOBLOCK)
        if as_json:
            queued = self._deliver(block, socket.send_json, message, flags)
        else:
            queued = self._deliver(
                block, socket.send, message, flags, self.zmq_copy, self.zmq_track
            )
        if queued and not send_more and self.delivery is not None:
            self.delivery.message_sent()
        return queued

    def send_multipart(self, parts: Sequence[Any], block: bool = True) -> bool:
        """Send ``parts`` as one multipart message, atomically; see `send` for the result.

        Received frames (from `receive_parts`) are passed on without a copy; sent to
        several streams they share one buffer.
        """
        socket = self._open_socket("send")
        if not parts:
            raise ConfigurationError("cannot send a message of no parts (ZeroMQ has none)")
        queued = self._deliver(block, self._send_parts, socket, parts, 0 if block else zmq.NOBLOCK)
        if queued and self.delivery is not None:
            self.delivery.message_sent()
        return queued

    def _send_parts(self, socket: zmq.Socket, parts: Sequence[Any], flags: int) -> None:
        # Received frames are passed on shared, small bytes copied, in C; the rest, and
        # everything without the compiled path, goes through pyzmq.
        speedups = self._speedups
        if speedups is None or not speedups.send_frames(self._handle, flags, parts):
            socket.send_multipart(parts, flags, copy=self.zmq_copy)

    def _deliver(self, block: bool, send: Callable[..., Any], *args: Any) -> bool:
        """Run ``send(*args)``, translating pyzmq errors; False if a non-blocking send dropped."""
        try:
            send(*args)
        except zmq.Again as error:
            if block:
                raise SendTimeoutError() from error
            self.statistics.send_dropped += 1
            return False
        except zmq.ZMQError as error:
            raise _stream_error(error, "send") from error
        return True

    def forward(
        self, message: Any, handler: Callable[..., Any] | None = None, block: bool = True
    ) -> None:
        """Send a decoded ``message`` (as `receive` returned its data) with its htype's handler.

        As in 1.0, a message without ``header``/``htype`` raises, while an unknown htype
        or a failing send is logged and skipped; a strict stream raises those too. Also
        as in 1.0, the first part of a message is always sent blocking, whatever
        ``block`` says (use `send_multipart` to drop rather than wait).
        """
        if handler is None:
            htype = dispatch.send_key(message)  # as in 1.0, a message without one raises
            try:
                handler = self._send_handler(htype)
            except UnknownHtypeError:
                logger.warning(
                    "htype - %s - not supported",  # the 1.0 line, bounded
                    htype[:MAX_SHOWN] if type(htype) is str else shown(htype),
                )
                if self.strict:
                    raise
                return
        try:
            handler(message, send=self.send, block=block)
        except Exception:
            logger.warning("Unable to send message - skipping", exc_info=True)
            if self.strict:
                raise

    def _send_handler(self, key: str) -> Callable[..., Any]:
        send = getattr(self.handlers.get(key), "send", None)
        return get_send_handler(key) if send is None else send

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.conn_type} {self.address}"
        return f"<mflow.Stream {state}>"


def _bind(socket: zmq.Socket, address: str) -> None:
    """``socket.bind(address)``; a failure reported as EAGAIN is raised with its real cause.

    A bind never fails for want of time, yet libzmq 4.3 can report a monitored socket's
    failed bind (every stream that watches its peers or guards its access is monitored) as
    EAGAIN: the event it sends the monitor about the failure may overwrite errno first. A
    plain bind of the same TCP address then finds the cause, e.g. "Address already in use".
    """
    try:
        socket.bind(address)
    except zmq.Again as again:
        cause = _tcp_bind_error(address)
        if cause is None:
            raise
        raise zmq.ZMQError(cause) from again


def _tcp_bind_error(address: str) -> int | None:
    """The errno a plain bind of the TCP ``address`` (``tcp://HOST:PORT``) fails with, bound
    as libzmq binds (address reuse on); None if it binds or is no TCP address with a port."""
    scheme, _, rest = address.partition("://")
    host, _, port = rest.rpartition(":")
    if scheme != "tcp" or not port.isdigit():
        return None
    host = host.strip("[]")
    try:
        family, kind, protocol, _, where = _socket.getaddrinfo(
            "0.0.0.0" if host == "*" else host,  # as libzmq binds "*" without ZMQ_IPV6
            int(port),
            type=_socket.SOCK_STREAM,
            flags=_socket.AI_PASSIVE,
        )[0]
    except (OSError, UnicodeError):  # a name that does not resolve: libzmq's error stands
        return None
    with _socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        try:
            probe.bind(where)
        except OSError as error:
            return error.errno
    return None


def _frame_pool(pool: int | FramePool | None) -> FramePool | None:
    """The `FramePool` ``connect(decode_pool=...)`` asks for."""
    if pool is None:
        return None
    from .framepool import FramePool  # numpy only for streams that ask

    if isinstance(pool, FramePool):
        return pool
    if type(pool) is not int or pool < 1:
        raise ConfigurationError(
            f"decode_pool must be a number of frames (1 or more) or a FramePool, not {pool!r}"
        )
    return FramePool(pool)


def _check_arguments(mode: Any, queue_size: Any) -> None:
    """`ConfigurationError` for a ``mode`` or ``queue_size`` no socket can have."""
    if not isinstance(mode, int) or isinstance(mode, bool) or mode not in _SOCKET_TYPES:
        raise ConfigurationError(
            f"mode {mode!r} is not a ZeroMQ socket type (mflow.PULL, SUB, PUSH, PUB, ...)"
        )
    if not isinstance(queue_size, int) or isinstance(queue_size, bool) or queue_size < 0:
        raise ConfigurationError(
            f"queue_size {queue_size!r} is not a number of messages (0 or more; 0: no limit)"
        )


def connect(
    address: str,
    conn_type: str = CONNECT,
    mode: int = PULL,
    queue_size: int = 100,
    receive_timeout: int | None = None,
    linger: int = 1000,
    no_client_action: Callable[[], Any] | None = None,
    no_client_timeout: float | None = 10,
    copy: bool = True,
    send_timeout: int | None = None,
    *,
    context: zmq.Context | None = None,
    strict: bool = False,
    decode: bool = True,
    max_message_size: int | None = None,
    max_decoded_bytes: int | None = None,
    watch_peers: bool = False,
    curve: Curve | None = None,
    allow: Sequence[str] | None = None,
    deny: Sequence[str] | None = None,
    decode_pool: int | FramePool | None = None,
    decode_workers: int = 0,
) -> Stream:
    """Open a `Stream` (1.0 argument order; see `Stream.connect`).

    ``no_client_action`` is called every ``no_client_timeout`` seconds while no peer is
    connected (connect-side connections count too).
    """
    stream = Stream(strict=strict, decode=decode)
    if no_client_action:
        timeout = 10 if no_client_timeout is None else no_client_timeout
        stream.register_socket_monitor(
            ConnectionCountMonitor(no_clients_timeout_notifier(no_client_action, timeout))
        )
    stream.connect(
        address,
        conn_type=conn_type,
        mode=mode,
        receive_timeout=receive_timeout,
        queue_size=queue_size,
        linger=linger,
        context=context,
        copy=copy,
        send_timeout=send_timeout,
        max_message_size=max_message_size,
        max_decoded_bytes=max_decoded_bytes,
        watch_peers=watch_peers,
        curve=curve,
        allow=allow,
        deny=deny,
        decode_pool=decode_pool,
        decode_workers=decode_workers,
    )
    return stream


def poll_streams(streams: Sequence[Stream], timeout_ms: int | None = None) -> list[Stream]:
    """The streams of ``streams`` that have a message to receive, waiting up to
    ``timeout_ms`` milliseconds (``None``: until one has) for the first; in their order."""
    poller = zmq.Poller()
    for stream in streams:
        poller.register(stream._open_socket("poll"), zmq.POLLIN)
    if any(stream.in_flight for stream in streams):
        timeout_ms = 0  # those have a message already (see `Stream.poll`)
    try:
        ready = dict(poller.poll(timeout_ms))
    except zmq.ZMQError as error:
        raise _stream_error(error, "poll") from error
    return [stream for stream in streams if stream.socket in ready or stream.in_flight]


def disconnect(stream: Stream) -> None:
    """Disconnect ``stream`` (1.0 helper)."""
    stream.disconnect()
