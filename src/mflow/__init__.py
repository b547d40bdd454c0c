"""mflow: ZeroMQ data streams from X-ray detectors and beam-synchronous sources.

A drop-in replacement for psi-mflow 1.0: every 1.0 name is here (``mflow.connect``,
``mflow.Stream``, the handler tables, ...), plus the message-type registry, the error tree
and richer statistics.
"""

import json
import logging
from typing import Any as _Any  # private: every public name here is 1.0 API or in __all__

import zmq

from . import errors, utils
from .errors import (
    BadHeaderError,
    CompressionError,
    ConfigurationError,
    ConnectError,
    DecodeError,
    MalformedMessageError,
    MflowError,
    RecordingError,
    SendTimeoutError,
    StreamClosedError,
    StreamError,
    StreamTimeoutError,
    UnknownHtypeError,
)
from .handlers import MODULES_1_0 as _MODULES_1_0
from .handlers import import_handler_module as _import_handler_module
from .handlers import (
    get_handler,
    handler_modules,
    receive_handlers,
    register_handler,
    send_handlers,
)
from .handlers import handlers  # noqa: E402  (rebinds ``mflow.handlers`` to the 1.0 dict)
from .delivery import Delivery, PeerTracker
from .merge import Merge, RoundRobinStrategy
from .message import Message
from .monitor import ConnectionCountMonitor, SocketEventListener, no_clients_timeout_notifier
from .receiver import ReceiveHandler
from .statistics import Statistics
from .stream import BIND, CONNECT, PUB, PULL, PUSH, SUB, Stream, connect, disconnect
from . import mflow  # noqa: E402  (1.0 module path ``mflow.mflow``)
from . import _installation

_installation.warn_if_mixed()

__version__ = "2.0.0.dev0"

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

__all__ = [
    "__version__",
    # streams
    "connect",
    "disconnect",
    "Stream",
    "CONNECT",
    "BIND",
    "PUB",
    "SUB",
    "PUSH",
    "PULL",
    "ReceiveHandler",
    "Statistics",
    "Message",
    "Merge",
    "RoundRobinStrategy",
    "FramePool",
    # message types
    "register_handler",
    "get_handler",
    "handlers",
    "receive_handlers",
    "send_handlers",
    "handler_modules",
    "array_1_0",
    "raw_1_0",
    "dheader_1_0",
    "dimage_1_0",
    "dseries_end_1_0",
    # monitoring
    "SocketEventListener",
    "ConnectionCountMonitor",
    "no_clients_timeout_notifier",
    "PeerTracker",
    "Delivery",
    # errors
    "MflowError",
    "DecodeError",
    "UnknownHtypeError",
    "MalformedMessageError",
    "BadHeaderError",
    "CompressionError",
    "StreamError",
    "ConnectError",
    "StreamTimeoutError",
    "SendTimeoutError",
    "StreamClosedError",
    "RecordingError",
    "ConfigurationError",
    # modules and 1.0 incidentals
    "errors",
    "utils",
    "mflow",
    "main",
    "zmq",
    "json",
    "logging",
    "logger",
]


def main() -> None:
    """Run the ``mflow`` command line (1.0 had a demo here that needed PSI's network)."""
    from .cli import main as cli_main

    cli_main()


#: Names imported from their module on first use (numpy again).
_LAZY_NAMES = {"FramePool": ".framepool"}


def __getattr__(name: str) -> _Any:
    """``mflow.tools``, `FramePool` and the 1.0 handler modules, imported on first use
    (the handler modules import numpy, which takes longer than ZeroMQ itself to import)."""
    if name == "tools":
        import importlib

        return importlib.import_module(".tools", __name__)
    module = _LAZY_NAMES.get(name)
    if module is not None:
        import importlib

        return getattr(importlib.import_module(module, __name__), name)
    return _import_handler_module(name, _MODULES_1_0, __name__)
