"""The 1.0 ``mflow.utils`` names: merging, throughput statistics and socket monitoring."""

from .merge import Merge, RoundRobinStrategy
from .monitor import ConnectionCountMonitor, SocketEventListener, no_clients_timeout_notifier
from .throughput import ThroughputStatistics, ThroughputStatisticsPrinter

__all__ = [
    "Merge",
    "RoundRobinStrategy",
    "ThroughputStatistics",
    "ThroughputStatisticsPrinter",
    "SocketEventListener",
    "ConnectionCountMonitor",
    "no_clients_timeout_notifier",
]
