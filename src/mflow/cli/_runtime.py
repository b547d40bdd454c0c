"""The run-time of a command: stopping on signals or limits, pacing, and counting.

`Run` is what every command loop checks: it stops at the first SIGINT / SIGTERM (the
current message is finished, a second signal interrupts at once), after ``--count``
messages or ``--duration`` seconds, and tells when the next progress report is due.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["Limits", "Run", "Meter", "Pacer", "EXIT_OK", "EXIT_ERROR", "EXIT_INTERRUPTED"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

#: Longest a loop waits on a socket before looking at the stop conditions again (ms).
POLL_MS = 100

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class Limits:
    """When a command stops by itself: after ``count`` messages or ``duration`` seconds."""

    count: int | None = None
    duration: float | None = None


class Run:
    """The stop conditions and progress schedule of one command (a context manager).

    Inside the ``with`` block SIGINT and SIGTERM only request a stop (`stopped` becomes
    true; ``interrupted`` records it); a second signal raises ``KeyboardInterrupt``.
    """

    def __init__(self, limits: Limits = Limits(), interval: float = 1.0) -> None:
        self.limits = limits
        self.interval = interval
        self.interrupted = False
        self._event = threading.Event()
        self._previous: dict[int, Any] = {}
        self.start = time.monotonic()
        self._deadline = None if limits.duration is None else self.start + limits.duration
        self._next_report = self.start + interval

    def __enter__(self) -> Run:
        if threading.current_thread() is threading.main_thread():
            for signum in _STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._on_signal)
        self.restart()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def restart(self) -> None:
        """Start the clock (and the ``--duration``) now, e.g. once a peer is connected."""
        self.start = time.monotonic()
        if self.limits.duration is not None:
            self._deadline = self.start + self.limits.duration
        self._next_report = self.start + self.interval

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._event.is_set():
            raise KeyboardInterrupt
        self.interrupted = True
        self._event.set()

    def stop(self) -> None:
        """Request a stop (as a signal would, but without counting as an interruption)."""
        self._event.set()

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.start

    def stopped(self, messages: int = 0) -> bool:
        """True once a stop was requested, the time is up or ``messages`` reached the count."""
        if self._event.is_set():
            return True
        count = self.limits.count
        if count is not None and messages >= count:
            return True
        return self._deadline is not None and time.monotonic() >= self._deadline

    def remaining(self, count: int) -> int | None:
        """How many more messages may go before ``--count`` is reached (None: no count)."""
        return None if self.limits.count is None else max(0, self.limits.count - count)

    def poll_ms(self) -> int:
        """How long to wait on a socket before looking at the stop conditions again."""
        if self._deadline is None:
            return POLL_MS
        left = self._deadline - time.monotonic()
        return max(0, min(POLL_MS, int(left * 1000) + 1))

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` unless a stop is requested first; False if it was."""
        if self._deadline is not None:
            seconds = min(seconds, self._deadline - time.monotonic())
        if seconds > 0:
            return not self._event.wait(seconds)
        return not self._event.is_set()

    def report_due(self) -> bool:
        """True (once per interval) when the next progress report is due."""
        now = time.monotonic()
        if now < self._next_report:
            return False
        self._next_report = max(self._next_report + self.interval, now)
        return True

    @property
    def exit_code(self) -> int:
        """130 if a signal stopped the run, else 0."""
        return EXIT_INTERRUPTED if self.interrupted else EXIT_OK


class Meter:
    """Counts messages and bytes, and their rates over the last interval and overall."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.start = time.monotonic()
        self._last = (self.start, 0, 0)

    def add(self, nbytes: int) -> None:
        """Count one message of ``nbytes`` bytes."""
        self.messages += 1
        self.bytes += nbytes

    def restart(self) -> None:
        """Measure rates from now on (counts are kept)."""
        self.start = time.monotonic()
        self._last = (self.start, self.messages, self.bytes)

    def sample(self) -> dict[str, float]:
        """Counts, current rates (since the previous sample) and averages (since the start)."""
        now = time.monotonic()
        then, messages, nbytes = self._last
        self._last = (now, self.messages, self.bytes)
        window = now - then
        elapsed = now - self.start
        return {
            "elapsed": elapsed,
            "messages": self.messages,
            "bytes": self.bytes,
            "rate": (self.messages - messages) / window if window > 0 else 0.0,
            "byte_rate": (self.bytes - nbytes) / window if window > 0 else 0.0,
            "average_rate": self.messages / elapsed if elapsed > 0 else 0.0,
            "average_byte_rate": self.bytes / elapsed if elapsed > 0 else 0.0,
        }


class Pacer:
    """Paces a loop at ``rate`` iterations per second (None: as fast as possible).

    The schedule is absolute (the n-th message is due at start + n / rate), so short
    delays are caught up and the average rate holds.
    """

    def __init__(self, rate: float | None) -> None:
        self.period = None if not rate else 1.0 / rate
        self._due = self._origin = time.monotonic()

    def restart(self) -> None:
        """Make the next iteration due now (and now the origin of `wait_until`)."""
        self._due = self._origin = time.monotonic()

    def wait(self, run: Run) -> bool:
        """Wait until the next iteration is due; False if the run was stopped meanwhile."""
        if self.period is None:
            return True
        delay = self._due - time.monotonic()
        self._due = max(self._due, time.monotonic() - 1.0) + self.period
        return run.sleep(delay)

    def wait_until(self, run: Run, offset: float) -> bool:
        """Wait until ``offset`` seconds after the last `restart` (for original timing)."""
        return run.sleep(self._origin + offset - time.monotonic())
