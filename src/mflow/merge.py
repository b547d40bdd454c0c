"""Receiving from several streams as one, and grouping their messages by number.

`Merge` is ``mflow.utils.Merge`` of 1.0, made fair and blocking; `ArrivalMerge` takes whole
messages (frames, undecoded) from whichever streams have one, fairly; `Aligner` groups the
messages of several inputs that carry the same number (``frame``, ``pulse_id``) in their
JSON header.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable, Iterator, Sequence

from .jsonparse import parse_json
from .message import Message
from .statistics import Statistics
from .stream import Stream, poll_streams

__all__ = ["Merge", "RoundRobinStrategy", "ArrivalMerge", "Aligner"]

#: How many released group numbers an `Aligner` remembers, to recognise late messages.
RECENT_GROUPS = 10_000


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
        self.receive_strategy = (
            RoundRobinStrategy() if receive_strategy is None else receive_strategy
        )

    def _try_each(self, handler: Callable[[Any], Any] | None) -> Message | None:
        for _ in range(len(self.streams)):
            stream = self.streams[self.receive_strategy.next(self.streams)]
            message = stream.receive(handler=handler, block=False)
            if message is not None:
                return message
        return None

    def _timeout(self) -> int | None:
        timeouts = [t for t in (s.receive_timeout for s in self.streams) if t is not None]
        return min(timeouts) if timeouts else None

    def receive(
        self, handler: Callable[[Any], Any] | None = None, block: bool = True
    ) -> Message | None:
        """The next message from any stream, or ``None`` (nothing within the timeout)."""
        message = self._try_each(handler)
        if message is not None or not block or not self.streams:
            return message
        if poll_streams(self.streams, self._timeout()):
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


class ArrivalMerge:
    """Whole messages from ``streams`` in order of arrival, fairly: each round takes one
    message from every stream that has one. ``received`` counts them per stream."""

    def __init__(self, streams: Sequence[Stream]) -> None:
        self.streams = list(streams)
        self.received = [0] * len(self.streams)
        self._index = {id(stream): index for index, stream in enumerate(self.streams)}

    def receive_round(
        self, timeout_ms: int | None, limit: int | None = None
    ) -> list[tuple[int, list[Any]]]:
        """Up to one message (its frames, see `Stream.receive_parts`) from every stream that
        has one within ``timeout_ms``, at most ``limit`` in all; each with its stream's index."""
        taken: list[tuple[int, list[Any]]] = []
        for stream in poll_streams(self.streams, timeout_ms):
            if limit is not None and len(taken) >= limit:
                break
            frames = stream.receive_parts(block=False)
            if frames is not None:
                index = self._index[id(stream)]
                self.received[index] += 1
                taken.append((index, frames))
        return taken


class Aligner:
    """Groups the messages of ``inputs`` inputs by the integer ``key`` of their JSON header.

    `add` and `expired` return the messages to send now, each a list of frames: a group
    goes once every input delivered its message, or after ``max_wait`` seconds with those
    that came, its messages in input order. Messages without the key, or whose group has
    already gone, go at once (counted as ``unaligned`` and ``late``). Each call costs the
    same however many groups are waiting: groups expire in the order they began.
    """

    def __init__(
        self, key: str, inputs: int, max_wait: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.key = key
        self.inputs = inputs
        self.max_wait = max_wait
        self.clock = clock
        self.pending: dict[int, dict[int, list[list[Any]]]] = {}
        # (deadline, number, group) in deadline order, as max_wait is one for all groups;
        # entries of groups that went complete stay until they come up, then are skipped.
        self._deadlines: deque[tuple[float, int, dict]] = deque()
        self._sent: deque[int] = deque(maxlen=RECENT_GROUPS)
        self._sent_set: set[int] = set()
        self.counts = {"complete": 0, "incomplete": 0, "late": 0, "unaligned": 0}

    def _number(self, frames: list[Any]) -> int | None:
        try:
            header = parse_json(bytes(frames[0])) if frames else None
        except ValueError:
            return None
        number = header.get(self.key) if isinstance(header, dict) else None
        return number if type(number) is int else None

    def add(self, index: int, frames: list[Any]) -> list[list[Any]]:
        """Take a message from input ``index``; the messages that can go now."""
        number = self._number(frames)
        if number is None or number in self._sent_set:
            self.counts["unaligned" if number is None else "late"] += 1
            return [frames]
        group = self.pending.get(number)
        if group is None:
            group = self.pending[number] = {}
            self._deadlines.append((self.clock() + self.max_wait, number, group))
        group.setdefault(index, []).append(frames)
        if len(group) < self.inputs:
            return []
        self.counts["complete"] += 1
        return self._release(number)

    def _release(self, number: int) -> list[list[Any]]:
        group = self.pending.pop(number)
        if len(self._sent) == self._sent.maxlen:
            self._sent_set.discard(self._sent[0])
        self._sent.append(number)
        self._sent_set.add(number)
        return [frames for index in sorted(group) for frames in group[index]]

    def expired(self, everything: bool = False) -> Iterator[list[Any]]:
        """The messages of groups that waited ``max_wait`` (with ``everything``: of all
        groups, in the order of their numbers)."""
        if everything:
            self._deadlines.clear()
            for number in sorted(self.pending):
                self.counts["incomplete"] += 1
                yield from self._release(number)
            return
        deadlines, now = self._deadlines, self.clock()
        while deadlines and deadlines[0][0] <= now:
            _, number, group = deadlines.popleft()
            if self.pending.get(number) is group:
                self.counts["incomplete"] += 1
                yield from self._release(number)
