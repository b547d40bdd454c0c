"""Series-aware fan-out: one detector stream spread over several outputs, the series kept whole.

A detector's PUSH socket round-robins *every* message, so with several consumers only one
sees the series header and one the series end. `FanOut` receives the stream itself and
sends

- the series header (``dheader-1.0``, Stream V2 ``start``) and the series end
  (``dseries_end-1.0``, V2 ``end``) to **every** output, and the current header again to an
  output whose consumer connects mid-series, before its first image;
- each image to **one** output: by block (images ``[kN, (k+1)N)`` go to output ``k mod
  outputs``, so each consumer gets whole data files) or by load (the next ready output);
  bsread messages by ``pulse_id``, array-1.0 and SLS images by their frame number, alike;
- everything else to every output;

byte for byte as received (frames are forwarded, never re-encoded).

Outputs are sending `mflow.Stream`\\ s opened with ``watch_peers=True``, one consumer per
output (a PUSH socket round-robins among several). What ZeroMQ can tell a sender is who is
connected (socket events) and whether a queue has room (``POLLOUT``); it cannot tell what a
consumer received. So an output whose consumer is gone gets nothing more: its images go to
the next output that has one (counted as ``rerouted``); a consumer that leaves while a
series is open is counted (``left_mid_series``), and what was queued for it then is
counted by its `mflow.delivery.Delivery` as possibly undelivered (``undelivered_max``); a
message no output could take is ``dropped``. By-load routing uses
the queue's room as the consumer's credit: a small queue size spreads the load best.

Series are handled explicitly and counted: a new header while a series is open ends that
series as ``aborted`` (or ``restarted`` if it carries the same series id); images or ends of
another series than the open one are ``stray`` and discarded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import zmq

from .jsonparse import parse_json
from .statistics import MAX_SOURCE_LENGTH
from .stream import Stream

__all__ = ["FanOut", "FanOutput", "Classified", "classify", "HEADER", "IMAGE", "END", "OTHER"]

logger = logging.getLogger(__name__)

HEADER, IMAGE, END, OTHER = "header", "image", "end", "other"

#: Milliseconds one wait for an output's room lasts before the stop condition is checked.
WAIT_MS = 50

_JSON_KINDS = {"dheader-1.0": HEADER, "dimage-1.0": IMAGE, "dseries_end-1.0": END}
_V2_KINDS = {"start": HEADER, "image": IMAGE, "end": END}


@dataclass(frozen=True)
class Classified:
    """What a message is to the fan-out: its kind, series and running number."""

    kind: str
    series: Any = None
    number: int | None = None


def _scalar(value: Any) -> Any:
    """A series id or number as a hashable scalar, or None (bounded as the statistics bound
    their sources: wire data)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and len(value) <= MAX_SOURCE_LENGTH):
        return value
    return None


def _number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def classify(frames: Sequence[Any]) -> Classified:
    """Classify a message from its first frame, without decoding any payload."""
    if not frames:
        return Classified(OTHER)
    first = memoryview(frames[0])
    if len(first) and first[0] in _CBOR_STARTS:
        fields = cbor_peek(first, ("type", "series_id", "image_id"))
        kind = _V2_KINDS.get(fields.get("type"), OTHER)  # type: ignore[arg-type]
        return Classified(kind, _scalar(fields.get("series_id")), _number(fields.get("image_id")))
    try:
        header = parse_json(first.tobytes())
    except ValueError:
        return Classified(OTHER)
    if not isinstance(header, dict):
        return Classified(OTHER)
    htype = header.get("htype")
    if htype in _JSON_KINDS:
        return Classified(
            _JSON_KINDS[htype], _scalar(header.get("series")), _number(header.get("frame"))
        )
    if isinstance(htype, str) and htype.startswith("bsr_m"):
        return Classified(IMAGE, None, _number(header.get("pulse_id")))
    if htype == "array-1.0":
        return Classified(IMAGE, None, _number(header.get("frame")))
    if htype is None and "jsonversion" in header:  # the SLS receiver's stream
        if not header.get("data", 1):
            return Classified(END)
        return Classified(IMAGE, None, _number(header.get("frameIndex")))
    return Classified(OTHER)


# -- a minimal CBOR reader: the top-level keys of a Stream V2 map, nothing decoded ----------

# A self-described tag (0xd9 0xd9 0xf7) or a map (major type 5).
_CBOR_STARTS = frozenset([0xD9, *range(0xA0, 0xBC), 0xBF])
_MAX_DEPTH = 64


class _CborError(ValueError):
    pass


def _argument(data: memoryview, position: int) -> tuple[int, int, int | None]:
    """(major type, position after the head, argument or None for indefinite length)."""
    if position >= len(data):
        raise _CborError("truncated")
    initial = data[position]
    major, info = initial >> 5, initial & 0x1F
    position += 1
    if info < 24:
        return major, position, info
    if info == 31:
        return major, position, None
    if info > 27:
        raise _CborError("reserved additional information")
    size = 1 << (info - 24)
    if position + size > len(data):
        raise _CborError("truncated")
    return major, position + size, int.from_bytes(data[position : position + size], "big")


