"""The compiled receive path (``mflow._speedups``, built from ``_speedups.c``) when it can run.

The pure Python path is the reference and always there: the compiled one is used when it
was built at installation (it needs a C compiler; without one mflow installs without it),
pyzmq's libzmq is loaded as a shared library the way pyzmq's wheels ship it, and the
environment variable ``MFLOW_PURE_PYTHON`` is not set. Both paths give the same results;
the tests run both.
"""

from __future__ import annotations

import functools
import os
from types import ModuleType
from typing import Any

import zmq

__all__ = ["speedups", "for_socket", "zmq_error", "FRAME_TYPES"]

#: The types a received part can have (what `mflow.Stream.receive_parts` returns, what
#: zero-copy arrays are views on): ``zmq.Frame``, and the compiled path's frame.
FRAME_TYPES: tuple[type, ...] = (zmq.Frame,)
try:
    from ._speedups import Frame as _CompiledFrame
except ImportError:
    pass
else:
    FRAME_TYPES += (_CompiledFrame,)

_ERRORS: dict[int, type[zmq.ZMQError]] = {zmq.EAGAIN: zmq.Again, zmq.ETERM: zmq.ContextTerminated}


def zmq_error(errno: int) -> zmq.ZMQError:
    """The exception pyzmq raises for ``errno``."""
    return _ERRORS.get(errno, zmq.ZMQError)(errno)


@functools.cache
def _configured() -> ModuleType | None:
    if zmq.zmq_version_info() < (4, 1):  # the size of zmq_msg_t changed there
        return None
    try:
        from zmq.backend.cython import _zmq as backend

        from . import _speedups
        from .handlers import _registry
        from .handlers.array_1_0 import Handler, _layout
        from .message import Message
        from .statistics import NUMBER_KEYS, SOURCE_KEYS, SequenceGaps, Statistics
        import numpy
        import orjson

        if not hasattr(_speedups, "events"):
            return None  # a build older than its source: the pure Python path is right
        _speedups.configure(
            backend.__file__,
            zmq_error,
            orjson.loads,
            _registry,
            Handler.receive,
            _layout,
            numpy.frombuffer,
            Message,
            Statistics,
            SequenceGaps,
            NUMBER_KEYS,
            SOURCE_KEYS,
        )
    except (ImportError, AttributeError, OSError):
        return None
    return _speedups


def speedups() -> ModuleType | None:
    """The configured compiled module, or ``None`` when the pure Python path is to be used."""
    if os.environ.get("MFLOW_PURE_PYTHON"):
        return None
    return _configured()


def for_socket(socket: Any) -> tuple[ModuleType | None, int | None]:
    """The compiled module and the libzmq handle to use it with ``socket``, or (None, None).

    Only pyzmq's own sockets qualify (asyncio and gevent sockets wrap recv and send).
    """
    module = speedups() if type(socket) is zmq.Socket else None
    return (module, socket.underlying) if module is not None else (None, None)
