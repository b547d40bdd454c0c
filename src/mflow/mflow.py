"""1.0 compatibility: the names the original kept in ``mflow.mflow``."""

from types import ModuleType

from .handlers import (
    MODULES_1_0,
    handler_modules,
    handlers,
    import_handler_module,
    receive_handlers,
    send_handlers,
)
from .message import Message
from .monitor import ConnectionCountMonitor, SocketEventListener, no_clients_timeout_notifier
from .receiver import ReceiveHandler
from .statistics import Statistics
from .stream import BIND, CONNECT, PUB, PULL, PUSH, SUB, Stream, connect, disconnect

__all__ = [  # noqa: F822  (the handler modules come from __getattr__)
    "BIND",
    "CONNECT",
    "PUB",
    "PULL",
    "PUSH",
    "SUB",
    "Stream",
    "connect",
    "disconnect",
    "ReceiveHandler",
    "Statistics",
    "Message",
    "handler_modules",
    "handlers",
    "receive_handlers",
    "send_handlers",
    "array_1_0",
    "raw_1_0",
    "dheader_1_0",
    "dimage_1_0",
    "dseries_end_1_0",
    "ConnectionCountMonitor",
    "SocketEventListener",
    "no_clients_timeout_notifier",
]


def __getattr__(name: str) -> ModuleType:
    """The 1.0 handler modules, imported on first use."""
    return import_handler_module(name, MODULES_1_0, __name__)
