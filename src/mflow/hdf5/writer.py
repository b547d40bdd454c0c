"""One writer for a whole stream: each message goes to the writer of its type."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..dispatch import dispatch_key
from ..handlers import get_receive_handler
from . import chunks
from .array import ArrayWriter
from .bsread import BsreadWriter
from .dectris import DectrisWriter

__all__ = ["StreamWriter"]


class StreamWriter:
    """Writes the messages of a stream to files in ``directory``.

    DECTRIS Stream V1 and V2 messages go to a `DectrisWriter` (``options`` are its keyword
    arguments), bsread to a `BsreadWriter` and array-1.0 to an `ArrayWriter` (with the same
    ``name``, ``compression`` and ``overwrite``); messages of other types are not written
    and counted in ``not_written``.
    Use `handle` as the receive handler (``stream.receive(handler=writer.handle,
    decode=False)``) and pass what it returns to `write`.
    """

    def __init__(
        self,
        directory: str,
        name: str = "series_{series}",
        compression: str = chunks.BITSHUFFLE,
        overwrite: bool = False,
        **options: Any,
    ) -> None:
        common: dict[str, Any] = {"name": name, "compression": compression, "overwrite": overwrite}
        self.dectris = DectrisWriter(directory, **common, **options)
        self.bsread = BsreadWriter(directory, **common)
        self.array = ArrayWriter(directory, **common)
        self.not_written: Counter[str] = Counter()
        self._writers: dict[str, Any] = {
            key: writer for writer in (self.dectris, self.bsread, self.array) for key in writer.KEYS
        }

    @staticmethod
    def handle(receiver: Any) -> tuple[str, Any]:
        """Decode the receiver's message as its type's handler does: ``(key, data)``."""
        key = dispatch_key(receiver)
        return key, get_receive_handler(key)(receiver)

    def write(self, key: str, data: Any) -> None:
        """Write one message ``(key, data)`` as `handle` returned it."""
        writer = self._writers.get(key)
        if writer is None:
            self.not_written[key] += 1
        else:
            writer.write(key, data)

    def flush(self) -> None:
        """Hand everything written so far to the files."""
        for writer in (self.dectris, self.bsread, self.array):
            writer.flush()

    def flush_if_due(self) -> None:
        """`flush` at most once a second (call it also while no message comes)."""
        for writer in (self.dectris, self.bsread, self.array):
            writer.flush_if_due()

    def close(self) -> None:
        """Finish every open series and close every file."""
        for writer in (self.dectris, self.bsread, self.array):
            writer.close()
