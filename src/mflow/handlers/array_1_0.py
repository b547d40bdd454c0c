"""array-1.0: a JSON header (``type``, ``shape`` in numpy order) and one raw array per part.

``receive`` returns ``{"header": header, "data": [array_or_None, ...]}``: each non-empty
part becomes a numpy array of ``type`` and ``shape`` (a view on the received ZeroMQ
frame, never a copy), each empty part ``None``.

Mirrored in C: ``mflow/_speedups.c`` (``decode_array``) decodes the messages whose layout
``_layout`` gives a fixed byte size, as ``Handler.receive`` does, while this handler is the
registered one; every other case (an error, a -1 in the shape) comes here. A change here is
a change there; ``tests/test_fastpath.py`` compares both paths.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import MalformedMessageError
from ._parts import dtype_of, encode_json, payload, require_dict, send_parts

__all__ = ["Handler", "get_array"]

_LAYOUTS: dict[tuple, tuple[np.dtype, tuple[int, ...], int | None]] = {}


def _layout(type_name: Any, shape: Any) -> tuple[np.dtype, tuple[int, ...], int | None]:
    """dtype, shape tuple and byte size an array-1.0 header declares (cached).

    As with numpy (and 1.0), ``shape`` may be a single size, and one size may be -1
    ("whatever fits"); the byte size is then ``None``.
    """
    try:
        key = (type_name, (shape,) if type(shape) is int else tuple(shape))
    except TypeError:
        raise MalformedMessageError(f"shape {shape!r} is not a list") from None
    layout = _LAYOUTS.get(key)
    if layout is None:
        dims = key[1]
        if not all(type(n) is int and n >= -1 for n in dims) or dims.count(-1) > 1:
            raise MalformedMessageError(f"shape {shape!r} is not a list of sizes")
        dtype = dtype_of(type_name)
        nbytes = None if -1 in dims else int(np.prod(dims, dtype=object)) * dtype.itemsize
        layout = (dtype, dims, nbytes)
        if len(_LAYOUTS) < 1024:  # bounded: headers come from the network
            _LAYOUTS[key] = layout
    return layout


def _array(part: Any, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """A part whose shape has a -1 in it, checked by numpy."""
    try:
        return np.frombuffer(part, dtype).reshape(shape)
    except ValueError as error:
        raise MalformedMessageError(f"array-1.0 part of {len(part)} bytes: {error}") from None


def get_array(raw_data: Any, dtype: Any, shape: Any) -> np.ndarray:
    """``raw_data`` as an array of ``dtype`` and ``shape`` (no copy; 1.0 helper)."""
    return np.frombuffer(raw_data, dtype=dtype).reshape(shape)


class Handler:
    """array-1.0 receive and send."""

    @staticmethod
    def receive(receiver: Any) -> dict | None:
        header = require_dict(receiver.next(as_json=True), "array-1.0 header")
        parts = receiver.rest_buffers()
        if not parts:
            return {"header": header, "data": []} if header else None
        try:
            dtype, shape, nbytes = _layout(header["type"], header["shape"])
        except KeyError as missing:
            raise MalformedMessageError(f"array-1.0 header has no {missing}") from None
        data: list[np.ndarray | None] = []
        for part in parts:
            size = len(part)
            if size == 0:
                data.append(None)
            elif nbytes is None:
                data.append(_array(part, dtype, shape))
            elif size != nbytes:
                raise MalformedMessageError(
                    f"array-1.0 part of {size} bytes does not hold {header['type']} "
                    f"{list(shape)} ({nbytes} bytes)"
                )
            elif len(shape) == 1:
                data.append(np.frombuffer(part, dtype))
            else:
                data.append(np.frombuffer(part, dtype).reshape(shape))
        return {"header": header, "data": data}

    @staticmethod
    def send(message: dict, send: Callable[..., Any], block: bool = True) -> None:
        """Send ``{"header": ..., "data": [...]}``.

        ``type``/``shape`` default to the first array's.
        """
        header = message["header"]
        data = message.get("data") or []
        first = next((d for d in data if isinstance(d, np.ndarray)), None)
        if first is not None and ("type" not in header or "shape" not in header):
            header = {"type": first.dtype.str, "shape": list(first.shape), **header}
        send_parts([encode_json(header), *map(payload, data)], send, block)
