"""Receive statistics: the 1.0 byte counters plus per-type counts, skips and sequence gaps.

The three 1.0 fields keep their exact meaning: ``bytes_received`` holds the bytes of the
message in progress (frames a handler obtained through ``receiver.next()``),
``total_bytes_received`` and ``messages_received`` grow when a message succeeds. Unlike 1.0,
a failed message's bytes are discarded instead of leaking into the next one.

Mirrored in C: ``mflow/_speedups.c`` counts the array-1.0 messages it decodes itself, as
``Statistics.message_succeeded`` (its ``message_succeeded``) and ``SequenceGaps.observe``
(its ``observe_number``) do, with the key tables ``NUMBER_KEYS`` and ``SOURCE_KEYS`` of this
module, and hands every source it has no tracker for to ``Statistics.observe_sequence``.
A change here is a change there; ``tests/test_fastpath.py`` compares both paths field by
field.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable

__all__ = [
    "Statistics",
    "SequenceGaps",
    "SKIP_REASONS",
    "NUMBER_KEYS",
    "SOURCE_KEYS",
    "MAX_SOURCE_LENGTH",
    "MAX_SOURCES",
]

#: Reasons a receive can end without a message, as counted in ``Statistics.skipped``.
SKIP_REASONS = (
    "timeout",
    "bad_header",
    "unknown_htype",
    "malformed",
    "compression_error",
    "decode_error",
)

#: The header fields that hold a message's running number, the first integer one wins.
NUMBER_KEYS = ("pulse_id", "frame", "image_id", "frameIndex")
#: The header fields that name the source a running number belongs to, the first present
#: one wins (a series restarts its numbering).
SOURCE_KEYS = ("source", "series", "series_id")
#: The longest string a source may be to get a tracker of its own.
MAX_SOURCE_LENGTH = 256
#: How many sources are tracked by default (headers come from the network).
MAX_SOURCES = 1024
#: The (htype, header ``type``) of the messages that start a series (``None``: any type):
#: dheader-1.0 carries ``series``, a Stream V2 ``start`` ``series_id``.
_SERIES_STARTS = {"dheader-1.0": None, "dectris-stream2": "start"}


def _usable_source(source: Any) -> bool:
    """Whether ``source`` may key a sequence tracker: ``None``, an int or a short str."""
    kind = type(source)
    return (
        source is None
        or kind is int
        or kind is bool
        or (kind is str and len(source) <= MAX_SOURCE_LENGTH)
    )


@dataclass
class SequenceGaps:
    """Gaps seen in the running numbers of one source.

    ``missed`` counts numbers skipped over, ``duplicated`` numbers seen twice in a row,
    ``reverted`` numbers that went backwards.
    """

    last: int | None = None
    missed: int = 0
    duplicated: int = 0
    reverted: int = 0

    def observe(self, number: int) -> None:
        """Account for the next running number of this source (C copy: ``observe_number``)."""
        last = self.last
        if last is not None:
            if number == last:
                self.duplicated += 1
            elif number < last:
                self.reverted += 1
            elif number > last + 1:
                self.missed += number - last - 1
        self.last = number


class Statistics:
    """Counters of one receiver; ``Message.statistics`` is this live object.

    At most ``max_sources`` sources get a sequence tracker; the numbers of any further
    source are counted in ``sources_over_cap``, those of a source that cannot be a key
    (a list, a long string, a tag) in ``unusable_source``. A new series header (dheader-1.0,
    Stream V2 ``start``) starts a new sequence for its series, counted in ``series_started``.
    """

    def __init__(self, max_sources: int = MAX_SOURCES) -> None:
        self.max_sources = max_sources
        self.bytes_received = 0
        self.total_bytes_received = 0
        self.messages_received = 0
        self.messages_by_htype: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        #: Messages delivered although one of their payloads (an image) failed to decode.
        self.payload_errors: Counter[str] = Counter()
        self.sequences: dict[Any, SequenceGaps] = {}
        self.last_message_time: float | None = None
        self.send_dropped = 0
        #: Peers or connections refused by the stream's security (`mflow.security`), by reason.
        self.refused: Counter[str] = Counter()
        self.series_started = 0
        self.unusable_source = 0
        self.sources_over_cap = 0

    def message_succeeded(self, htype: str | None, header: Any = None) -> None:
        """Close the message in progress as received; ``header`` feeds the gap accounting.

        C copy: ``message_succeeded`` in ``_speedups.c`` (for array-1.0, never a series start).
        """
        self.total_bytes_received += self.bytes_received
        self.bytes_received = 0
        self.messages_received += 1
        self.last_message_time = time.time()
        if htype is not None:
            by_htype = self.messages_by_htype
            by_htype[htype] = by_htype.get(htype, 0) + 1
        if type(header) is dict:
            if htype in _SERIES_STARTS:
                self._maybe_start_series(htype, header)
            self.observe_sequence(header)

    def _maybe_start_series(self, htype: str, header: dict) -> None:
        wanted = _SERIES_STARTS[htype]
        if wanted is not None and header.get("type") != wanted:
            return
        self.series_started += 1
        source = self._source_of(header)
        if _usable_source(source):
            self.sequences.pop(source, None)

    @staticmethod
    def _source_of(header: dict) -> Any:
        for key in SOURCE_KEYS:
            if key in header:
                return header[key]
        return None

    def message_failed(self, reason: str) -> None:
        """Close the message in progress as skipped for ``reason`` (its bytes are dropped)."""
        self.bytes_received = 0
        self.skipped[reason] += 1

    def observe_sequence(self, header: dict) -> None:
        """Track the running number (the first integer of ``NUMBER_KEYS``) of ``header``.

        Numbers are tracked per source: the first of ``SOURCE_KEYS`` in the header.
        The C path calls this for every source it has no tracker for.
        """
        for key in NUMBER_KEYS:
            number = header.get(key)
            if type(number) is int:
                break
        else:
            return
        source = self._source_of(header)
        if not _usable_source(source):
            self.unusable_source += 1
            return
        gaps = self.sequences.get(source)
        if gaps is None:
            if len(self.sequences) >= self.max_sources:
                self.sources_over_cap += 1
                return
            gaps = self.sequences[source] = SequenceGaps()
        gaps.observe(number)

    @property
    def missed(self) -> int:
        """Running numbers skipped over, summed over all sources."""
        return sum(g.missed for g in self.sequences.values())

    @property
    def duplicated(self) -> int:
        """Running numbers repeated, summed over all sources."""
        return sum(g.duplicated for g in self.sequences.values())

    @property
    def reverted(self) -> int:
        """Running numbers that went backwards, summed over all sources."""
        return sum(g.reverted for g in self.sequences.values())

    @property
    def seconds_since_last_message(self) -> float | None:
        """Seconds since the last successful message, ``None`` before the first."""
        if self.last_message_time is None:
            return None
        return time.time() - self.last_message_time

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot of every counter."""
        return {
            "messages_received": self.messages_received,
            "total_bytes_received": self.total_bytes_received,
            "messages_by_htype": dict(self.messages_by_htype),
            "skipped": dict(self.skipped),
            "payload_errors": dict(self.payload_errors),
            "missed": self.missed,
            "duplicated": self.duplicated,
            "reverted": self.reverted,
            "send_dropped": self.send_dropped,
            "refused": dict(self.refused),
            "series_started": self.series_started,
            "unusable_source": self.unusable_source,
            "sources_over_cap": self.sources_over_cap,
            "last_message_time": self.last_message_time,
        }

    @classmethod
    def combined(cls, parts: Iterable[Statistics]) -> Statistics:
        """A new ``Statistics`` holding the sums of ``parts`` (e.g. the inputs of a merge)."""
        total = cls()
        for part in parts:
            total.bytes_received += part.bytes_received
            total.total_bytes_received += part.total_bytes_received
            total.messages_received += part.messages_received
            total.messages_by_htype.update(part.messages_by_htype)
            total.skipped.update(part.skipped)
            total.payload_errors.update(part.payload_errors)
            total.send_dropped += part.send_dropped
            total.refused.update(part.refused)
            total.series_started += part.series_started
            total.unusable_source += part.unusable_source
            total.sources_over_cap += part.sources_over_cap
            for source, gaps in part.sequences.items():
                mine = total.sequences.setdefault(source, SequenceGaps())
                mine.missed += gaps.missed
                mine.duplicated += gaps.duplicated
                mine.reverted += gaps.reverted
            if part.last_message_time is not None:
                total.last_message_time = max(
                    total.last_message_time or 0.0, part.last_message_time
                )
        return total

    def __repr__(self) -> str:
        return (
            f"<Statistics messages={self.messages_received} "
            f"bytes={self.total_bytes_received} skipped={sum(self.skipped.values())}>"
        )
