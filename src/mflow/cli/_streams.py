"""The streams a command opened, for what its reports say of them.

`connect_stream` tracks every stream it opens; the progress lines and the summary add the
peers the streams' security refused (`refusals`) and the summary the messages received
but not taken before the stop (`discarded_at_close`). Each command starts an empty list.
"""

from __future__ import annotations

from collections import Counter
from contextvars import ContextVar

import mflow

__all__ = ["start_tracking", "track", "refusals", "discarded_at_close"]

_opened: ContextVar[list[mflow.Stream] | None] = ContextVar("streams", default=None)


def _streams() -> list[mflow.Stream]:
    streams = _opened.get()
    if streams is None:
        streams = []
        _opened.set(streams)
    return streams


def start_tracking() -> None:
    """Begin a command: the streams of an earlier one are no longer reported."""
    _opened.set([])


def track(stream: mflow.Stream) -> None:
    """Report ``stream`` with the command's others (see `refusals`, `discarded_at_close`)."""
    _streams().append(stream)


def refusals() -> dict[str, int]:
    """Peers and connections refused so far by the command's streams, by reason."""
    total: Counter[str] = Counter()
    for stream in _streams():
        total.update(stream.statistics.refused)
    return dict(total)


def discarded_at_close() -> int:
    """Messages ZeroMQ had received for the command's receiving streams that the command
    did not take before it stopped: taken off now (`mflow.Stream.discard_received`, or at
    disconnect) and counted in ``statistics.skipped["discarded_at_close"]``."""
    total = 0
    for stream in _streams():
        stream.discard_received()
        total += stream.statistics.skipped.get("discarded_at_close", 0)
    return total