def _skip(data: memoryview, position: int, depth: int = 0) -> int:
    """The position after the data item at ``position``."""
    if depth > _MAX_DEPTH:
        raise _CborError("nested too deeply")
    major, position, argument = _argument(data, position)
    if major in (0, 1, 7):
        return position
    if major in (2, 3):
        if argument is None:  # indefinite: definite chunks up to the break
            while data[position] != 0xFF:
                position = _skip(data, position, depth + 1)
            return position + 1
        if position + argument > len(data):
            raise _CborError("truncated")
        return position + argument
    if major == 6:
        return _skip(data, position, depth + 1)
    items = argument * (2 if major == 5 else 1) if argument is not None else None
    if items is None:
        while position < len(data) and data[position] != 0xFF:
            position = _skip(data, position, depth + 1)
        return position + 1
    for _ in range(items):
        position = _skip(data, position, depth + 1)
    return position


def _simple_value(data: memoryview, position: int) -> Any:
    """An unsigned or negative integer or a short text at ``position``; None otherwise."""
    major, start, argument = _argument(data, position)
    if major == 0:
        return argument
    if major == 1 and argument is not None:
        return -1 - argument
    if major == 3 and argument is not None and argument <= 256:
        return data[start : start + argument].tobytes().decode("utf-8", "replace")
    return None


def cbor_peek(data: memoryview, keys: Sequence[str]) -> dict[str, Any]:
    """The integer or text values of ``keys`` in the top-level CBOR map of ``data``.

    Skips everything else without decoding or copying it (image blobs stay where they
    are); a malformed or hostile message gives what was found before the problem.
    """
    found: dict[str, Any] = {}
    try:
        position = 0
        major, position, argument = _argument(data, position)
        while major == 6:  # tags before the map, e.g. 55799 (self-described CBOR)
            major, position, argument = _argument(data, position)
        if major != 5:
            return found
        remaining = argument
        while remaining is None or remaining > 0:
            if remaining is None and data[position] == 0xFF:
                break
            key = _simple_value(data, position)
            position = _skip(data, position)
            if isinstance(key, str) and key in keys:
                found[key] = _simple_value(data, position)
                if len(found) == len(keys):
                    break
            position = _skip(data, position)
            if remaining is not None:
                remaining -= 1
    except (_CborError, IndexError):
        pass
    return found


# -- the fan-out ---------------------------------------------------------------------------


@dataclass
class FanOutput:
    """One output of a `FanOut` and what went to it."""

    stream: Stream
    name: str
    images: int = 0
    headers: int = 0
    ends: int = 0
    others: int = 0
    #: Images this output took for another output whose consumer was gone.
    rerouted: int = 0
    #: Broadcast messages (headers, ends, others) it missed because no consumer was there.
    missed: int = 0
    #: Times its consumer left with a series open: what was queued for it may be lost.
    left_mid_series: int = 0
    _joined: int = field(default=0, repr=False)
    _has_header: bool = field(default=False, repr=False)

    @property
    def connected(self) -> bool:
        """Whether a consumer is connected now."""
        peers = self.stream.peers
        return peers is not None and peers.peers > 0

    def counts(self) -> dict[str, Any]:
        """The counters, with what its `Delivery` says was not delivered."""
        counts = {
            "name": self.name,
            "endpoint": self.stream.endpoint,
            "images": self.images,
            "headers": self.headers,
            "ends": self.ends,
            "others": self.others,
            "rerouted": self.rerouted,
            "missed": self.missed,
            "left_mid_series": self.left_mid_series,
            "connected": self.connected,
        }
        delivery = self.stream.delivery
        if delivery is not None:
            counts.update(
                sent=delivery.sent,
                undelivered=delivery.undelivered,
                undelivered_max=delivery.undelivered_max,
            )
        return counts


