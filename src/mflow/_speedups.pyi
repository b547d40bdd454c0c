"""Types of the compiled receive path built from ``_speedups.c`` (see ``mflow._fastpath``)."""

from typing import Any, Callable, Sequence

class Frame:
    """A received ZeroMQ message part, held without a copy (like ``zmq.Frame``)."""

    @property
    def bytes(self) -> bytes: ...
    @property
    def buffer(self) -> memoryview: ...
    @property
    def more(self) -> bool: ...
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...

def configure(
    libzmq_path: str,
    zmq_error: Callable[[int], BaseException],
    loads: Callable[[bytes], Any],
    registry: dict[str, Any],
    array_receive: Callable[[Any], Any],
    layout: Callable[[Any, Any], Any],
    frombuffer: Callable[..., Any],
    message_class: type,
    statistics_class: type,
    gaps_class: type,
    number_keys: tuple[str, ...],
    source_keys: tuple[str, ...],
) -> None: ...
def receive_frames(handle: int, flags: int) -> list[Frame]: ...
def receive_message(
    handle: int, flags: int, statistics: Any
) -> Any | tuple[list[Frame], dict | None, bytes | None]: ...
def send_frames(handle: int, flags: int, parts: Sequence[Frame | bytes]) -> bool: ...
def events(handle: int) -> int: ...
