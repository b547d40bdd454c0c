"""Throughput sampling of a receiver's `Statistics` (the 1.0 ``mflow.utils`` classes)."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from types import SimpleNamespace
from typing import Any

__all__ = ["ThroughputStatistics", "ThroughputStatisticsPrinter"]

logger = logging.getLogger(__name__)

_RULE = "_" * 60


class ThroughputStatistics:
    """Samples data and message rates at most every ``sampling_interval`` seconds.

    Samples (``{"message_rate": Hz, "data_rate": bytes/s}``) go to ``buffer`` (by default
    a ``deque`` of the last 100); the running state lives in ``namespace``, kept as ``n``
    (1.0 names).
    """

    MB_FACTOR = 1e-6

    def __init__(
        self, buffer: Any = None, namespace: Any = None, sampling_interval: float = 0.2
    ) -> None:
        self._buffer = deque(maxlen=100) if buffer is None else buffer
        self.n = SimpleNamespace() if namespace is None else namespace
        self.sampling_interval = sampling_interval
        now = time.time()
        n = self.n
        n.initial_time = now
        n.last_sampled_statistics = {"total_bytes_received": 0, "messages_received": 0, "time": now}
        n.last_received_statistics = dict(n.last_sampled_statistics)

    def save_statistics(self, statistics: Any) -> bool:
        """Record ``statistics``; True when that produced a new sample."""
        n = self.n
        n.last_received_statistics = {
            "total_bytes_received": statistics.total_bytes_received,
            "messages_received": statistics.messages_received,
            "time": time.time(),
        }
        if (
            n.last_received_statistics["time"] - n.last_sampled_statistics["time"]
            <= self.sampling_interval
        ):
            return False
        self._sample()
        return True

    def _sample(self) -> None:
        n = self.n
        last, now = n.last_sampled_statistics, n.last_received_statistics
        elapsed = now["time"] - last["time"]
        if elapsed <= 0:
            return
        sample = {
            "message_rate": (now["messages_received"] - last["messages_received"]) / elapsed,
            "data_rate": (now["total_bytes_received"] - last["total_bytes_received"]) / elapsed,
        }
        self._buffer.append(sample)
        n.last_sampled_statistics = now
        logger.info(
            "Data rate: %.3f MB/s    Message rate: %.3f Hz",
            sample["data_rate"] * self.MB_FACTOR,
            sample["message_rate"],
        )

    def get_last_sampled_statistics(self) -> dict | None:
        """The newest sample, or ``None``."""
        return self._buffer[-1] if self._buffer else None

    def get_statistics(self) -> OrderedDict | dict:
        """Totals and averages since creation; ``{}`` before anything was saved."""
        n = self.n
        last = n.last_received_statistics
        if last["time"] == n.initial_time and not self._buffer:
            return {}
        messages = last["messages_received"]
        total_bytes = last["total_bytes_received"]
        elapsed = last["time"] - n.initial_time
        return OrderedDict(
            sorted(
                {
                    "average_data_rate": total_bytes / elapsed if elapsed > 0 else 0.0,
                    "average_message_rate": messages / elapsed if elapsed > 0 else 0.0,
                    "average_message_size": total_bytes / messages if messages else 0.0,
                    "messages_received": messages,
                    "total_bytes_received": total_bytes,
                    "total_elapsed_time": elapsed,
                }.items()
            )
        )

    def get_statistics_raw(self) -> Any:
        """The sample buffer itself."""
        return self._buffer

    def flush(self) -> None:
        """Take a sample of what was saved since the last one, whatever the interval."""
        n = self.n
        if n.last_received_statistics["time"] > n.last_sampled_statistics["time"]:
            self._sample()


class ThroughputStatisticsPrinter:
    """`ThroughputStatistics` that prints every sample and a summary."""

    def __init__(self, sampling_interval: float = 0.2) -> None:
        self.statistics = ThroughputStatistics(sampling_interval=sampling_interval)

    def save_statistics(self, statistics: Any) -> None:
        """Record ``statistics`` and print the sample if one was taken."""
        if self.statistics.save_statistics(statistics):
            self.print_statistics()

    def print_statistics(self) -> None:
        """Print the newest sample (nothing when there is none)."""
        sample = self.statistics.get_last_sampled_statistics()
        if sample is None:
            return
        print(
            "Data rate: {:>10.3f} MB/s    Message rate: {:>10.3f} Hz".format(
                sample["data_rate"] * ThroughputStatistics.MB_FACTOR, sample["message_rate"]
            )
        )

    def print_summary(self) -> None:
        """Print totals and averages between two rules."""
        stats = self.statistics.get_statistics()
        mb = ThroughputStatistics.MB_FACTOR
        print(_RULE)
        if not stats or not stats["messages_received"]:
            print("No messages received.")
        else:
            print("Total elapsed time:   {:>10.3f} s".format(stats["total_elapsed_time"]))
            print("Average message size: {:>10.3f} MB".format(stats["average_message_size"] * mb))
            print("Total bytes received: {:>10.3f} MB".format(stats["total_bytes_received"] * mb))
            print("Average data rate:    {:>10.3f} MB/s".format(stats["average_data_rate"] * mb))
            print("Messages received:    {:>10d} messages".format(stats["messages_received"]))
            print("Average message rate: {:>10.3f} Hz".format(stats["average_message_rate"]))
        print(_RULE)

    def close(self, print_summary: bool = True) -> None:
        """Sample what is pending and optionally print the summary."""
        self.statistics.flush()
        if print_summary:
            self.print_summary()
