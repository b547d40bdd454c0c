"""Decoding straight into a caller's array: the C entry points of bitshuffle and lz4.

bitshuffle's and lz4's Python functions always return a new buffer. Their extension modules
also export the C functions behind them (``bshuf_decompress_lz4``, ``LZ4_decompress_safe``),
which write into any memory: called through ctypes (which releases the GIL), they decode
into a given array with no copy and no fresh pages. Where a build does not export them the
functions here are ``None`` and `mflow.codecs` decodes to a new buffer and copies.
"""

from __future__ import annotations

import ctypes
from typing import Any, Callable

import bitshuffle.ext
import lz4.block._block

__all__ = ["bshuf_decompress_lz4", "lz4_decompress_safe"]


def _function(module: Any, name: str, restype: Any, argtypes: list[Any]) -> Callable | None:
    try:
        function = getattr(ctypes.CDLL(module.__file__), name)
    except (OSError, AttributeError):
        return None
    function.restype = restype
    function.argtypes = argtypes
    return function


#: ``bshuf_decompress_lz4(in, out, elements, element_size, block_elements)``: the bytes of
#: ``in`` consumed, negative on an error.
bshuf_decompress_lz4 = _function(
    bitshuffle.ext,
    "bshuf_decompress_lz4",
    ctypes.c_int64,
    [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_size_t],
)

#: ``LZ4_decompress_safe(source, destination, source_size, capacity)``: the bytes written,
#: negative for a corrupt block (it never reads or writes out of bounds).
lz4_decompress_safe = _function(
    lz4.block._block,
    "LZ4_decompress_safe",
    ctypes.c_int,
    [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int],
)
