"""One writer for a whole stream: each message goes to the writer of its type."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..dispatch import dispatch_key
from ..handlers import get_receive_handler
from .dectris import DectrisWriter

__all__ = ["StreamWriter"]


class StreamWriter:
    """Writes the messages of a stream to files in ``directory``.

    DECTRIS Stream V1 and V2 messages go to a `DectrisWriter` (``options`` are its keyword
    arguments); messages of other types are not written and counted in ``not_written``.
    Use `handle` as the receive handler (``stream.receive(handler=writer.handle,
    decode=False)``) and pass what it returns to `write`.
    """

    def __init__(self, directory: str, **options: Any) -> None:
        self.dectris = DectrisWriter(directory, **options)
        self.not_written: Counter[str] = Counter()

    @staticmethod
    def handle(receiver: Any) -> tuple[str, Any]:
        """Decode the receiver's message as its type's handler does: ``(key, data)``."""
        key = dispatch_key(receiver)
        return key, get_receive_handler(key)(receiver)

    def write(self, key: str, data: Any) -> None:
        """Write one message ``(key, data)`` as `handle` returned it."""
        if key in DectrisWriter.KEYS:
            self.dectris.write(key, data)
        else:
            self.not_written[key] += 1

    def flush(self) -> None:
        """Hand everything written so far to the files."""
        self.dectris.flush()

    def flush_if_due(self) -> None:
        """`flush` at most once a second (call it also while no message comes)."""
        self.dectris.flush_if_due()

    def close(self) -> None:
        """Finish every open series and close every file."""
        self.dectris.close()
