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

One table holds the registrations; the four 1.0 tables are live views of it (`RegistryView`):
``handlers`` (htype → class), ``receive_handlers`` and ``send_handlers`` (htype → its
methods) and ``handler_modules`` (htype → the module of its ``Handler``). A change made
through any of them is seen by the others and by `Stream.receive()` / `Stream.forward()`,
so 1.0 code that assigns to ``receive_handlers`` directly keeps working.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import MutableMapping
from types import ModuleType
from typing import Any, Callable, Iterator, Protocol, Sequence, TypeVar, cast

from ..errors import UnknownHtypeError

logger = logging.getLogger(__name__)

__all__ = [
    "Handler",
    "Receiver",
    "Send",
    "RegistryView",
    "register_handler",
    "get_handler",
    "get_receive_handler",
    "get_send_handler",
    "handler_modules",
    "handlers",
    "receive_handlers",
    "send_handlers",
    "ENTRY_POINT_GROUP",
    "MODULES_1_0",
    "import_handler_module",
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


class _Registration:
    """One htype's row of the registry: its handler and module, its two functions.

    ``receive`` and ``send`` are the handler's methods unless one was assigned (or deleted)
    through its 1.0 table; ``module`` is the module the handler is the ``Handler`` of.
    """

    __slots__ = ("handler", "receive", "send", "module")

    def __init__(self, handler: Any, module: ModuleType | None) -> None:
        self.handler = handler
        self.receive: Callable[[Any], Any] | None = getattr(handler, "receive", None)
        self.send: Callable[..., Any] | None = getattr(handler, "send", None)
        self.module = module

    def is_empty(self) -> bool:
        return self.handler is self.receive is self.send is self.module is None


#: The registry, the one source of truth: dispatch key → its registration. The 1.0
#: tables below are views of it; the compiled receive path reads it too.
_registry: dict[str, _Registration] = {}

_Value = TypeVar("_Value")


class RegistryView(MutableMapping[str, _Value]):
    """A 1.0 table: one column of the registry as a dict (htype → handler, function or module).

    Reads, iteration, assignment and deletion go to the registry itself, so every table and
    the dispatch see a change made through any of them. Assigning a handler (or a module
    holding a ``Handler``) registers it whole, as `register_handler` does; assigning a
    receive or send function replaces that function only. Reading a table as a whole loads
    the built-ins first; reading an htype loads its built-in or entry point.
    """

    __slots__ = ("_column",)

    def __init__(self, column: str) -> None:
        self._column = column

    def __getitem__(self, htype: str) -> _Value:
        value = _value(htype, self._column)
        if value is None:
            raise KeyError(htype)
        return value

    def __setitem__(self, htype: str, value: _Value) -> None:
        if self._column == "handler":
            register_handler(htype, value)
        elif self._column == "module":
            handler = getattr(value, "Handler", None)
            if handler is None:
                raise TypeError(f"a handler module holds a Handler; {value!r} has none")
            _register(htype, handler, cast(ModuleType, value))
        else:
            row = _find(htype)  # a built-in loaded later must not replace the value
            if row is None:
                row = _registry[htype] = _Registration(None, None)
            setattr(row, self._column, value)

    def __delitem__(self, htype: str) -> None:
        row = _find(htype)
        if row is None or getattr(row, self._column) is None:
            raise KeyError(htype)
        setattr(row, self._column, None)
        if self._column == "handler":
            row.module = None  # the module of a handler no longer registered
        if row.is_empty():
            del _registry[htype]

    def __iter__(self) -> Iterator[str]:
        _load_builtins()
        column = self._column
        return iter([htype for htype, row in _registry.items() if getattr(row, column) is not None])

    def __len__(self) -> int:
        _load_builtins()
        return sum(getattr(row, self._column) is not None for row in _registry.values())

    def __repr__(self) -> str:
        return repr(self.copy())

    def copy(self) -> dict[str, _Value]:
        """A plain dict of the table as it is now (as ``dict.copy``)."""
        return dict(self.items())


class HandlerTable(RegistryView[Any]):
    """``mflow.handlers``: the htype → handler class table that also resolves submodules.

    In 1.0 this dict shadowed the subpackage, so ``mflow.handlers.array_1_0`` failed; here
    attribute access falls back to importing ``mflow.handlers.<name>``.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> ModuleType:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"mflow.handlers has no attribute or submodule {name!r}") from None


handlers: HandlerTable = HandlerTable("handler")
receive_handlers: RegistryView[Callable[[Any], Any]] = RegistryView("receive")
send_handlers: RegistryView[Callable[..., Any]] = RegistryView("send")
handler_modules: RegistryView[ModuleType] = RegistryView("module")
_builtins_pending = dict(_BUILTIN_MODULES)
_plugins: dict[str, Any] | None = None  # entry-point name → not yet loaded entry point


def register_handler(htype: str, handler: Any) -> None:
    """Register ``handler`` (a class or object with ``receive`` / ``send``) for ``htype``.

    A handler that only receives (or only sends) may leave the other method out.
    Registering an htype again replaces the previous handler.
    """
    _register(htype, handler, _module_of(handler, getattr(handler, "__module__", None)))


def _register(htype: str, handler: Any, module: ModuleType | None) -> None:
    _builtins_pending.pop(htype, None)  # a built-in must not replace it later
    _registry[htype] = _Registration(handler, module)


def _module_of(handler: Any, module_name: str | None) -> ModuleType | None:
    """The module ``module_name`` if ``handler`` is its ``Handler``."""
    module = sys.modules.get(module_name or "")
    return module if getattr(module, "Handler", None) is handler else None


def _find(htype: object) -> _Registration | None:
    """The registration of ``htype``, its built-in or entry point loaded if need be."""
    row = _registry.get(htype)  # type: ignore[call-overload]
    if row is None and (_load_builtin(htype) or _load_entry_point(htype)):
        row = _registry.get(htype)  # type: ignore[call-overload]
    return row


def _load_builtin(htype: object) -> bool:
    """Import the built-in module of ``htype`` if it is one not loaded yet; True if so."""
    module_name = _builtins_pending.pop(htype, None)  # type: ignore[call-overload]
    if module_name is None:
        return False
    module = importlib.import_module(f"{__name__}.{module_name}")
    _register(cast(str, htype), module.Handler, module)  # popped: a key, so a str
    return True


def _load_builtins() -> None:
    for htype in list(_builtins_pending):
        _load_builtin(htype)


def _load_entry_point(htype: object) -> bool:
    """Register the plugin named ``htype`` if one is installed; True if it was.

    The group's names are read once, at the first unknown htype; only the plugin looked
    up is imported.
    """
    global _plugins
    if type(htype) is not str:
        return False
    if _plugins is None:
        from importlib.metadata import entry_points

        _plugins = {entry.name: entry for entry in entry_points(group=ENTRY_POINT_GROUP)}
    entry = _plugins.pop(htype, None)
    if entry is None:
        return False
    try:
        handler = entry.load()
        _register(htype, handler, _module_of(handler, entry.module))
    except Exception:  # a broken plugin is reported, the htype stays unknown
        logger.exception("cannot load the mflow handler plugin %r (%s)", entry.name, entry.value)
        return False
    return True


def _value(htype: object, column: str) -> Any:
    """The ``column`` of the registration of ``htype``, or None."""
    row = _find(htype)
    return None if row is None else getattr(row, column)


def _registered(htype: str, column: str) -> Any:
    """The ``column`` of the registration of ``htype``; `UnknownHtypeError` if none."""
    value = _value(htype, column)
    if value is None:
        raise UnknownHtypeError(f"no handler registered for htype {htype[:100]!r}")
    return value


def get_handler(htype: str) -> Any:
    """The handler class registered for ``htype``; `UnknownHtypeError` if there is none."""
    return _registered(htype, "handler")


def get_receive_handler(htype: str) -> Callable[[Any], Any]:
    """The receive function for ``htype`` (honours direct edits of ``receive_handlers``)."""
    return _registered(htype, "receive")


def get_send_handler(htype: str) -> Callable[..., Any]:
    """The send function for ``htype`` (honours direct edits of ``send_handlers``)."""
    return _registered(htype, "send")


#: The handler modules psi-mflow 1.0 had, attributes of ``mflow`` and ``mflow.mflow`` too.
MODULES_1_0 = frozenset({"array_1_0", "raw_1_0", "dheader_1_0", "dimage_1_0", "dseries_end_1_0"})
_SUBMODULES = frozenset(_BUILTIN_MODULES.values()) | {"_parts"}


def import_handler_module(name: str, names: frozenset[str], owner: str) -> ModuleType:
    """``mflow.handlers.<name>`` if ``name`` is one of ``names``, imported on first use: the
    module ``__getattr__`` of ``owner`` (which has those modules as attributes)."""
    if name in names:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {owner!r} has no attribute {name!r}")


def __getattr__(name: str) -> ModuleType:
    """The handler modules (``mflow.handlers.array_1_0`` ...), imported on first use."""
    return import_handler_module(name, _SUBMODULES, __name__)
