"""Decoding received messages on several threads while the stream receives, in order.

A stream with ``decode_workers=N`` (`mflow.Stream.connect`) takes each message off the
socket and runs its handler in the receiving thread as usual (parsing, checks, series
state, the decoded-bytes budget: everything that depends on the messages before), but the
handler's compressed payloads are only noted (`mflow.handlers._payload`). `DecodeWorkers`
decompresses them on ``N`` threads (bitshuffle and lz4 release the GIL) while the stream
takes the next messages, and hands the messages back oldest first: they arrive in the order
they were sent, counted in the statistics as they are delivered, exactly as without workers.

At most ``depth`` messages (``2 * N`` by default) are in flight, so memory stays bounded.
Closing stops the threads (they finish the payload they are on) and reports how many
messages were taken but not delivered.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["DecodeWorkers", "InFlight"]


class InFlight:
    """A message taken off the socket, its payloads perhaps still being decoded."""

    __slots__ = ("key", "header", "data", "payloads", "nbytes", "error", "future")

    def __init__(self, key: str | None, header: Any, data: Any, payloads: list, nbytes: int):
        #: The dispatch key, the parsed frame 0 and the handler's result.
        self.key, self.header, self.data = key, header, data
        #: The `PayloadDecoding` objects of the message (their failures are counted later).
        self.payloads = payloads
        #: The bytes the message counts in ``statistics.bytes_received``.
        self.nbytes = nbytes
        #: What failed the message (its handler, or a payload on a strict stream).
        self.error: BaseException | None = None
        self.future: Future | None = None


def _finish(payloads: list) -> None:
    for decoding in payloads:
        decoding.finish()


class DecodeWorkers:
    """``workers`` threads decoding the payloads of at most ``depth`` messages in flight."""

    def __init__(self, workers: int, depth: int | None = None) -> None:
        if type(workers) is not int or workers < 1:
            raise ValueError(
                f"decode_workers must be a number of threads (1 or more), not {workers!r}"
            )
        self.workers = workers
        #: The most messages taken but not yet delivered.
        self.depth = 2 * workers if depth is None else depth
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="mflow-decode")
        self._in_flight: deque[InFlight] = deque()

    def __len__(self) -> int:
        return len(self._in_flight)

    @property
    def full(self) -> bool:
        """Whether `depth` messages are in flight."""
        return len(self._in_flight) >= self.depth

    def add(self, message: InFlight) -> None:
        """Queue ``message``, its deferred payloads going to a worker."""
        if any(decoding.deferred for decoding in message.payloads):
            message.future = self._executor.submit(_finish, message.payloads)
        self._in_flight.append(message)

    def oldest(self) -> InFlight:
        """The message taken first, once its payloads are decoded (`InFlight.error` set if
        that failed)."""
        message = self._in_flight[0]  # taken only once decoded: an interrupted wait keeps it
        if message.future is not None:
            try:
                message.future.result()
            except Exception as error:  # noqa: BLE001  (the stream counts it as a skip)
                message.error = message.error or error
            message.future = None
        return self._in_flight.popleft()

    def close(self) -> int:
        """Stop the threads (after the payloads they are decoding) and drop the messages in
        flight; how many there were."""
        dropped = len(self._in_flight)
        self._in_flight.clear()
        self._executor.shutdown(wait=True, cancel_futures=True)
        return dropped
