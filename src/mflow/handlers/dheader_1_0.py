"""dheader-1.0: the global header that opens a DECTRIS Stream V1 series.

Parts by ``header_detail``: ``none`` → the header alone; ``basic`` → + ``part_2`` (detector
configuration, JSON); ``all`` → + flatfield (``part_3`` JSON, ``part_4_raw``), pixel mask
(``part_5``, ``part_6_raw``) and count-rate table (``part_7``, ``part_8_raw``). One more part
is the ``appendix`` (JSON when it parses, else text, else bytes).

``receive`` returns those keys and, for ``all``, ``"flatfield"``, ``"pixel_mask"`` and
``"countrate_table"`` as numpy arrays (declared type, declared shape reversed into numpy
order), each ``None`` when its blob does not match its declared shape (simulators send
placeholders) — the raw parts are delivered either way. The detector size in ``part_2``
(``x_pixels_in_detector``, ``y_pixels_in_detector``, ``bit_depth_image``) becomes the
stream's default budget of decoded bytes per image message (see `mflow.handlers._payload`).

Parts missing from the message are ``None``. Some simulators send the configuration part
as a separate message: the caller then gets a ``basic`` header with ``part_2`` set to
``None``, and the configuration object as a message without ``htype`` (counted as skipped
with reason ``bad_header``).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import MalformedMessageError
from ._parts import (
    decode_appendix,
    decode_json,
    dtype_of,
    encode_appendix,
    encode_json,
    payload,
    require_dict,
    send_parts,
)
from ._payload import declare_image_bytes

__all__ = ["Handler", "declared_array"]

_DETAIL_PARTS = {"none": 1, "basic": 2, "all": 8}
_ARRAYS = (
    ("flatfield", "part_3", "part_4_raw"),
    ("pixel_mask", "part_5", "part_6_raw"),
    ("countrate_table", "part_7", "part_8_raw"),
)
_PART_NAMES = ("part_2", "part_3", "part_4_raw", "part_5", "part_6_raw", "part_7", "part_8_raw")


def declared_array(description: Any, blob: Any) -> np.ndarray | None:
    """``blob`` as the little-endian array ``description`` declares (``shape`` is [x, y]).

    ``None`` when the description is unusable or the blob's length does not match it.
    """
    try:
        dtype = dtype_of(description["type"]).newbyteorder("<")
        shape = tuple(int(n) for n in reversed(description["shape"]))
        if len(blob) != int(np.prod(shape)) * dtype.itemsize:
            return None
        return np.frombuffer(blob, dtype).reshape(shape)
    except (KeyError, TypeError, ValueError, MalformedMessageError):
        return None


class Handler:
    """dheader-1.0 receive and send."""

    header_details = "all"

    @staticmethod
    def receive(receiver: Any) -> dict:
        header = require_dict(receiver.next(as_json=True), "dheader-1.0 header")
        parts = receiver.rest()
        detail = header.get("header_detail", "none")
        expected = _DETAIL_PARTS.get(detail, 1) - 1
        message: dict[str, Any] = {"header": header}
        if len(parts) < expected:
            # Some producers send fewer parts than header_detail promises (or send part 2
            # as a message of its own): deliver what came, the rest as None, as 1.0 did.
            parts = [*parts, *[None] * (expected - len(parts))]
        for name, part in zip(_PART_NAMES, parts[:expected], strict=False):
            if part is None:
                message[name] = None
            else:
                message[name] = part if name.endswith("_raw") else decode_json(part, name)
        if len(parts) > expected:
            message["appendix"] = decode_appendix(parts[expected])
        config = message.get("part_2")
        if isinstance(config, dict):
            declare_image_bytes(
                receiver,
                config.get("x_pixels_in_detector"),
                config.get("y_pixels_in_detector"),
                config.get("bit_depth_image"),
            )
        if detail == "all":
            for key, description, blob in _ARRAYS:
                message[key] = declared_array(message[description], message[blob])
        return message

    @staticmethod
    def send(message: dict, send: Callable[..., Any], block: bool = True) -> None:
        """Send the parts ``header_detail`` calls for, then ``appendix`` when present."""
        header = message["header"]
        expected = _DETAIL_PARTS.get(header.get("header_detail", "none"), 1) - 1
        parts = [encode_json(header)]
        for name in _PART_NAMES[:expected]:
            value = message.get(name)
            parts.append(payload(value) if name.endswith("_raw") else encode_json(value))
        if "appendix" in message:
            parts.append(encode_appendix(message["appendix"]))
        send_parts(parts, send, block)
