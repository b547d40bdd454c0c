"""What ``mflow stats`` and ``mflow demo`` show of a stream: counts, types, gaps, errors."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import mflow
from mflow.dispatch import dispatch_key

from ._output import Report, format_counts, traffic_fields
from ._runtime import Meter

__all__ = ["Inspector"]


class Inspector:
    """Counts every message of a stream whole, then decodes it through the registry.

    Its `handle` is a receive handler for ``Stream.receive(handler=...)``, so the
    stream's own statistics count decode failures and sequence gaps.
    """

    def __init__(self, stream: mflow.Stream, decode: bool) -> None:
        self.stream = stream
        self.decode = decode
        self.meter = Meter()
        self.kinds: Counter[str] = Counter()
        self.last_message_time: float | None = None

    def handle(self, receiver: Any) -> Any:
        """Count the message and its type, then decode it with the handler the stream
        chooses for that type (its own `Stream.handlers` first)."""
        self.meter.add(sum(map(len, receiver.frames)))
        self.last_message_time = time.monotonic()
        key = dispatch_key(receiver)
        self.kinds[key] += 1
        return self.stream.receive_handler(key)(receiver)

    def receive(self, timeout_ms: int) -> bool:
        """Take the next message, waiting up to ``timeout_ms``; False if none came."""
        before = self.meter.messages
        self.stream.receive(handler=self.handle, block=False, decode=self.decode)
        if self.meter.messages == before and self.stream.poll(timeout_ms):
            self.stream.receive(handler=self.handle, block=False, decode=self.decode)
        return self.meter.messages > before

    def report(self, final: bool = False) -> Report:
        """The counters now; ``final`` uses averages over the whole run for the rates."""
        sample = self.meter.sample()
        statistics = self.stream.statistics
        errors = dict(
            statistics.payload_errors
            + Counter({k: v for k, v in statistics.skipped.items() if k != "timeout"})
        )
        last = self.last_message_time
        idle = None if last is None else time.monotonic() - last
        data: dict[str, Any] = {
            **sample,
            "by_type": dict(self.kinds),
            "missed": statistics.missed,
            "duplicated": statistics.duplicated,
            "reverted": statistics.reverted,
            "decode_errors": errors,
            "seconds_since_last_message": idle,
        }
        fields = traffic_fields(sample, final) + [
            ("by type", format_counts(data["by_type"])),
            (
                "gaps",
                f"missed={data['missed']} duplicated={data['duplicated']} "
                f"reverted={data['reverted']}",
            ),
            ("decode errors", format_counts(errors) if errors else "0"),
            ("last message", "never" if idle is None else f"{idle:.1f} s ago"),
        ]
        return Report(data, fields)
