"""`Stream`: one ZeroMQ socket with the 1.0 send / receive / forward semantics.

This is the one module that talks to pyzmq on behalf of the user and the one place where
pyzmq errors become mflow errors (`mflow.errors`).
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import TYPE_CHECKING, Any, Callable, Sequence

import zmq

from . import _fastpath, dispatch
from .delivery import Delivery, PeerTracker
from .errors import (ConfigurationError, ConnectError, DecodeError, SendTimeoutError,
                     StreamClosedError, StreamError, UnknownHtypeError)
from .handlers import get_receive_handler, get_send_handler, receive_handlers
from .message import Message
from .monitor import ConnectionCountMonitor, SocketEventListener, no_clients_timeout_notifier
from .receiver import ReceiveHandler
from .statistics import Statistics

if TYPE_CHECKING:
    from .security import Curve, Guard

__all__ = ["Stream", "connect", "disconnect", "poll_streams", "CONNECT", "BIND", "PUB", "SUB",
           "PUSH", "PULL"]

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
        self.strict = strict
        self.decode = decode
        self.handlers: dict[str, Any] = {}
        self._statistics = Statistics()
        self._reported: set[tuple[str, str | None]] = set()
        self._socket_monitors: list[Callable[[dict | None], Any]] = []
        self._socket_event_listener = SocketEventListener(self._socket_monitors)
        #: With ``watch_peers``: who is connected, and (sending streams) what was delivered.
        self.peers: PeerTracker | None = None
        self.delivery: Delivery | None = None
        self._guard: Guard | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def connect(self, address: str, conn_type: str = CONNECT, mode: int = PULL,
                receive_timeout: int | None = None, queue_size: int = 100, linger: int = 1000,
                context: zmq.Context | None = None, copy: bool = True,
                send_timeout: int | None = None, *,
                max_message_size: int | None = None, watch_peers: bool = False,
                curve: Curve | None = None, allow: Sequence[str] | None = None,
                deny: Sequence[str] | None = None) -> None:
        """Open the socket: connect to ``address``, or bind when ``conn_type`` is not "connect".

        ``mode`` is the socket type (PULL, SUB, PUSH, PUB, ...; SUB subscribes to
        everything), ``queue_size`` the high-water mark in both directions, timeouts in
        milliseconds (``None`` waits forever, ``0`` returns at once), ``copy=False``
        receives frames as zero-copy memoryviews and sends without copying.
        ``max_message_size`` (bytes) makes ZeroMQ refuse larger messages (MAXMSGSIZE).
        ``watch_peers`` sets `peers` (a `PeerTracker`) and, on a sending socket, `delivery`
        (a `Delivery`: what was sent and what did not reach a peer, final after
        `disconnect`); it runs the socket-event thread.
        ``curve`` (a `mflow.security.Curve`) encrypts and authenticates the connections,
        ``allow`` / ``deny`` list peer IP addresses to let in or refuse; every refusal
        is counted in ``statistics.refused`` (see `mflow.security`).
        Raises `ConnectError` (a ``RuntimeError``, as in 1.0) when binding or connecting
        fails; nothing stays open then.
        """
        if self.socket is not None and not self.socket.closed:
            raise ConfigurationError(f"stream is already connected to {self.address}")
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
                socket.bind(address)
        except Exception as error:
            if socket is not None:
                self._socket_event_listener.stop()
                socket.close(linger=0)
            self._release_guard()
            if self._context_is_owned:
                self.context.term()
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
        self.receiver = None if mode in _SEND_ONLY else ReceiveHandler(
            socket, copy=copy, statistics=self.statistics)
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

    def _secure(self, socket: zmq.Socket, curve: Curve | None, allow: Sequence[str] | None,
                deny: Sequence[str] | None, max_message_size: int | None) -> None:
        from . import security  # only streams that ask for it start ZAP threads

        guard = security.secure(socket, self.context, self._count_refusal, curve=curve,
                                allow=allow, deny=deny, max_message_size=max_message_size)
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
        return self.socket.last_endpoint.decode()

    @property
    def receive_timeout(self) -> int | None:
        """The receive timeout in milliseconds, ``None`` when a receive waits forever."""
        timeout = int(self._open_socket("read the receive timeout").rcvtimeo)
        return None if timeout < 0 else timeout

    def poll(self, timeout_ms: int | None = None, flags: int = zmq.POLLIN) -> bool:
        """Whether a message can be received (``flags=zmq.POLLIN``) or sent (``zmq.POLLOUT``)
        within ``timeout_ms`` milliseconds (``None`` waits as long as it takes, 0 not at all).

        Raises `StreamClosedError` when the stream is not connected.
        """
        socket = self._open_socket("poll")
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
        """
        socket = self.socket
        if socket is None or socket.closed:
            logger.debug("stream already disconnected")
            return
        try:
            if self.receiver is not None and socket.type in _RECEIVE_ONLY:
                # Only for receive-only sockets: leaving drops what connections still hold,
                # which would lose a sender's queued messages.
                if self.conn_type == CONNECT:
                    socket.disconnect(self.address)
                else:
                    socket.unbind(socket.last_endpoint.decode())
        except zmq.ZMQError as error:
            logger.debug("could not leave %s: %s", self.address, error)
        finally:
            delivery = self.delivery
            linger = socket.linger if delivery is None else delivery.before_close(socket.linger)
            socket.linger = linger
            closing = time.monotonic()
            socket.close()
            self._socket_event_listener.stop()
            self._release_guard()
            if self._context_is_owned:
                self.context.term()
            if delivery is not None:
                delivery.after_close(linger, time.monotonic() - closing
                                     if self._context_is_owned else None)
        logger.info("Disconnected")

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.disconnect()

    def __del__(self) -> None:
        socket = getattr(self, "socket", None)
        if socket is not None and not socket.closed:
            warnings.warn(f"unclosed mflow stream {self.address!r}", ResourceWarning,
                          source=self, stacklevel=2)
            self._socket_event_listener.stop()
            socket.close(linger=0)
            self._release_guard()
            if self._context_is_owned:
                self.context.term()

    # -- socket monitors ---------------------------------------------------------------

    def register_socket_monitor(self, monitor: Callable[[dict | None], Any]) -> None:
        """Call ``monitor(event)`` for every socket event (and ``None`` as a heartbeat)."""
        if monitor not in self._socket_monitors:
            self._socket_monitors.append(monitor)
        if not self._socket_event_listener.monitor_listening.is_set() and not self.closed:
            self._socket_event_listener.start(self.socket)

    def remove_socket_monitor(self, callback_function: Callable[[dict | None], Any]) -> None:
        """Stop calling ``callback_function``; the listener stops with the last monitor."""
        if callback_function in self._socket_monitors:
            self._socket_monitors.remove(callback_function)
        if not self._socket_monitors:
            self._socket_event_listener.stop()

    # -- receiving ---------------------------------------------------------------------

    def receive(self, handler: Callable[[ReceiveHandler], Any] | None = None, block: bool = True,
                *, decode: bool | None = None) -> Message | None:
        """The next message decoded by ``handler`` (by default the one its htype names).

        Returns ``None`` on a receive timeout, when nothing is waiting and ``block`` is
        false, or when the message cannot be decoded; every such case is counted in
        ``statistics.skipped`` (non-blocking polls that find nothing are not). A strict
        stream raises the decode error instead. ``decode`` overrides the stream's
        ``decode`` for this call.
        """
        receiver = self._receiver()
        receiver.block = block
        flags = 0 if block else zmq.NOBLOCK
        try:
            if handler is None and not self.handlers:
                message = receiver.receive_decoded(flags)
                if message is not None:
                    return message
            else:
                receiver.receive_message(flags)
        except zmq.Again:
            if block:
                self.statistics.message_failed("timeout")
            return None
        except zmq.ZMQError as error:
            raise _stream_error(error, "receive") from error
        receiver.decode = self.decode if decode is None else decode
        receiver._in_receive = True
        key = None
        try:
            if handler is None:
                key = dispatch.dispatch_key(receiver)
                handler = self._receive_handler(key) if self.handlers else (
                    receive_handlers.get(key) or get_receive_handler(key))
            data = handler(receiver)
            if not data:
                raise DecodeError("the handler returned no data")
            header = receiver._header
        except Exception as error:
            return self._skip(error, key)
        finally:
            receiver._in_receive = False
            receiver.end_message()  # what the handler left unread is not kept alive
        if type(header) is not dict:
            header = data  # a CBOR message (Stream V2) is its own header
        elif key is None:
            key = header.get("htype")
        self.statistics.message_succeeded(key, header)
        return Message(self.statistics, data)

    def receive_handler(self, key: str) -> Callable[[Any], Any]:
        """The receive function for dispatch key ``key``: this stream's `handlers` first,
        then the registry (`UnknownHtypeError` if neither has one)."""
        return self._receive_handler(key)

    def _receive_handler(self, key: str) -> Callable[[Any], Any]:
        override = self.handlers.get(key)
        if override is None:
            return get_receive_handler(key)
        return getattr(override, "receive", override)

    def _skip(self, error: Exception, key: str | None) -> None:
        """Count and report a message that failed to decode; a strict stream raises."""
        if not isinstance(error, DecodeError):
            error = DecodeError(f"{type(error).__name__}: {error}")
        self.statistics.message_failed(error.reason)
        self._report_skip(error, key)
        if self.strict:
            raise error
        return None

    def _report_skip(self, error: DecodeError, key: str | None) -> None:
        """Log a skipped message: the first of each kind as a warning, the rest at debug."""
        kind = (error.reason, key)
        if kind in self._reported:
            logger.debug("skipped a message (%s): %s", error.reason, error)
            return
        self._reported.add(kind)
        logger.warning("skipped a message (%s): %s; further %s messages%s are logged at "
                       "debug level", error.reason, error, error.reason,
                       f" of {key}" if key else "")

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
        try:
            frames = receiver.take_message(0 if block else zmq.NOBLOCK)
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

    def send(self, message: Any, send_more: bool = False, block: bool = True,
             as_json: bool = False) -> bool:
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
            queued = self._deliver(block, socket.send, message, flags, self.zmq_copy,
                                   self.zmq_track)
        if queued and not send_more and self.delivery is not None:
            self.delivery.message_sent()
        return queued

    def send_multipart(self, parts: Sequence[Any], block: bool = True) -> bool:
        """Send ``parts`` as one multipart message, atomically; see `send` for the result.

        Received frames (from `receive_parts`) are passed on without a copy; sent to
        several streams they share one buffer.
        """
        queued = self._deliver(block, self._send_parts, self._open_socket("send"), parts,
                               0 if block else zmq.NOBLOCK)
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

    def forward(self, message: Any, handler: Callable[..., Any] | None = None,
                block: bool = True) -> None:
        """Send a decoded ``message`` (as `receive` returned its data) with its htype's handler.

        As in 1.0, a message without ``header``/``htype`` raises, while an unknown htype
        or a failing send is logged and skipped; a strict stream raises those too. Also
        as in 1.0, the first part of a message is always sent blocking, whatever
        ``block`` says (use `send_multipart` to drop rather than wait).
        """
        if handler is None:
            htype = dispatch.send_key(message)  # as in 1.0, a message without one raises
            try:
                handler = get_send_handler(htype)
            except UnknownHtypeError:
                logger.warning("htype - %s - not supported", htype)
                if self.strict:
                    raise
                return
        try:
            handler(message, send=self.send, block=block)
        except Exception:
            logger.warning("Unable to send message - skipping", exc_info=True)
            if self.strict:
                raise

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.conn_type} {self.address}"
        return f"<mflow.Stream {state}>"


