"""The SLS Detector Package receiver stream (JUNGFRAU, EIGER, MYTHEN, MOENCH via slsReceiver).

Parts: a JSON header without ``htype`` (``jsonversion``, ``bitmode``, ``shape`` [x, y],
``size``, ``frameIndex``, ...) and the raw little-endian pixels of this receiver's image.
The end of an acquisition is one part whose header has ``"data": 0``.

``receive`` returns ``{"header": header, "image": (y, x) array}``; ``"image"`` is ``None``
for the end-of-acquisition message. The pixel type follows ``bitmode``: 8, 16, 32 bits →
``uint8``, ``uint16``, ``uint32`` (a view on the received part); 4 bits → ``uint8``, two
pixels per byte with the first pixel in the high nibble; 12 bits → ``uint16``, two pixels
per three bytes, the first in byte 0 and the low nibble of byte 1, the second in the high
nibble of byte 1 and byte 2 (both as the SLS Detector Package's own viewer reads them).
An image part that cannot be decoded (its length not matching ``shape``, ``bitmode`` and
``size``, an unsupported ``bitmode``) leaves ``"image": None``, with ``"image_error"`` and
``"payload_errors"`` saying why (see `mflow.handlers._payload`; raised on a strict stream);
a message with more than two parts or a header that is not a JSON object is a
`MalformedMessageError`.

``send`` writes ``{"header": ..., "image": array_or_None}`` back, setting ``shape``,
``size`` and (if absent) ``bitmode`` from the image.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import ConfigurationError, DecodedSizeError, MalformedMessageError
from ._parts import encode_json, payload, require_dict, send_parts
from ._payload import PayloadDecoding

__all__ = ["Handler", "decode_image", "encode_image"]

_WORD_DTYPES: dict[int, np.dtype] = {8: np.dtype("<u1"), 16: np.dtype("<u2"), 32: np.dtype("<u4")}
_BITMODES = (4, 8, 12, 16, 32)


def _packed_size(pixels: int, bitmode: int) -> int:
    return (pixels * bitmode + 7) // 8


def decode_image(header: dict, part: Any, *, max_bytes: int | None = None) -> np.ndarray:
    """The ``(y, x)`` image in ``part`` as ``header`` (``bitmode``, ``shape``) describes it.

    ``max_bytes`` caps the size of a 4- or 12-bit image once unpacked.
    """
    bitmode = header.get("bitmode")
    if type(bitmode) is not int or bitmode not in _BITMODES:
        raise MalformedMessageError(
            f"unsupported SLS bitmode {bitmode!r} (supported: {', '.join(map(str, _BITMODES))})"
        )
    shape = header.get("shape")
    if not (
        isinstance(shape, list)
        and len(shape) == 2
        and all(type(n) is int and n >= 0 for n in shape)
    ):
        raise MalformedMessageError(f"SLS shape {shape!r} is not [x, y]")
    x, y = shape
    expected = _packed_size(x * y, bitmode)
    size = header.get("size", len(part))
    if len(part) != expected or size != len(part):
        raise MalformedMessageError(
            f"SLS image part of {len(part)} bytes (header size {size!r}) does not hold "
            f"{x}×{y} pixels of {bitmode} bits ({expected} bytes)"
        )
    if bitmode in _WORD_DTYPES:
        return np.frombuffer(part, _WORD_DTYPES[bitmode]).reshape(y, x)
    unpacked = x * y * (1 if bitmode == 4 else 2)
    if max_bytes is not None and unpacked > max_bytes:
        raise DecodedSizeError(
            f"SLS image of {unpacked} bytes unpacked exceeds the limit of {max_bytes} bytes"
        )
    packed = np.frombuffer(part, np.uint8)
    if bitmode == 4:
        pixels = np.empty(2 * packed.size, np.uint8)
        pixels[0::2] = packed >> 4
        pixels[1::2] = packed & 0x0F
    else:
        triples = np.zeros((packed.size + 2) // 3 * 3, np.uint16)
        triples[: packed.size] = packed
        b0, b1, b2 = triples[0::3], triples[1::3], triples[2::3]
        pixels = np.empty(2 * b0.size, np.uint16)
        pixels[0::2] = b0 | (b1 & 0x0F) << 8
        pixels[1::2] = b1 >> 4 | b2 << 4
    return pixels[: x * y].reshape(y, x)


def encode_image(image: np.ndarray, bitmode: int | None = None) -> bytes | memoryview:
    """The image part for a ``(y, x)`` ``image`` in ``bitmode`` (default: its item size)."""
    image = np.asarray(image)
    bitmode = bitmode or 8 * image.itemsize
    if bitmode in _WORD_DTYPES:
        return payload(np.ascontiguousarray(image, _WORD_DTYPES[bitmode]))
    if bitmode not in _BITMODES:
        raise ConfigurationError(f"unsupported SLS bitmode {bitmode!r}")
    flat = image.reshape(-1)
    if flat.size and (flat.min() < 0 or flat.max() >= 1 << bitmode):
        raise ConfigurationError(f"image values do not fit in {bitmode} bits")
    if bitmode == 4:
        pairs = np.zeros(2 * ((flat.size + 1) // 2), np.uint8)
        pairs[: flat.size] = flat
        return (pairs[0::2] << 4 | pairs[1::2]).tobytes()
    pairs = np.zeros(2 * ((flat.size + 1) // 2), np.uint16)
    pairs[: flat.size] = flat
    first, second = pairs[0::2], pairs[1::2]
    triples = np.empty((first.size, 3), np.uint8)
    triples[:, 0] = first & 0xFF
    triples[:, 1] = first >> 8 | (second & 0x0F) << 4
    triples[:, 2] = second >> 4
    return triples.tobytes()[: _packed_size(flat.size, bitmode)]


class Handler:
    """SLS receiver stream receive and send (registered under ``dispatch.SLS``)."""

    @staticmethod
    def receive(receiver: Any) -> dict:
        """Decode the header and, unless it ends the acquisition, the image."""
        header = require_dict(receiver.next(as_json=True), "SLS header")
        parts = receiver.rest_buffers()
        if len(parts) > 1:
            raise MalformedMessageError(f"SLS message has {len(parts) + 1} parts, expected 1 or 2")
        if not parts:
            if header.get("data", 1) != 0:
                raise MalformedMessageError(
                    "SLS message has no image part and is not an "
                    "end-of-acquisition message (data: 0)"
                )
            return {"header": header, "image": None}
        payloads = PayloadDecoding(receiver)
        message = {"header": header}
        payloads.decode_into(
            message,
            "image",
            "image",
            decode_image,
            header,
            parts[0],
            compressed=header.get("bitmode") in (4, 12),
        )
        return payloads.record(message)

    @staticmethod
    def send(message: dict, send: Callable[..., Any], block: bool = True) -> None:
        """Send the header, and the image part unless ``image`` is ``None``."""
        header = {"jsonversion": 5, **(message.get("header") or {})}
        image = message.get("image")
        if image is None:
            send_parts([encode_json({**header, "data": header.get("data", 0)})], send, block)
            return
        image = np.asarray(image)
        if image.ndim != 2:
            raise ConfigurationError(f"an SLS image is two-dimensional, got shape {image.shape}")
        part = encode_image(image, header.get("bitmode"))
        y, x = image.shape
        header.update(
            bitmode=header.get("bitmode") or 8 * image.itemsize, shape=[x, y], size=len(part)
        )
        send_parts([encode_json(header), part], send, block)
