"""The asyncio twin of mflow: `connect`, `Stream` and `Merge` for event-loop programs.

The same names as the synchronous API, awaited::

    import mflow.asyncio as amflow

    async with amflow.connect("tcp://detector:9999", receive_timeout=1000) as stream:
        async for message in stream:
            print(message.data["header"])

An asyncio `Stream` wraps a synchronous `mflow.Stream` (its ``sync`` attribute) and never
blocks the event loop: it waits on the loop until the socket is ready, then receives or
sends with the synchronous stream without waiting, on the compiled receive path where it
is built and on the pure Python path otherwise, so messages, statistics and errors are
the synchronous API's.

Contracts:

- **Receive timeouts** are the stream's ``receive_timeout`` (milliseconds; ``None`` waits
  forever): a timeout returns ``None`` and is counted as a ``timeout`` skip, as in the
  synchronous API. ``async for`` yields every decodable message and ends at a timeout.
- **Cancellation never loses or splits a message**: a task is only ever suspended while
  the socket has nothing for it; a message is received and decoded without an ``await`` in
  between, so a cancelled `Stream.receive` leaves the next message for the next call.
- **Sends complete when awaited**: the message has been handed to ZeroMQ when ``await
  stream.send_multipart(...)`` returns (a coroutine that is never awaited sends nothing,
  and Python warns about it). A send waits on the loop for room in the queue, up to
  ``send_timeout``, then raises `SendTimeoutError` like a blocking synchronous send.
- ZeroMQ signals readiness through an edge-triggered file descriptor: every wait checks
  the socket's events after it starts watching the descriptor (a receive's own look just
  before counts, if nothing read the events after it); each time the descriptor
  signals, and after every receive or send while other tasks wait, the events are read
  again and the tasks they have something for are woken, so no wake-up is missed.
- A receive takes a message that is waiting without suspending; a task is suspended only
  when the socket has nothing for it, and resumed only when it has (or at its deadline).
- A stream may be created before the loop runs; it uses the loop that awaits it.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable, Sequence, cast

import zmq

from . import stream as _sync
from .errors import (
    ConfigurationError,
    MflowError,
    SendTimeoutError,
    StreamClosedError,
    StreamTimeoutError,
)
from .handlers import get_handler, register_handler
from .merge import RoundRobinStrategy
from .message import Message
from .receiver import ReceiveHandler
from .statistics import Statistics
from .stream import BIND, CONNECT, PUB, PULL, PUSH, SUB

__all__ = [
    "connect",
    "Stream",
    "Merge",
    "RoundRobinStrategy",
    "Message",
    "Statistics",
    "ReceiveHandler",
    "register_handler",
    "get_handler",
    "CONNECT",
    "BIND",
    "PUB",
    "SUB",
    "PUSH",
    "PULL",
    "MflowError",
    "StreamClosedError",
    "StreamTimeoutError",
    "SendTimeoutError",
]

_TIMED_OUT = object()
#: What `Stream._receive_now` returns when no message is waiting (cheaper than zmq.Again).
_NOTHING = object()
#: The socket events a task waits for, as plain ints (``zmq.POLLIN & int`` builds an enum).
_READABLE, _WRITABLE = int(zmq.POLLIN), int(zmq.POLLOUT)


class Stream:
    """An mflow stream for asyncio programs; see the module docstring for the contracts.

    Wraps the synchronous `mflow.Stream` ``sync``; its attributes (``statistics``,
    ``endpoint``, ``handlers``, ``strict``, ``decode``, ...) are read through this object.
    """

    def __init__(self, sync: _sync.Stream) -> None:
        if sync.decode_workers:
            raise ConfigurationError(_NO_DECODE_WORKERS)
        self.sync = sync
        #: The waiting tasks' futures (True: their event is there) and events.
        self._waiters: list[tuple[asyncio.Future[bool], int]] = []
        self._watched: tuple[asyncio.AbstractEventLoop, int] | None = None
        #: The one timer that wakes the waiters for their deadlines (see `_wake_at`).
        self._timer: asyncio.TimerHandle | None = None
        self._sending_more = False
        #: Whether the last receive found nothing waiting (see `_receive_first`).
        self._waited = False

    def __getattr__(self, name: str) -> Any:
        # Everything that is not about waiting is the synchronous stream's.
        return getattr(self.sync, name)

    # -- waiting on the event loop -----------------------------------------------------

    def _socket(self, doing: str) -> zmq.Socket:
        socket = self.sync.socket
        if socket is None or socket.closed:
            raise StreamClosedError(f"cannot {doing}: the stream is not connected")
        return socket

    def _timeout(self, doing: str) -> int:
        """The socket's receive or send timeout in milliseconds (-1: none)."""
        socket = self._socket(doing)
        return cast(int, socket.getsockopt(zmq.RCVTIMEO if doing == "receive" else zmq.SNDTIMEO))

    def _events(self) -> int:
        """The socket's events now (0 once it is closed), waking the waiters they are for.

        The loop calls it when the descriptor signals, and every receive or send when
        others wait. Reading the events resets the descriptor, so it signals again on the
        next change: a waiter not woken here is woken then. The descriptor signals for more
        than messages, and a signal that brings nothing for a waiter does not resume it.
        On the compiled path the events are read in C: a wait reads them twice.
        """
        sync = self.sync
        socket = sync.socket
        if socket is None or socket.closed:
            self._wake_all()
            return 0
        speedups = sync._speedups
        if speedups is not None:
            events: int = speedups.events(sync._handle)
        else:
            events = cast(int, socket.getsockopt(zmq.EVENTS))
        for waiter, event in self._waiters:
            if events & event and not waiter.done():
                waiter.set_result(True)
        return events

    def _wake_all(self) -> None:
        """Wake every waiter to look for itself (a deadline, or the stream closed)."""
        for waiter, _ in self._waiters:
            if not waiter.done():
                waiter.set_result(False)

    def _watch(self, loop: asyncio.AbstractEventLoop, socket: zmq.Socket) -> bool:
        """Watch the socket's descriptor on ``loop`` (kept until disconnect or another loop);
        True if it was not watched on ``loop`` before."""
        if self._watched is not None and self._watched[0] is loop:
            return False
        self._unwatch()
        descriptor = socket.FD
        loop.add_reader(descriptor, self._events)
        self._watched = (loop, descriptor)
        return True

    def _unwatch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._watched is not None:
            loop, descriptor = self._watched
            self._watched = None
            if not loop.is_closed():
                loop.remove_reader(descriptor)

    def _wake_at(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """Have the waiters woken by ``deadline`` (loop time).

        One timer serves every wait of the stream and is only ever moved earlier: a wait
        that ends before it leaves it running, and a waiter it wakes before its own
        deadline waits on. While messages flow, a wait costs no timer of its own.
        """
        timer = self._timer
        if timer is not None:
            if timer.when() <= deadline:
                return
            timer.cancel()
        self._timer = loop.call_at(deadline, self._deadline_reached)

    def _deadline_reached(self) -> None:
        self._timer = None
        self._wake_all()

    async def _wait(self, event: int, timeout_ms: int, doing: str, *, looked: bool = False) -> bool:
        """Wait until the socket has ``event`` (POLLIN/POLLOUT); False after ``timeout_ms``.

        ``looked``: the caller found no ``event`` just now, with no ``await`` since.
        """
        socket = self._socket(doing)
        loop = asyncio.get_running_loop()
        # Checked once the descriptor is watched, and again after any wake-up that did not
        # find the event: the descriptor signals edges, and reading the events (in any
        # receive or send too) may consume the edge this wait would sleep through. The
        # caller's look counts as the first check only if the descriptor was watched then
        # and no waiter's wake-up read the events after it: a waiter woken by that read
        # may be cancelled before it runs, and its edge would be lost for this wait.
        check = self._watch(loop, socket) or not looked or bool(self._waiters)
        deadline = None if timeout_ms < 0 else loop.time() + timeout_ms / 1000
        while True:
            if check and self._events() & event:
                return True
            check = True
            if deadline is not None:
                if loop.time() >= deadline:
                    return False
                self._wake_at(loop, deadline)
            waiter: asyncio.Future[bool] = loop.create_future()
            entry = (waiter, event)
            self._waiters.append(entry)
            try:
                ready = await waiter
            finally:
                self._waiters.remove(entry)
            if self.sync.closed:
                raise StreamClosedError(f"cannot {doing}: the stream was disconnected")
            if ready:
                return True

    def _after_operation(self) -> None:
        # A receive or send may have drained the descriptor other tasks wait on.
        if self._waiters:
            self._events()

    # -- receiving ---------------------------------------------------------------------

    def _receive_now(
        self,
        handler: Callable[[ReceiveHandler], Any] | None,
        decode: bool | None,
        look_first: bool,
    ) -> Any:
        """The next message, None if it failed to decode; `_NOTHING` if none is waiting.

        With ``look_first`` the events are read before receiving, for a stream that likely
        has nothing (one of a merge, or one whose last receive had to wait): a receive that
        finds nothing raises ``zmq.Again``, which costs several times as much.
        """
        if look_first:
            self.sync._receiver()  # a closed or send-only stream says so, as a receive does
            if not self._events() & _READABLE:
                return _NOTHING
        try:
            return self.sync._receive(handler, False, decode)
        except zmq.Again:
            return _NOTHING
        finally:
            if self._waiters:  # a receive reads the events: wake whom they are for
                self._events()

    def _receive_first(
        self, handler: Callable[[ReceiveHandler], Any] | None, decode: bool | None
    ) -> Any:
        """A receive's first try, without a coroutine of its own: a busy stream has a
        message waiting. One that had to wait last time (a sender slower than this
        receiver, as with large messages) likely has nothing again: it looks first."""
        message = self._receive_now(handler, decode, look_first=self._waited)
        self._waited = message is _NOTHING
        return message

    async def _receive(
        self, handler: Callable[[ReceiveHandler], Any] | None, decode: bool | None
    ) -> Any:
        """After `_receive_now` found nothing: the next message, None if it failed to
        decode, `_TIMED_OUT` after the timeout."""
        timeout_ms = self._timeout("receive")
        loop = asyncio.get_running_loop()
        deadline = None if timeout_ms < 0 else loop.time() + timeout_ms / 1000
        while True:
            # One deadline for the whole receive, however often another task wins the race.
            remaining = -1 if deadline is None else max(0, int((deadline - loop.time()) * 1000))
            if not await self._wait(_READABLE, remaining, "receive", looked=True):
                break
            message = self._receive_now(handler, decode, look_first=False)
            if message is not _NOTHING:
                return message  # else another task took it
        self.sync.statistics.message_failed("timeout")
        return _TIMED_OUT

    async def receive(
        self, handler: Callable[[ReceiveHandler], Any] | None = None, *, decode: bool | None = None
    ) -> Message | None:
        """The next message, as `mflow.Stream.receive` returns it.

        ``None`` after ``receive_timeout`` or for a message that fails to decode (both
        counted in ``statistics.skipped``); a strict stream raises the decode error.
        """
        message = self._receive_first(handler, decode)
        if message is _NOTHING:
            message = await self._receive(handler, decode)
        return None if message is _TIMED_OUT else message

    async def receive_parts(self) -> list[Any] | None:
        """The next message undecoded (see `mflow.Stream.receive_parts`); None on a timeout."""
        timeout = self._timeout("receive")
        while True:
            frames = self.sync.receive_parts(block=False)
            if frames is not None:
                self._after_operation()
                return frames
            if not await self._wait(_READABLE, timeout, "receive"):
                return None

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        """The next decodable message; the iteration ends at a receive timeout."""
        while True:
            message = self._receive_first(None, None)
            if message is _NOTHING:
                message = await self._receive(None, None)
                if message is _TIMED_OUT:
                    raise StopAsyncIteration from None
            if message is not None:
                return message

    # -- sending -----------------------------------------------------------------------

    async def _writable(self) -> None:
        if self._sending_more:
            return  # the rest of a multipart message is always accepted with its first part
        timeout = self._timeout("send")
        if not await self._wait(_WRITABLE, timeout, "send"):
            raise SendTimeoutError()

    async def send(self, message: Any, send_more: bool = False, as_json: bool = False) -> bool:
        """Send one frame (see `mflow.Stream.send`), waiting on the loop for room."""
        await self._writable()
        sent = self.sync.send(message, send_more=send_more, as_json=as_json)
        self._sending_more = send_more
        self._after_operation()
        return sent

    async def send_multipart(self, parts: Sequence[Any]) -> bool:
        """Send ``parts`` as one message (see `mflow.Stream.send_multipart`)."""
        await self._writable()
        sent = self.sync.send_multipart(parts)
        self._after_operation()
        return sent

    async def forward(self, message: Any, handler: Callable[..., Any] | None = None) -> None:
        """Send a decoded ``message`` with its htype's handler (see `mflow.Stream.forward`)."""
        await self._writable()
        self.sync.forward(message, handler=handler)
        self._after_operation()

    # -- lifecycle ---------------------------------------------------------------------

    def disconnect(self) -> None:
        """Close the stream (idempotent); tasks waiting on it raise `StreamClosedError`."""
        self._unwatch()
        self.sync.disconnect()
        self._wake_all()

    async def __aenter__(self) -> Stream:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.disconnect()

    def __repr__(self) -> str:
        return f"<mflow.asyncio.Stream of {self.sync!r}>"


_NO_DECODE_WORKERS = (
    "decode_workers is for synchronous streams; an asyncio stream decodes as it receives"
)


def connect(*args: Any, **kwargs: Any) -> Stream:
    """Open an asyncio `Stream`: the arguments of `mflow.connect` (but ``decode_workers``),
    the same defaults."""
    if kwargs.get("decode_workers"):
        raise ConfigurationError(_NO_DECODE_WORKERS)
    return Stream(_sync.connect(*args, **kwargs))


class Merge:
    """Receive from several asyncio streams as one, fairly (see `mflow.Merge`).

    `receive` takes a message from the first stream, in the order ``receive_strategy``
    gives, that has one; otherwise it waits for any of them, up to the shortest receive
    timeout among them.
    """

    def __init__(
        self, *streams: Stream, receive_strategy: RoundRobinStrategy | None = None
    ) -> None:
        self.streams = streams
        self.receive_strategy = (
            RoundRobinStrategy() if receive_strategy is None else receive_strategy
        )

    def _try_each(self, handler: Callable[[ReceiveHandler], Any] | None) -> Message | None:
        for _ in range(len(self.streams)):
            stream = self.streams[self.receive_strategy.next(self.streams)]
            # Most of the streams of a merge have nothing at any moment.
            message = stream._receive_now(handler, None, look_first=True)
            if message is not _NOTHING and message is not None:
                return message
        return None

    def _timeout_ms(self) -> int:
        timeouts = [s._timeout("receive") for s in self.streams]
        timeouts = [t for t in timeouts if t >= 0]
        return min(timeouts) if timeouts else -1

    async def _any_readable(self, timeout_ms: int) -> bool:
        waits = [
            asyncio.ensure_future(s._wait(_READABLE, timeout_ms, "receive")) for s in self.streams
        ]
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            return any(task.result() for task in done)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    async def receive(
        self, handler: Callable[[ReceiveHandler], Any] | None = None
    ) -> Message | None:
        """The next message from any stream, or ``None`` when none arrives in time."""
        timeout = self._timeout_ms()
        while self.streams:
            message = self._try_each(handler)
            if message is not None:
                return message
            if not await self._any_readable(timeout):
                return None
        return None

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        """The next message from any stream; the iteration ends when none arrives in time."""
        message = await self.receive()
        if message is None:
            raise StopAsyncIteration
        return message

    @property
    def statistics(self) -> Statistics:
        """A snapshot of the summed statistics of all streams."""
        return Statistics.combined(stream.statistics for stream in self.streams)

    def disconnect(self) -> None:
        """Disconnect every stream."""
        for stream in self.streams:
            stream.disconnect()

    async def __aenter__(self) -> Merge:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.disconnect()