def connect(address: str, conn_type: str = CONNECT, mode: int = PULL, queue_size: int = 100,
            receive_timeout: int | None = None, linger: int = 1000,
            no_client_action: Callable[[], Any] | None = None,
            no_client_timeout: float | None = 10, copy: bool = True,
            send_timeout: int | None = None, *, context: zmq.Context | None = None,
            strict: bool = False, decode: bool = True,
            max_message_size: int | None = None, watch_peers: bool = False,
            curve: Curve | None = None, allow: Sequence[str] | None = None,
            deny: Sequence[str] | None = None) -> Stream:
    """Open a `Stream` (1.0 argument order; see `Stream.connect`).

    ``no_client_action`` is called every ``no_client_timeout`` seconds while no peer is
    connected (connect-side connections count too).
    """
    stream = Stream(strict=strict, decode=decode)
    if no_client_action:
        timeout = 10 if no_client_timeout is None else no_client_timeout
        stream.register_socket_monitor(
            ConnectionCountMonitor(no_clients_timeout_notifier(no_client_action, timeout)))
    stream.connect(address, conn_type=conn_type, mode=mode, receive_timeout=receive_timeout,
                   queue_size=queue_size, linger=linger, context=context, copy=copy,
                   send_timeout=send_timeout, max_message_size=max_message_size,
                   watch_peers=watch_peers, curve=curve, allow=allow, deny=deny)
    return stream


def poll_streams(streams: Sequence[Stream], timeout_ms: int | None = None) -> list[Stream]:
    """The streams of ``streams`` that have a message to receive, waiting up to
    ``timeout_ms`` milliseconds (``None``: until one has) for the first; in their order."""
    poller = zmq.Poller()
    for stream in streams:
        poller.register(stream._open_socket("poll"), zmq.POLLIN)
    try:
        ready = dict(poller.poll(timeout_ms))
    except zmq.ZMQError as error:
        raise _stream_error(error, "poll") from error
    return [stream for stream in streams if stream.socket in ready]


def disconnect(stream: Stream) -> None:
    """Disconnect ``stream`` (1.0 helper)."""
    stream.disconnect()
