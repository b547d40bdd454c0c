"""Receiving from several streams as one (``mflow.utils.Merge`` of 1.0, made fair and blocking)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import zmq

from .message import Message
from .statistics import Statistics

__all__ = ["Merge", "RoundRobinStrategy"]


class RoundRobinStrategy:
    """Chooses the stream to read first: 0, 1, ..., n-1, 0, ..."""

    def __init__(self) -> None:
        self.last_stream_read: int | None = None

    def next(self, streams: Sequence[Any]) -> int:
        """The index of the stream to try next."""
        if self.last_stream_read is None:
            self.last_stream_read = 0
        else:
            self.last_stream_read = (self.last_stream_read + 1) % len(streams)
        return self.last_stream_read


class Merge:
    """Receive from ``streams`` in turn (``receive_strategy`` picks who goes first).

    `receive` tries every stream once without blocking; when none has a message and
    ``block`` is true it waits for any of them to become readable, up to the shortest
    receive timeout among them (forever if none has one).
    """

    def __init__(self, *streams: Any, receive_strategy: RoundRobinStrategy | None = None) -> None:
        self.streams = streams
        self.receive_strategy = RoundRobinStrategy() if receive_strategy is None else receive_strategy
        self._poller = zmq.Poller()
        for stream in streams:
            self._poller.register(stream.socket, zmq.POLLIN)

    def _try_each(self, handler: Callable[[Any], Any] | None) -> Message | None:
        for _ in range(len(self.streams)):
            stream = self.streams[self.receive_strategy.next(self.streams)]
            message = stream.receive(handler=handler, block=False)
            if message is not None:
                return message
        return None

    def _timeout(self) -> int | None:
        timeouts = [s.socket.rcvtimeo for s in self.streams if s.socket.rcvtimeo >= 0]
        return min(timeouts) if timeouts else None

    def receive(self, handler: Callable[[Any], Any] | None = None, block: bool = True
                ) -> Message | None:
        """The next message from any stream, or ``None`` (nothing within the timeout)."""
        message = self._try_each(handler)
        if message is not None or not block or not self.streams:
            return message
        if self._poller.poll(self._timeout()):
            return self._try_each(handler)
        return None

    @property
    def statistics(self) -> Statistics:
        """A snapshot of the summed statistics of all streams."""
        return Statistics.combined(stream.statistics for stream in self.streams)

    def disconnect(self) -> None:
        """Disconnect every stream."""
        for stream in self.streams:
            stream.disconnect()