class FanOut:
    """Distributes messages over ``outputs`` (see the module docstring for the rules).

    ``block`` (images per block) divides by block, ``block=None`` by load. ``stopped`` is
    called while waiting for an output, so that a stop request ends a wait.
    """

    def __init__(
        self,
        outputs: Sequence[FanOutput],
        *,
        block: int | None = 1000,
        stopped: Callable[[], bool] = lambda: False,
    ) -> None:
        if not outputs:
            raise ValueError("a fan-out needs at least one output")
        if block is not None and block < 1:
            raise ValueError(f"block must be at least 1, not {block}")
        self.outputs = list(outputs)
        self.block = block
        self.stopped = stopped
        self.series: Any = None
        self._header: list[Any] | None = None
        self._open = False
        self._next = 0
        self.series_started = 0
        self.aborted = 0
        self.restarted = 0
        self.stray = 0
        self.dropped = 0

    # -- one message -----------------------------------------------------------------------

    def forward(self, frames: Sequence[Any]) -> None:
        """Send one received message (its frames) where it belongs."""
        item = classify(frames)
        if self._open:
            self._notice_departures()
        if item.kind == HEADER:
            self._start_series(item, list(frames))
        elif item.kind == IMAGE:
            if self._is_stray(item):
                self.stray += 1
            else:
                self._send_image(item.number, frames)
        elif item.kind == END:
            if self._is_stray(item):
                self.stray += 1
            else:
                self._open = False
                self._header = None
                self._broadcast(frames, "ends")
        else:
            self._broadcast(frames, "others")

    def _notice_departures(self) -> None:
        """Count consumers that left since they got the open series' header."""
        for output in self.outputs:
            if output._has_header and not output.connected:
                output.left_mid_series += 1
                output._has_header = False  # a new consumer gets the header again
                logger.warning(
                    "the consumer of %s left in the middle of series %r", output.name, self.series
                )

    def _is_stray(self, item: Classified) -> bool:
        return item.series is not None and self.series is not None and item.series != self.series

    def _start_series(self, item: Classified, frames: list[Any]) -> None:
        if self._open:
            if item.series == self.series:
                self.restarted += 1
            else:
                self.aborted += 1
            logger.info(
                "series %r %s by a new header",
                self.series,
                "restarted" if item.series == self.series else "aborted",
            )
        self.series, self._header, self._open = item.series, frames, True
        self.series_started += 1
        for output in self.outputs:
            output._has_header = False
        self._broadcast(frames, "headers")

    # -- routing ---------------------------------------------------------------------------

    def _send_image(self, number: int | None, frames: Sequence[Any]) -> None:
        if self.block is not None and number is not None:
            preferred = (number // self.block) % len(self.outputs)
            order = self.outputs[preferred:] + self.outputs[:preferred]
            while not self.stopped():
                for position, output in enumerate(order):
                    if output.connected and self._send(output, frames, wait=True):
                        output.images += 1
                        if position:
                            output.rerouted += 1
                        return
                self._wait_for_consumer()
        else:
            while not self.stopped():
                ready = self._ready_output()
                if ready is not None and self._send(ready, frames, wait=False):
                    ready.images += 1
                    return
        self.dropped += 1

    def _ready_output(self) -> FanOutput | None:
        """The next output, in turn, with a consumer and room; waits a little for one."""
        count = len(self.outputs)
        for offset in range(count):
            output = self.outputs[(self._next + offset) % count]
            if output.connected and output.stream.poll(0, zmq.POLLOUT):
                self._next = (self._next + offset + 1) % count
                return output
        for output in self.outputs:
            if output.connected and output.stream.poll(WAIT_MS // count or 1, zmq.POLLOUT):
                return output
        if not any(output.connected for output in self.outputs):
            self._wait_for_consumer()
        return None

    def _wait_for_consumer(self) -> None:
        for output in self.outputs:
            if output.stream.peers is not None and output.stream.peers.wait(
                WAIT_MS / 1000 / len(self.outputs)
            ):
                return

    def _broadcast(self, frames: Sequence[Any], counter: str) -> None:
        for output in self.outputs:
            if output.connected and self._send(output, frames, wait=True, catch_up=False):
                setattr(output, counter, getattr(output, counter) + 1)
                if counter == "headers":
                    output._has_header = True
                    output._joined = self._joined_now(output)
            else:
                output.missed += 1

    def _send(
        self, output: FanOutput, frames: Sequence[Any], *, wait: bool, catch_up: bool = True
    ) -> bool:
        """Send ``frames`` to ``output``, first the open series' header to a consumer that
        joined since; False if it has no consumer (or the run stopped) before there is room."""
        if catch_up:
            self._catch_up(output)
        while True:
            if output.stream.poll(WAIT_MS if wait else 0, zmq.POLLOUT):
                return output.stream.send_multipart(frames, block=False)
            if not wait or not output.connected or self.stopped():
                return False

    @staticmethod
    def _joined_now(output: FanOutput) -> int:
        peers = output.stream.peers
        return 0 if peers is None else peers.joined

    def _catch_up(self, output: FanOutput) -> None:
        joined = self._joined_now(output)
        if joined != output._joined:
            output._joined = joined
            output._has_header = False
        if self._open and self._header is not None and not output._has_header:
            if self._send(output, self._header, wait=True, catch_up=False):
                output.headers += 1
                output._has_header = True

    # -- results ---------------------------------------------------------------------------

    def counts(self) -> dict[str, Any]:
        """The fan-out's counters and every output's."""
        return {
            "series_started": self.series_started,
            "aborted": self.aborted,
            "restarted": self.restarted,
            "stray": self.stray,
            "dropped": self.dropped,
            "outputs": [output.counts() for output in self.outputs],
        }
