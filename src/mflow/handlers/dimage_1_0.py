"""dimage-1.0: one image of a DECTRIS Stream V1 series.

Parts: ``header`` (JSON: series, frame, hash), ``part_2`` (JSON: ``shape`` [x, y], ``type``,
``encoding``, ``size``), ``part_3_raw`` (the image blob), ``part_4`` (JSON timing), and an
optional ``appendix``.

``receive`` returns those keys plus ``"image"``: the decoded ``(y, x)`` numpy array for the
encodings ``<`` (uncompressed), ``lz4<`` (one LZ4 block) and ``bs8|16|32-lz4<``
(bitshuffle-LZ4, with, without or with a zeroed 12-byte header). An image that cannot be
decoded (unknown encoding or pixel type, corrupt blob, size not matching ``part_2``, more
than the stream's decoded-bytes budget) leaves the message intact with ``"image": None``
and ``"image_error"`` saying why, as do ``"payload_errors"`` (see `mflow.handlers._payload`;
counted in the statistics' ``payload_errors``, raised on a strict stream). With decoding
switched off
(``Stream(decode=False)`` or ``receive(decode=False)``) there is no ``"image"`` key and the
blob is left as it came, e.g. for writers that store it compressed.

``send`` encodes ``"image"`` when the message has no ``part_3_raw``, with the compression
``part_2["encoding"]`` names (default bitshuffle-LZ4).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import codecs
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
from ._payload import PayloadDecoding

__all__ = ["Handler", "decode_image", "encode_image"]


def _image_layout(description: dict) -> tuple[np.dtype, tuple[int, int]]:
    try:
        x, y = description["shape"]
        dtype = dtype_of(description["type"]).newbyteorder("<")
    except (KeyError, TypeError, ValueError):
        raise MalformedMessageError(
            f"dimage_d-1.0 part {description!r} has no usable shape [x, y] and type"
        ) from None
    if type(x) is not int or type(y) is not int or x < 0 or y < 0:
        raise MalformedMessageError(f"dimage_d-1.0 shape {[x, y]!r} is not two sizes")
    if dtype.kind not in "biuf" or dtype.shape:
        raise MalformedMessageError(f"dimage type {description['type']!r} is not a pixel type")
    return dtype, (y, x)


def decode_image(
    description: dict,
    blob: Any,
    *,
    max_bytes: int | None = None,
    allocate: Callable[[np.dtype, tuple[int, ...]], np.ndarray | None] | None = None,
) -> np.ndarray:
    """The ``(y, x)`` image a dimage ``part_2`` describes, decoded from ``blob``.

    ``max_bytes`` caps the size of a compressed image once decoded; ``allocate(dtype,
    shape)`` gives the array to decode it into (``None``: a new one).
    """
    dtype, shape = _image_layout(description)
    encoding = description.get("encoding", "<")
    if not isinstance(encoding, str):
        raise MalformedMessageError(f"dimage encoding {encoding!r} is not text")
    if encoding == "<":
        if len(blob) != shape[0] * shape[1] * dtype.itemsize:
            raise MalformedMessageError(
                f"uncompressed image of {len(blob)} bytes does not hold {dtype} {shape}"
            )
        return np.frombuffer(blob, dtype).reshape(shape)
    compressed = encoding == "lz4<" or encoding.startswith("bs") and encoding.endswith("-lz4<")
    if not compressed:
        raise MalformedMessageError(f"unknown dimage encoding {encoding!r}")
    out = None if allocate is None else allocate(dtype, shape)
    if encoding == "lz4<":
        return codecs.decode_lz4_block(blob, dtype, shape, max_bytes=max_bytes, out=out)
    return codecs.decode_bslz4(blob, dtype, shape, max_bytes=max_bytes, out=out)


def encode_image(image: np.ndarray, encoding: str | None = None) -> tuple[dict, bytes]:
    """``part_2`` and blob for ``image`` (numpy order) in ``encoding`` (default ``bsN-lz4<``)."""
    image = np.ascontiguousarray(image, dtype=image.dtype.newbyteorder("<"))
    if image.ndim != 2:
        raise ValueError(f"a dimage is two-dimensional, got shape {image.shape}")
    encoding = encoding or f"bs{8 * image.dtype.itemsize}-lz4<"
    if encoding == "<":
        blob = image.tobytes()
    elif encoding == "lz4<":
        blob = codecs.encode_lz4_block(image)
    elif encoding.startswith("bs") and encoding.endswith("-lz4<"):
        blob = codecs.encode_bslz4(image)
    else:
        raise ValueError(f"unknown dimage encoding {encoding!r}")
    y, x = image.shape
    description = {
        "htype": "dimage_d-1.0",
        "shape": [x, y],
        "type": image.dtype.name,
        "encoding": encoding,
        "size": len(blob),
    }
    return description, blob


class Handler:
    """dimage-1.0 receive and send."""

    @staticmethod
    def receive(receiver: Any) -> dict:
        header = require_dict(receiver.next(as_json=True), "dimage-1.0 header")
        parts = receiver.rest()
        if len(parts) < 2:
            raise MalformedMessageError(f"dimage-1.0 has {len(parts) + 1} parts, expected 3 to 5")
        message = {
            "header": header,
            "part_2": require_dict(decode_json(parts[0], "part_2"), "dimage-1.0 part_2"),
            "part_3_raw": parts[1],
            "part_4": decode_json(parts[2], "part_4") if len(parts) > 2 else None,
        }
        if len(parts) > 3:
            message["appendix"] = decode_appendix(parts[3])
        if receiver.decode:
            # The parts still arrive, as in 1.0, when the image fails to decode.
            payloads = PayloadDecoding(receiver)
            description = message["part_2"]
            payloads.decode_into(
                message,
                "image",
                "image",
                decode_image,
                description,
                parts[1],
                compressed=description.get("encoding", "<") != "<",
                pooled=True,
            )
            payloads.record(message)
        return message

    @staticmethod
    def send(message: dict, send: Callable[..., Any], block: bool = True) -> None:
        """Send the four parts (five with ``appendix``), encoding ``image`` if there is no blob."""
        description = message.get("part_2") or {}
        blob = message.get("part_3_raw")
        if blob is None and message.get("image") is not None:
            encoded, blob = encode_image(message["image"], description.get("encoding"))
            description = {**description, **encoded}
        parts = [
            encode_json(message["header"]),
            encode_json(description),
            payload(blob),
            encode_json(message.get("part_4") or {}),
        ]
        if "appendix" in message:
            parts.append(encode_appendix(message["appendix"]))
        send_parts(parts, send, block)
