"""Building blocks the built-in handlers share: JSON parts, payload parts, sending."""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import MalformedMessageError
from ..jsonparse import parse_json

__all__ = [
    "encode_json",
    "decode_json",
    "payload",
    "send_parts",
    "require_dict",
    "dtype_of",
    "decode_appendix",
    "encode_appendix",
]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_json(value: Any) -> bytes:
    """``value`` as a UTF-8 JSON part (numpy scalars and arrays become plain numbers/lists)."""
    return json.dumps(value, default=_json_default).encode("utf-8")


def decode_json(part: Any, what: str) -> Any:
    """Parse a JSON part; a part that is not UTF-8 JSON is a `MalformedMessageError`."""
    if part is None:
        raise MalformedMessageError(f"{what} is missing")
    try:
        return parse_json(part)
    except ValueError as error:
        raise MalformedMessageError(f"{what} is not UTF-8 JSON: {error}") from None


def require_dict(value: Any, what: str) -> dict:
    """``value`` itself if it is a JSON object, else a `MalformedMessageError`."""
    if not isinstance(value, dict):
        raise MalformedMessageError(f"{what} is not a JSON object")
    return value


_DTYPES: dict[Any, np.dtype] = {}


def dtype_of(name: Any) -> np.dtype:
    """The numpy dtype a header's ``type`` names (cached); plain-data types only."""
    dtype = _DTYPES.get(name)
    if dtype is None:
        try:
            dtype = np.dtype(name)
        except (TypeError, ValueError):
            raise MalformedMessageError(f"unknown data type {name!r}") from None
        if dtype.hasobject or dtype.itemsize == 0:
            raise MalformedMessageError(f"data type {name!r} cannot be received")
        if len(_DTYPES) < 1024:  # bounded: headers come from the network
            _DTYPES[name] = dtype
    return dtype


def payload(segment: Any) -> Any:
    """A data segment as something ZeroMQ can send without a copy (None → empty part)."""
    if segment is None:
        return b""
    if isinstance(segment, np.ndarray):
        return np.ascontiguousarray(segment).data.cast("B")
    return segment


def send_parts(parts: Sequence[Any], send: Callable[..., Any], block: bool = True) -> None:
    """Send ``parts`` as one multipart message through the 1.0 ``send`` callable.

    Every part is checked to be a buffer before the first is sent, so a bad part cannot
    leave a message half-sent with SNDMORE set (it would be glued to the next one). The
    first part always blocks, as in 1.0 (later parts of a multipart message never block
    once the first was queued).
    """
    for part in parts:
        memoryview(part)  # TypeError now, rather than after part 0 went out
    last = len(parts) - 1
    for index, part in enumerate(parts):
        send(part, send_more=index < last, block=block if index else True)


def decode_appendix(part: Any) -> Any:
    """An appendix part: parsed JSON if it is JSON, else its text, else its bytes."""
    raw = bytes(part)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
    try:
        return decode_json(raw, "appendix")
    except MalformedMessageError:
        return text


def encode_appendix(value: Any) -> Any:
    """An appendix as a part: bytes as they are, anything else as JSON (text too, as 1.0
    sent it, so that 1.0 receivers, which parse it as JSON, can read it)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return value
    return encode_json(value)
