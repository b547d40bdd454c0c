"""dseries_end-1.0: the single JSON part that ends a DECTRIS Stream V1 series."""

from __future__ import annotations

from typing import Any, Callable

from ._parts import encode_json, require_dict, send_parts

__all__ = ["Handler"]


class Handler:
    """dseries_end-1.0 receive and send: ``{"header": header}``."""

    @staticmethod
    def receive(receiver: Any) -> dict:
        return {"header": require_dict(receiver.next(as_json=True), "dseries_end-1.0 header")}

    @staticmethod
    def send(message: dict, send: Callable[..., Any], block: bool = True) -> None:
        send_parts([encode_json(message["header"])], send, block)
