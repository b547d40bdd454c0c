"""Receive statistics: the 1.0 byte counters plus per-type counts, skips and sequence gaps.

The three 1.0 fields keep their exact meaning: ``bytes_received`` holds the bytes of the
message in progress (frames a handler obtained through ``receiver.next()``),
``total_bytes_received`` and ``messages_received`` grow when a message succeeds. Unlike 1.0,
a failed message's bytes are discarded instead of leaking into the next one.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable

__all__ = ["Statistics", "SequenceGaps", "SKIP_REASONS"]

#: Reasons a receive can end without a message, as counted in ``Statistics.skipped``.
SKIP_REASONS = (
    "timeout",
    "bad_header",
    "unknown_htype",
    "malformed",
    "compression_error",
    "decode_error",
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
        """Account for the next running number of this source."""
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
    """Counters of one receiver; ``Message.statistics`` is this live object."""

    def __init__(self) -> None:
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

    def message_succeeded(self, htype: str | None, header: Any = None) -> None:
        """Close the message in progress as received; ``header`` feeds the gap accounting."""
        self.total_bytes_received += self.bytes_received
        self.bytes_received = 0
        self.messages_received += 1
        self.last_message_time = time.time()
        if htype is not None:
            by_htype = self.messages_by_htype
            by_htype[htype] = by_htype.get(htype, 0) + 1
        if type(header) is dict:
            self.observe_sequence(header)

    def message_failed(self, reason: str) -> None:
        """Close the message in progress as skipped for ``reason`` (its bytes are dropped)."""
        self.bytes_received = 0
        self.skipped[reason] += 1

    def observe_sequence(self, header: dict) -> None:
        """Track the running number (``pulse_id``, ``frame``, ``image_id`` or the SLS
        ``frameIndex``) of ``header``.

        Numbers are tracked per source: the header's ``source``, ``series`` or
        ``series_id`` (a new series restarts its numbering).
        """
        # Unrolled: this runs once per received message.
        number = header.get("pulse_id")
        if type(number) is not int:
            number = header.get("frame")
            if type(number) is not int:
                number = header.get("image_id")
                if type(number) is not int:
                    number = header.get("frameIndex")
                    if type(number) is not int:
                        return
        source = header.get("source", header.get("series", header.get("series_id")))
        try:
            gaps = self.sequences.get(source)
        except TypeError:  # an unhashable source from the network
            source = repr(source)
            gaps = self.sequences.get(source)
        except RuntimeError:  # a CBOR tag around an unhashable value (its repr may be deep)
            source = f"<unhashable {type(source).__name__}>"
            gaps = self.sequences.get(source)
        if gaps is None:
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
            for source, gaps in part.sequences.items():
                mine = total.sequences.setdefault(source, SequenceGaps())
                mine.missed += gaps.missed
                mine.duplicated += gaps.duplicated
                mine.reverted += gaps.reverted
            if part.last_message_time is not None:
                total.last_message_time = max(total.last_message_time or 0.0, part.last_message_time)
        return total

    def __repr__(self) -> str:
        return (
            f"<Statistics messages={self.messages_received} "
            f"bytes={self.total_bytes_received} skipped={sum(self.skipped.values())}>"
        )
