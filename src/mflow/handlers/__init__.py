"""The message-type registry: dispatch key (``htype``) → handler.

A handler (`Handler`) is a class or object with two methods, the 1.0 interface:

``receive(receiver) -> data``
    reads the current message through the `Receiver` cursor (`mflow.ReceiveHandler`)
    and returns its decoded data; a falsy result or an exception means "no message".
``send(message, send, block=True)``
    writes ``message`` (what ``receive`` returns) through the `Send` callable
    ``send(frame, send_more=..., block=...)``, normally `mflow.Stream.send`.

Built-in types are imported the first time their htype is looked up (or a table is read
as a whole); other packages add theirs with `register_handler` or through the
``mflow.handlers`` entry-point group (name = htype, value = ``"package.module:Handler"``),
the entry of an unknown htype loaded by its name when it is first looked up.

The three 1.0 tables stay live: ``handlers`` (htype → class), ``receive_handlers`` and
``send_handlers`` (htype → its methods), kept in step by `register_handler`.
`Stream.receive()` consults ``receive_handlers``, so code that assigns to it directly
keeps working.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType
from typing import Any, Callable, Iterator, Protocol, Sequence, cast

from ..errors import UnknownHtypeError

logger = logging.getLogger(__name__)

__all__ = [
    "Handler",
    "Receiver",
    "Send",
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

#: Built-in htype → module of this package that holds its ``Handler``.
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


class Receiver(Protocol):
    """The cursor a handler reads one message through (`mflow.ReceiveHandler`)."""

    decode: bool

    def next(self, as_json: bool = False) -> Any: ...

    def has_more(self) -> int: ...

    def rest(self) -> Sequence[Any]: ...

    def rest_buffers(self) -> Sequence[Any]: ...


class Send(Protocol):
    """Sends one frame of a message (`mflow.Stream.send`)."""

    def __call__(
        self, message: Any, send_more: bool = False, block: bool = True, as_json: bool = False
    ) -> Any: ...


class Handler(Protocol):
    """A message type: what `register_handler` takes (either method may be missing)."""

    def receive(self, receiver: Receiver) -> Any: ...

    def send(self, message: Any, send: Send, block: bool = True) -> None: ...


class _Table(dict):
    """A 1.0 table: a plain dict whose reads as a whole load the built-ins first."""

    def __iter__(self) -> Iterator[Any]:
        _load_builtins()
        return super().__iter__()

    def __len__(self) -> int:
        _load_builtins()
        return super().__len__()

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key) or (_load_builtin(key) and super().__contains__(key))

    def __getitem__(self, key: Any) -> Any:
        if not super().__contains__(key):
            _load_builtin(key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        found = super().get(key, _MISSING)
        if found is _MISSING:
            _load_builtin(key)
            found = super().get(key, default)
        return found

    def __repr__(self) -> str:
        _load_builtins()
        return super().__repr__()

    def __eq__(self, other: object) -> bool:
        _load_builtins()
        return super().__eq__(other)

    __hash__ = None

    def keys(self):
        _load_builtins()
        return super().keys()

    def values(self):
        _load_builtins()
        return super().values()

    def items(self):
        _load_builtins()
        return super().items()

    def copy(self) -> dict:
        _load_builtins()
        return dict(super().items())


class HandlerTable(_Table):
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


_MISSING = object()
handlers: HandlerTable = HandlerTable()
receive_handlers: dict[str, Callable[[Any], Any]] = _Table()
send_handlers: dict[str, Callable[..., Any]] = _Table()
handler_modules: dict[str, ModuleType] = _Table()
_TABLES = ((handlers, None), (receive_handlers, "receive"), (send_handlers, "send"))
_builtins_pending = dict(_BUILTIN_MODULES)
_plugins: dict[str, Any] | None = None  # entry-point name → not yet loaded entry point


def register_handler(htype: str, handler: Any) -> None:
    """Register ``handler`` (a class or object with ``receive`` / ``send``) for ``htype``.

    A handler that only receives (or only sends) may leave the other method out.
    Registering an htype again replaces the previous handler.
    """
    _builtins_pending.pop(htype, None)  # a built-in must not replace it later
    _enter(htype, handler, replace=True)


def _enter(htype: str, handler: Any, replace: bool) -> None:
    for table, method in _TABLES:
        function = handler if method is None else getattr(handler, method, None)
        if not replace and dict.__contains__(table, htype):
            continue  # assigned directly before the built-in was loaded: that one stays
        if function is None:
            dict.pop(table, htype, None)
        else:
            dict.__setitem__(table, htype, function)


def _load_builtin(htype: object) -> bool:
    """Import the built-in module of ``htype`` if it is one not loaded yet; True if so."""
    module_name = _builtins_pending.pop(htype, None)  # type: ignore[call-overload]
    if module_name is None:
        return False
    module = importlib.import_module(f"{__name__}.{module_name}")
    dict.setdefault(handler_modules, cast(str, htype), module)  # popped: a key, so a str
    _enter(htype, module.Handler, replace=False)  # type: ignore[arg-type]
    return True


def _load_builtins() -> None:
    for htype in list(_builtins_pending):
        _load_builtin(htype)


def _load_entry_point(htype: str) -> bool:
    """Register the plugin named ``htype`` if one is installed; True if it was.

    The group's names are read once, at the first unknown htype; only the plugin looked
    up is imported.
    """
    global _plugins
    if _plugins is None:
        from importlib.metadata import entry_points

        _plugins = {entry.name: entry for entry in entry_points(group=ENTRY_POINT_GROUP)}
    entry = _plugins.pop(htype, None)
    if entry is None:
        return False
    try:
        register_handler(htype, entry.load())
    except Exception:  # a broken plugin is reported, the htype stays unknown
        logger.exception("cannot load the mflow handler plugin %r (%s)", entry.name, entry.value)
        return False
    return True


def _lookup(table: dict[str, Any], htype: str) -> Any:
    found = dict.get(table, htype)
    if found is None and (_load_builtin(htype) or _load_entry_point(htype)):
        found = dict.get(table, htype)
    if found is None:
        raise UnknownHtypeError(f"no handler registered for htype {htype[:100]!r}")
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


_SUBMODULES = frozenset(_BUILTIN_MODULES.values()) | {"_parts"}


def __getattr__(name: str) -> ModuleType:
    """The handler modules (``mflow.handlers.array_1_0`` ...), imported on first use."""
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
