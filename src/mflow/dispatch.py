"""The sniffer: which handler a message goes to, decided from its frame 0.

Most formats carry a UTF-8 JSON header whose ``htype`` is the dispatch key. Two dialects
do not: DECTRIS Stream V2 sends one CBOR map per message (key `STREAM2`), and the SLS
receiver sends a JSON header with ``jsonversion`` but no ``htype`` (key `SLS`).
"""

from __future__ import annotations

from typing import Any

from .errors import BadHeaderError

__all__ = ["dispatch_key", "send_key", "STREAM2", "SLS"]

STREAM2 = "dectris-stream2"
SLS = "sls-receiver"

_SELF_DESCRIBED_CBOR = b"\xd9\xd9\xf7"


def _is_cbor_map(frame: Any) -> bool:
    """Whether ``frame`` starts like a CBOR map (no JSON text can), looked at without a copy."""
    head = memoryview(frame)[:3]
    return head == _SELF_DESCRIBED_CBOR or (len(head) > 0 and 0xA0 <= head[0] <= 0xBF)


def dispatch_key(receiver: Any) -> str:
    """The registry key of the receiver's current message; `BadHeaderError` if none fits.

    Frame 0 is first looked at for CBOR (a Stream V2 message is never parsed as JSON).
    """
    frames = receiver.frames
    if frames and receiver.position == 0 and _is_cbor_map(frames[0]):
        return STREAM2
    try:
        header = receiver.header()
    except ValueError as error:
        raise BadHeaderError(f"frame 0 is not UTF-8 JSON: {error}") from None
    if isinstance(header, dict):
        htype = header.get("htype")
        if isinstance(htype, str):
            return htype
        if "jsonversion" in header:
            return SLS
        raise BadHeaderError("frame 0 has no htype")
    raise BadHeaderError(f"frame 0 is JSON but not an object: {type(header).__name__}")


def send_key(message: Any) -> str:
    """The registry key to send ``message`` (data as `receive` returned it) with.

    A message without a ``header`` raises ``KeyError`` (or ``TypeError``), as in 1.0.
    """
    if (
        isinstance(message, dict)
        and "header" not in message
        and isinstance(message.get("type"), str)
    ):
        return STREAM2
    header = message["header"]
    if isinstance(header, dict) and "htype" not in header and "jsonversion" in header:
        return SLS
    return header["htype"]
