"""The object ``Stream.receive()`` returns."""

from __future__ import annotations

from typing import Any

from .statistics import Statistics

__all__ = ["Message"]


class Message:
    """A received message: ``data`` as decoded by its handler, ``statistics`` of the receiver.

    ``statistics`` is the receiver's single live `Statistics` object (the same for every
    message of a stream), as in 1.0.
    """

    def __init__(self, statistics: Statistics, data: Any) -> None:
        self.statistics = statistics
        self.data = data

    def __repr__(self) -> str:
        return f"<Message data={type(self.data).__name__}>"
