"""Decoding straight into a caller's array: the C entry points of bitshuffle, lz4 and
dectris-compression.

bitshuffle's and lz4's Python functions always return a new buffer. Their extension modules
also export the C functions behind them (``bshuf_decompress_lz4``, ``LZ4_decompress_safe``),
which write into any memory: called through ctypes (which releases the GIL), they decode
into a given array with no copy and no fresh pages. Where a build does not export them the
functions here are ``None`` and `mflow.codecs` decodes to a new buffer and copies.

dectris-compression (optional: the ``fast`` extra), when installed, gives the fastest
bitshuffle-LZ4 decoder measured here (``compression_decompress_buffer``, 2-3x bitshuffle's
on a 16M image, see ``bench/bench_decode.py``); `mflow.codecs` uses it for large
blobs with a real HDF5 header.
"""

from __future__ import annotations

import ctypes
from typing import Any, Callable, cast

import bitshuffle.ext
import lz4.block._block

__all__ = ["bshuf_decompress_lz4", "lz4_decompress_safe", "dectris_decompress_bslz4"]


def _function(module: Any, name: str, restype: Any, argtypes: list[Any]) -> Callable | None:
    try:
        function = getattr(ctypes.CDLL(cast(str, module.__file__)), name)
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


def _dectris() -> Any:
    try:
        import dectris.compression
    except ImportError:
        return None
    return dectris.compression


_dectris_module = _dectris()
#: ``compression_decompress_buffer(algorithm, destination, capacity, source, source_size,
#: element_size)``: the bytes written, ``SIZE_MAX`` on an error; ``None`` if not installed.
_dectris_decompress = (
    None
    if _dectris_module is None
    else _function(
        _dectris_module,
        "compression_decompress_buffer",
        ctypes.c_size_t,
        [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
        + [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t],
    )
)
_DECTRIS_BSLZ4_HDF5 = 0  # its CompressionAlgorithm for bitshuffle-LZ4 in HDF5 framing


def dectris_decompress_bslz4(
    source: int, size: int, destination: int, capacity: int, element_size: int
) -> int:
    """Decode a bitshuffle-LZ4 blob with its 12-byte HDF5 header at address ``source``
    into ``capacity`` bytes at ``destination``; the bytes written, -1 on an error."""
    written = cast(Callable, _dectris_decompress)(
        _DECTRIS_BSLZ4_HDF5, destination, capacity, source, size, element_size
    )
    return -1 if written == ctypes.c_size_t(-1).value else written


if _dectris_decompress is None:
    dectris_decompress_bslz4 = None  # type: ignore[assignment]
