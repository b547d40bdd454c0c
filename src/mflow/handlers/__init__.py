"""The message-type registry: dispatch key (``htype``) → handler.

A handler is a class with two static methods, the 1.0 interface:

``receive(receiver) -> data``
    reads the current message through the `mflow.receiver.ReceiveHandler` cursor and
    returns its decoded data; a falsy result or an exception means "no message".
``send(message, send, block=True)``
    writes ``message`` (what ``receive`` returns) through ``send(frame, send_more=...,
    block=...)``, normally `mflow.Stream.send`.

Built-in types are registered below; other packages add theirs with `register_handler` or
through the ``mflow.handlers`` entry-point group (name = htype, value =
``"package.module:Handler"``), loaded the first time an unknown htype is looked up.

The three 1.0 tables stay live: ``handlers`` (htype → class), ``receive_handlers`` and
``send_handlers`` (htype → its static methods). `Stream.receive()` consults
``receive_handlers``, so code that assigns to it directly keeps working.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Callable

from ..errors import UnknownHtypeError

logger = logging.getLogger(__name__)

__all__ = [
    "register_handler",
    "get_handler",
    "get_receive_handler",
    "get_send_handler",
    "handler_modules",
    "handlers",
    "receive_handlers",
    "send_handlers",
    "ENTRY_POINT_GROUP",
]

ENTRY_POINT_GROUP = "mflow.handlers"

_BUILTIN_MODULES = {
    "array-1.0": "array_1_0",
    "raw-1.0": "raw_1_0",
    "dheader-1.0": "dheader_1_0",
    "dimage-1.0": "dimage_1_0",
    "dseries_end-1.0": "dseries_end_1_0",
    "bsr_m-1.0": "bsread",
    "bsr_m-1.1": "bsread",
    "dectris-stream2": "stream2",
    "sls-receiver": "sls",
}


class HandlerTable(dict):
    """``mflow.handlers``: a dict htype → handler class that also resolves submodules.

    In 1.0 this dict shadowed the subpackage, so ``mflow.handlers.array_1_0`` failed; here
    attribute access falls back to importing ``mflow.handlers.<name>``.
    """

    def __getattr__(self, name: str) -> ModuleType:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"mflow.handlers has no attribute or submodule {name!r}") from None


handlers: HandlerTable = HandlerTable()
receive_handlers: dict[str, Callable[[Any], Any]] = {}
send_handlers: dict[str, Callable[..., Any]] = {}
handler_modules: dict[str, ModuleType] = {}
_entry_points_loaded = False


def register_handler(htype: str, handler: Any) -> None:
    """Register ``handler`` (a class or object with ``receive`` / ``send``) for ``htype``.

    A handler that only receives (or only sends) may leave the other method out.
    Registering an htype again replaces the previous handler.
    """
    handlers[htype] = handler
    for table, method in ((receive_handlers, "receive"), (send_handlers, "send")):
        function = getattr(handler, method, None)
        if function is None:
            table.pop(htype, None)
        else:
            table[htype] = function


def _load_entry_points() -> None:
    global _entry_points_loaded
    _entry_points_loaded = True
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in handlers:
            continue
        try:
            register_handler(entry.name, entry.load())
        except Exception:  # one broken plugin must not hide the others
            logger.exception("cannot load the mflow handler plugin %r (%s)", entry.name,
                             entry.value)


def _lookup(table: dict[str, Any], htype: str) -> Any:
    found = table.get(htype)
    if found is None and not _entry_points_loaded:
        _load_entry_points()
        found = table.get(htype)
    if found is None:
        raise UnknownHtypeError(f"no handler registered for htype {htype!r}")
    return found


def get_handler(htype: str) -> Any:
    """The handler class registered for ``htype``; `UnknownHtypeError` if there is none."""
    return _lookup(handlers, htype)


def get_receive_handler(htype: str) -> Callable[[Any], Any]:
    """The receive function for ``htype`` (honours direct edits of ``receive_handlers``)."""
    return _lookup(receive_handlers, htype)


def get_send_handler(htype: str) -> Callable[..., Any]:
    """The send function for ``htype`` (honours direct edits of ``send_handlers``)."""
    return _lookup(send_handlers, htype)


def _register_builtins() -> None:
    for htype, module_name in _BUILTIN_MODULES.items():
        module = importlib.import_module(f"{__name__}.{module_name}")
        handler_modules[htype] = module
        register_handler(htype, module.Handler)


_register_builtins()
