"""raw-1.0: a JSON header and opaque data parts.

``receive`` returns ``{"header": header, "data": [part_or_None, ...]}`` with parts as
``bytes`` (or memoryviews when the stream does not copy) and empty parts ``None``.
"""

from __future__ import annotations

from typing import Any, Callable

from ._parts import encode_json, payload, require_dict, send_parts

__all__ = ["Handler"]


class Handler:
    """raw-1.0 receive and send."""

    @staticmethod
    def receive(receiver: Any) -> dict | None:
        header = require_dict(receiver.next(as_json=True), "raw-1.0 header")
        data = [part if len(part) else None for part in receiver.rest()]
        if not header and not data:
            return None
        return {"header": header, "data": data}

    @staticmethod
    def send(message: dict, send: Callable[..., Any], block: bool = True) -> None:
        """Send ``{"header": ..., "data": [...]}`` as one multipart message."""
        parts = [encode_json(message["header"]), *map(payload, message.get("data") or [])]
        send_parts(parts, send, block)
