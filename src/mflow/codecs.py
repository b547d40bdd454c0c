"""Compressed data blobs of detector and bsread streams: decode and encode.

Every decoder takes a bytes-like blob (bytes, bytearray, memoryview, a ZeroMQ frame, a numpy
array) and returns a new, writable numpy array of the requested dtype and shape. The size of
the result is known before decoding (from dtype and shape, or where allowed from the size the
blob declares) and is checked against the blob; anything that does not fit, including a size
above ``MAX_DECODED_BYTES`` or the call's ``max_bytes`` (a lower limit, e.g. what is left of
a message's budget; both give :class:`~mflow.errors.DecodedSizeError`), raises
:class:`~mflow.errors.CompressionError` and nothing else.

Byte layouts ("BE" = big-endian):

LZ4 block -- DECTRIS Stream V1 ``lz4<``
    One raw LZ4 block and nothing else: no frame magic, no size field. The decoded size is
    known only from the image's dtype and shape.

Bitshuffle-LZ4, HDF5 framing -- V1 ``bs8-lz4<``/``bs16-lz4<``/``bs32-lz4<``, V2 ``bslz4``,
bsread ``bitshuffle_lz4``
    12-byte header: u64 BE decoded size in bytes, u32 BE block size in bytes. Then, for
    every block of elements, u32 BE compressed length followed by one LZ4 block of the
    bit-transposed elements. Blocks hold the header's block size (default 8192 bytes); the
    last one is cut down to a multiple of 8 elements, and the remaining ``count % 8``
    elements follow verbatim. Some producers zero the header, some leave it out entirely.

LZ4, HDF5 framing -- V2 ``lz4`` (the HDF5 LZ4 filter's chunk format)
    Same 12-byte header, then per block u32 BE compressed length and an LZ4 block. A block
    whose stored length equals its decoded length is stored uncompressed.

bsread LZ4 -- bsread ``lz4``
    u32 decoded size in bytes, then one LZ4 block. Implementations disagree on the byte
    order of the size field, so decoding tries the declared order and then the other.

Output: every decoder takes ``out=``, a writable C-contiguous numpy array of the result's
dtype and size (any shape) to decode into instead of a new array; the result is then ``out``
(reshaped, a view on it, when its shape differs). An ``out`` that does not fit raises
:class:`~mflow.errors.ConfigurationError` (a ``ValueError``). Decoding into ``out`` calls the
C functions of bitshuffle and lz4 directly (`mflow._direct`), so the memory is written once
and no page is new; where they cannot be called the result is decoded and copied.

Threads: bitshuffle runs each call on one OpenMP thread by default (best for the small values
of bsread channels and for decoding in several threads at once);
:func:`set_decoder_threads` lets each call use more, e.g. for large images decoded in one
thread.
"""

from __future__ import annotations

import math
import operator
import struct
from collections.abc import Sequence
from typing import Any, Callable, Union, cast

import bitshuffle
import lz4.block
import numpy as np
from numpy.typing import DTypeLike

from . import _direct, _openmp
from ._openmp import set_decoder_threads
from .errors import CompressionError, ConfigurationError, DecodedSizeError

__all__ = [
    "MAX_DECODED_BYTES",
    "decode_lz4_block",
    "encode_lz4_block",
    "decode_bslz4",
    "encode_bslz4",
    "decode_hdf5_lz4",
    "encode_hdf5_lz4",
    "decode_bsread_lz4",
    "encode_bsread_lz4",
    "decode_stream2",
    "decode_bsread",
    "bsread_value_decoder",
    "set_decoder_threads",
]

MAX_DECODED_BYTES = 2 * 1024**3
"""Largest result, in bytes, a decoder accepts; a blob declaring more is rejected unread."""

# Anything with the buffer protocol (bytes, bytearray, memoryview, numpy arrays, zmq frames).
BytesLike = Union[bytes, bytearray, memoryview, np.ndarray]
# An element count or the dimensions of the result.
Shape = Union[int, Sequence[int]]

_HEADER = struct.Struct(">QI")
_U32_BE = struct.Struct(">I")
_BSHUF_TARGET_BLOCK_BYTES = 8192
_HDF5_LZ4_DEFAULT_BLOCK_BYTES = 1 << 30
# One LZ4 input byte yields less than 256 output bytes, so no valid blob expands further.
_MAX_EXPANSION = 256
_BYTEORDERS = {"<": "<", ">": ">", "little": "<", "big": ">"}
_LZ4_ERRORS = (lz4.block.LZ4BlockError, ValueError, OverflowError, MemoryError)
_BITSHUFFLE_ERRORS = (RuntimeError, ValueError, OverflowError, MemoryError)
_INT_MAX = 0x7FFFFFFF
# From this size on a new result is decoded by dectris-compression, when installed (faster
# on images; bsread's small values keep bitshuffle's lower call overhead).
_DECTRIS_MIN_BYTES = 1 << 16


def _byte_view(data, error=CompressionError):
    """Flat, C-contiguous view of the bytes of a bytes-like object."""
    try:
        view = memoryview(data)
        if not view.c_contiguous:
            view = memoryview(view.tobytes())
        if not view.nbytes:  # an empty multi-dimensional view cannot be cast
            return memoryview(b"")
        return view.cast("B")
    except (TypeError, ValueError, NotImplementedError) as exc:
        raise error(f"expected a bytes-like object, got {type(data).__name__}") from exc


def _output(view, dtype, shape, declared=None, max_bytes=None):
    """Checked ``(dtype, shape, nbytes)`` of a decoder's result.

    Without a shape the result is 1-D and its size is ``declared``, the byte count the blob
    itself states (``None`` when it states none). ``max_bytes`` lowers the size limit.
    """
    try:
        dt = np.dtype(dtype)
        if dt.hasobject or dt.itemsize == 0:
            raise TypeError(f"cannot decode into dtype {dt}")
        if shape is None:
            if declared is None:
                raise ValueError("no shape given and the blob declares no size")
            if declared % dt.itemsize:
                raise ValueError(f"declared size of {declared} bytes is not a whole number of {dt}")
            shape = declared // dt.itemsize
        if isinstance(shape, (int, np.integer)):
            shape = (operator.index(shape),)
        else:
            shape = tuple(operator.index(dim) for dim in shape)
        if any(dim < 0 for dim in shape):
            raise ValueError("negative dimension")
    except (TypeError, ValueError) as exc:
        raise CompressionError(f"cannot decode to dtype {dtype!r}, shape {shape!r}: {exc}") from exc
    nbytes = math.prod(shape) * dt.itemsize
    limit = MAX_DECODED_BYTES if max_bytes is None else min(max_bytes, MAX_DECODED_BYTES)
    if nbytes > limit:
        raise DecodedSizeError(
            f"declared size of {nbytes} bytes exceeds the limit of {limit} bytes"
        )
    if nbytes and not view:
        raise CompressionError(f"empty blob, expected {nbytes} bytes of data")
    if nbytes > _MAX_EXPANSION * len(view):
        raise CompressionError(f"a {len(view)}-byte blob cannot hold {nbytes} bytes of data")
    return dt, shape, nbytes


def _into(out, dt, shape, nbytes):
    """``out`` as the decoder's result (shape ``shape``), checked to fit; ``None`` stays."""
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise ConfigurationError(f"out must be a numpy array, not {type(out).__name__}")
    if out.dtype != dt:
        raise ConfigurationError(f"out has dtype {out.dtype}, the result is {dt}")
    if out.nbytes != nbytes:
        raise ConfigurationError(
            f"out holds {out.nbytes} bytes ({out.shape}), the result {nbytes} ({shape})"
        )
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ConfigurationError("out must be a writable C-contiguous array")
    return out if out.shape == shape else out.reshape(shape)


def _address(view, offset=0):
    """The memory address of byte ``offset`` of a (possibly read-only) byte view."""
    return np.frombuffer(view, np.uint8).ctypes.data + offset


def _lz4_block_into(chunk, target, start, size):
    """Decode one LZ4 block that must yield exactly ``size`` bytes into ``target[start:]``.

    ``target`` is a flat uint8 array.
    """
    decompress = _direct.lz4_decompress_safe
    if decompress is None or len(chunk) > _INT_MAX or size > _INT_MAX:
        target[start : start + size] = np.frombuffer(_lz4_block(chunk, size), np.uint8)
        return
    if not len(chunk):
        written = 0 if size == 0 else -1
    else:
        written = decompress(_address(chunk), target.ctypes.data + start, len(chunk), size)
    if written < 0:
        raise CompressionError("corrupt LZ4 block")
    if written != size:
        raise CompressionError(f"LZ4 block decodes to {written} bytes, expected {size}")


def _lz4_block(chunk, size):
    """Decode one LZ4 block that must yield exactly ``size`` bytes; a writable bytearray."""
    try:
        data = lz4.block.decompress(chunk, uncompressed_size=size, return_bytearray=True)
    except _LZ4_ERRORS as exc:
        raise CompressionError(f"corrupt LZ4 block: {exc}") from exc
    if len(data) != size:
        raise CompressionError(f"LZ4 block decodes to {len(data)} bytes, expected {size}")
    return data


def _lz4_compress(view):
    return lz4.block.compress(view, mode="default", store_size=False)


def decode_lz4_block(
    blob: BytesLike,
    dtype: DTypeLike,
    shape: Shape,
    *,
    max_bytes: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Decode a plain LZ4 block (DECTRIS Stream V1 ``lz4<``) into an array of dtype and shape.

    ``shape`` is an element count or a tuple; the block must decode to exactly that size.
    """
    view = _byte_view(blob)
    dt, shape, nbytes = _output(view, dtype, shape, max_bytes=max_bytes)
    result = _into(out, dt, shape, nbytes)
    if result is None:
        return np.frombuffer(_lz4_block(view, nbytes), dt).reshape(shape)
    _lz4_block_into(view, result.reshape(-1).view(np.uint8), 0, nbytes)
    return result


def encode_lz4_block(data: BytesLike) -> bytes:
    """Compress the bytes of ``data`` into one plain LZ4 block (Stream V1 ``lz4<``)."""
    return _lz4_compress(_byte_view(data, ConfigurationError))


def _default_block_elements(itemsize):
    block = _BSHUF_TARGET_BLOCK_BYTES // itemsize // 8 * 8
    return max(block, 128)


def _block_layout(block_bytes, nbytes, itemsize):
    """``(block elements, length-prefixed blocks, raw tail bytes)`` of bitshuffle-LZ4 data of
    ``nbytes`` in blocks of ``block_bytes`` (a header's; 0: the default)."""
    if block_bytes % itemsize:
        raise CompressionError(
            f"block size of {block_bytes} bytes is not a whole number of {itemsize}-byte elements"
        )
    block = block_bytes // itemsize or _default_block_elements(itemsize)
    if block % 8:
        raise CompressionError(f"block size of {block} elements is not a multiple of 8")
    elements = nbytes // itemsize
    # A block longer than the data gives the same layout as one just long enough, and the
    # library takes the block size as a C int.
    block = min(block, max(8, elements - elements % 8))
    full, rest = divmod(elements, block)
    return block, full + (rest >= 8), elements % 8 * itemsize


def _blocks_end(view, offset, blocks):
    """Where ``blocks`` length-prefixed blocks starting at ``offset`` end."""
    unpack = _U32_BE.unpack_from
    pos = offset
    try:
        for _ in range(blocks):
            pos += 4 + unpack(view, pos)[0]
    except struct.error:
        raise CompressionError(f"truncated: a block length at byte {pos} is missing") from None
    return pos


def _bitshuffle_block(view, offset, block_bytes, nbytes, itemsize):
    """Block size in elements for decoding the blocks that start at ``offset``.

    Checks first that the length-prefixed blocks plus the raw tail fill the blob exactly:
    the bitshuffle library follows the length fields without bounds checks.
    """
    block, blocks, tail = _block_layout(block_bytes, nbytes, itemsize)
    end = len(view) - tail
    pos = _blocks_end(view, offset, blocks)
    if pos != end:
        raise CompressionError(
            f"blocks and raw tail take {pos - offset + len(view) - end} bytes, "
            f"the blob has {len(view) - offset} after byte {offset}"
        )
    return block


def decode_bslz4(
    blob: BytesLike,
    dtype: DTypeLike,
    shape: Shape | None = None,
    *,
    max_bytes: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Decode bitshuffle-LZ4 in HDF5 framing (V1 ``bs*-lz4<``, V2 ``bslz4``, bsread).

    The element size is ``dtype``'s. The 12-byte header is used when its size field equals
    the expected byte count; a zeroed header is skipped and a missing one tolerated (both
    with the default block size). Without ``shape`` the result is 1-D, sized by the header.
    """
    view = _byte_view(blob)
    declared, block_bytes = _HEADER.unpack_from(view) if len(view) >= _HEADER.size else (None, 0)
    dt, shape, nbytes = _output(view, dtype, shape, declared, max_bytes)
    result = _into(out, dt, shape, nbytes)
    if (
        declared == nbytes
        and nbytes
        and block_bytes
        and _direct.dectris_decompress_bslz4 is not None
        and (result is not None or nbytes >= _DECTRIS_MIN_BYTES)
    ):
        # dectris-compression checks every length against the blob itself; what it refuses
        # is looked at again below (another framing, or the precise error).
        target = np.empty(shape, dt) if result is None else result
        written = _direct.dectris_decompress_bslz4(
            _address(view), len(view), target.ctypes.data, nbytes, dt.itemsize
        )
        if written == nbytes:
            return target
    framings = [(_HEADER.size, block_bytes)] if declared == nbytes else []
    if declared == 0:
        framings.append((_HEADER.size, 0))
    framings.append((0, 0))
    first_error = None
    for offset, block_bytes in framings:
        try:
            block = _bitshuffle_block(view, offset, block_bytes, nbytes, dt.itemsize)
            break
        except CompressionError as exc:
            first_error = first_error or exc
    else:
        stated = f" (header states {declared})" if declared not in (None, 0, nbytes) else ""
        raise CompressionError(
            f"not a bitshuffle-LZ4 blob of {nbytes} bytes{stated}: {first_error}"
        ) from first_error
    if nbytes == 0:
        return np.empty(shape, dt) if result is None else result
    body = np.frombuffer(view, np.uint8, offset=offset)
    _openmp.apply()
    if result is not None and _direct.bshuf_decompress_lz4 is not None:
        used = _direct.bshuf_decompress_lz4(
            body.ctypes.data, result.ctypes.data, nbytes // dt.itemsize, dt.itemsize, block
        )
        if used != body.size:
            raise CompressionError(f"corrupt bitshuffle-LZ4 data (error code {used})")
        return result
    try:
        decoded = bitshuffle.decompress_lz4(body, shape, dt, block)
    except _BITSHUFFLE_ERRORS as exc:
        # bitshuffle's error carries the C function's code last, as the direct call gives it
        code = exc.args[-1] if exc.args and type(exc.args[-1]) is int else exc
        raise CompressionError(f"corrupt bitshuffle-LZ4 data (error code {code})") from exc
    if result is None:
        return decoded
    np.copyto(result, decoded)
    return result


def encode_bslz4(
    array_or_bytes: BytesLike, dtype: DTypeLike | None = None, block_size: int = 0
) -> bytes:
    """Bitshuffle-LZ4 compress into HDF5 framing, 12-byte header included.

    The elements are those of a numpy array, or the bytes of ``array_or_bytes`` read as
    ``dtype`` (``uint8`` if neither gives one). ``block_size`` is in elements, a multiple of
    8; 0 picks the default (8192 bytes' worth). The result equals an HDF5 chunk written by
    the bitshuffle filter with LZ4.
    """
    if dtype is None and isinstance(array_or_bytes, np.ndarray):
        elements = np.ascontiguousarray(array_or_bytes).reshape(-1)
    else:
        dt = np.dtype(np.uint8 if dtype is None else dtype)
        view = _byte_view(array_or_bytes, ConfigurationError)
        if len(view) % dt.itemsize:
            raise ConfigurationError(f"{len(view)} bytes are not a whole number of {dt}")
        elements = np.frombuffer(view, dt)
    block = block_size or _default_block_elements(elements.itemsize)
    if block < 0 or block % 8 or block * elements.itemsize > 0x7FFFFFFF:
        raise ConfigurationError(f"invalid bitshuffle block size: {block_size} elements")
    header = _HEADER.pack(elements.nbytes, block * elements.itemsize)
    if elements.size == 0:
        return header
    _openmp.apply()
    return b"".join((header, bitshuffle.compress_lz4(elements, block)))


def decode_hdf5_lz4(
    blob: BytesLike,
    dtype: DTypeLike,
    shape: Shape | None = None,
    *,
    max_bytes: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Decode LZ4 in HDF5 framing (DECTRIS Stream V2 ``lz4``, not V1 ``lz4<``).

    The header's size must equal the expected byte count; without ``shape`` the result is
    1-D, sized by the header.
    """
    view = _byte_view(blob)
    if len(view) < _HEADER.size:
        raise CompressionError(f"{len(view)}-byte blob is shorter than the 12-byte header")
    declared, block = _HEADER.unpack_from(view)
    dt, shape, nbytes = _output(view, dtype, shape, declared, max_bytes)
    if declared != nbytes:
        raise CompressionError(f"header states {declared} bytes, expected {nbytes}")
    if nbytes and not block:
        raise CompressionError("header states a block size of 0")
    result = _into(out, dt, shape, nbytes)
    if result is None:
        result = np.empty(shape, dt)
    flat = result.reshape(-1).view(np.uint8)
    pos = _HEADER.size
    for start in range(0, nbytes, block or 1):
        size = min(block, nbytes - start)
        if pos + 4 > len(view):
            raise CompressionError(f"truncated: the block length at byte {pos} is missing")
        stop = pos + 4 + _U32_BE.unpack_from(view, pos)[0]
        if stop > len(view):
            raise CompressionError(f"truncated: the block at byte {pos} ends after the blob")
        chunk = view[pos + 4 : stop]
        if len(chunk) == size:
            flat[start : start + size] = chunk
        else:
            _lz4_block_into(chunk, flat, start, size)
        pos = stop
    if pos != len(view):
        raise CompressionError(f"{len(view) - pos} unexpected bytes after the last block")
    return result


def encode_hdf5_lz4(data: BytesLike, block_size: int = 0) -> bytes:
    """LZ4 compress the bytes of ``data`` into HDF5 framing (DECTRIS Stream V2 ``lz4``).

    ``block_size`` is in bytes; 0 means one block for everything up to 1 GiB, as the HDF5
    LZ4 filter does. Blocks that do not shrink are stored uncompressed.
    """
    view = _byte_view(data, ConfigurationError)
    if block_size < 0 or block_size > 0xFFFFFFFF:
        raise ConfigurationError(f"invalid LZ4 block size: {block_size} bytes")
    block = min(block_size or _HDF5_LZ4_DEFAULT_BLOCK_BYTES, len(view))
    parts = [_HEADER.pack(len(view), block)]
    for start in range(0, len(view), block or 1):
        raw = view[start : start + block]
        packed = _lz4_compress(raw)
        stored = raw if len(packed) >= len(raw) else packed
        parts += (_U32_BE.pack(len(stored)), stored)
    return b"".join(parts)


def _byteorder(byteorder):
    try:
        return _BYTEORDERS[byteorder]
    except (KeyError, TypeError):
        raise ConfigurationError(
            f"byteorder must be '<', '>', 'little' or 'big', not {byteorder!r}"
        ) from None


def decode_bsread_lz4(
    blob: BytesLike,
    dtype: DTypeLike,
    shape: Shape | None = None,
    byteorder: str = "<",
    *,
    max_bytes: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Decode bsread LZ4: a u32 decoded-size prefix, then one LZ4 block.

    The prefix is read in ``byteorder`` (``'<'``/``'little'`` or ``'>'``/``'big'``) first and
    in the other order if that size does not fit. With ``shape`` the size must equal the
    expected byte count; without, the result is 1-D and sized by the prefix.
    """
    order = _byteorder(byteorder)
    view = _byte_view(blob)
    if len(view) < 4:
        raise CompressionError(f"{len(view)}-byte blob is shorter than its 4-byte size prefix")
    other = ">" if order == "<" else "<"
    sizes = dict.fromkeys(struct.unpack_from(fmt, view)[0] for fmt in (order + "I", other + "I"))
    body = view[4:]
    first_error: CompressionError | None = None
    for size in sizes:
        try:
            dt, out_shape, nbytes = _output(body, dtype, shape, size, max_bytes)
            if size != nbytes:
                raise CompressionError(f"size prefix states {size} bytes, expected {nbytes}")
            result = _into(out, dt, out_shape, nbytes)
            if result is None:
                return np.frombuffer(_lz4_block(body, nbytes), dt).reshape(out_shape)
            _lz4_block_into(body, result.reshape(-1).view(np.uint8), 0, nbytes)
            return result
        except CompressionError as exc:
            first_error = first_error or exc
    raise cast(CompressionError, first_error)  # sizes is never empty: the loop set it


def encode_bsread_lz4(data: BytesLike, byteorder: str = "<") -> bytes:
    """LZ4 compress the bytes of ``data`` behind a u32 size prefix in ``byteorder`` (bsread)."""
    order = _byteorder(byteorder)
    view = _byte_view(data, ConfigurationError)
    if len(view) > 0xFFFFFFFF:
        raise ConfigurationError(f"{len(view)} bytes do not fit the 4-byte size prefix")
    return b"".join((struct.pack(order + "I", len(view)), _lz4_compress(view)))


def decode_stream2(
    algorithm: str,
    blob: BytesLike,
    dtype: DTypeLike,
    shape: Shape | None = None,
    *,
    max_bytes: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Decode the data of a DECTRIS Stream V2 compression tag by its algorithm name.

    ``"bslz4"`` is bitshuffle-LZ4 and ``"lz4"`` LZ4, both in HDF5 framing.
    """
    if algorithm == "bslz4":
        return decode_bslz4(blob, dtype, shape, max_bytes=max_bytes, out=out)
    if algorithm == "lz4":
        return decode_hdf5_lz4(blob, dtype, shape, max_bytes=max_bytes, out=out)
    raise CompressionError(f"unsupported Stream V2 compression {algorithm!r}")


def decode_bsread(
    compression: str,
    blob: BytesLike,
    dtype: DTypeLike,
    shape: Shape | None = None,
    byteorder: str = "<",
    *,
    max_bytes: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Decode a bsread value by its channel's ``compression`` name.

    ``"bitshuffle_lz4"`` (whose header is big-endian whatever the channel's byte order) or
    ``"lz4"`` (size-prefixed, see :func:`decode_bsread_lz4`).
    """
    if compression == "bitshuffle_lz4":
        return decode_bslz4(blob, dtype, shape, max_bytes=max_bytes, out=out)
    if compression == "lz4":
        return decode_bsread_lz4(blob, dtype, shape, byteorder, max_bytes=max_bytes, out=out)
    raise CompressionError(f"unsupported bsread compression {compression!r}")


def bsread_value_decoder(
    compression: str, dtype: DTypeLike, count: int, byteorder: str = "<"
) -> Callable[[BytesLike, int, int], bool] | None:
    """A decoder for the common case of one channel's values, one C call per value.

    The values are bsread ``compression`` blobs of ``count`` elements of ``dtype``. The
    decoder, ``decode(blob, destination, max_bytes)``, checks what the framing of the
    value would make `decode_bsread` check, decodes the blob into the memory at address
    ``destination`` (room for ``count`` elements) and returns True; for anything else (a
    corrupt blob, a rarer framing, a size over ``max_bytes``) it returns False, and
    `decode_bsread` gives the result or the precise error (``destination`` may then have
    been written to). ``None`` when there is no such shortcut (the C functions missing, no
    elements, an unsupported compression).
    """
    dt = np.dtype(dtype)
    nbytes = count * dt.itemsize
    if not 0 < nbytes <= _INT_MAX or dt.hasobject:
        return None
    if compression == "bitshuffle_lz4":
        return _bslz4_value_decoder(nbytes, dt.itemsize)
    if compression == "lz4":
        return _bsread_lz4_value_decoder(nbytes, _byteorder(byteorder))
    return None


def _address_of(blob):
    """The address of a contiguous bytes-like object's first byte; None if it has none."""
    try:
        return np.frombuffer(blob, np.uint8).ctypes.data
    except (TypeError, ValueError):
        return None


def _bslz4_value_decoder(nbytes, itemsize):
    # The framing walk as decode_bslz4 does it (so that a blob is accepted when that accepts
    # it), then dectris-compression's decoder when installed: 2-3x bitshuffle's on bsread's
    # small values too, once the call costs the same.
    dectris = _direct.dectris_decompress_bslz4
    bitshuffle_decode = _direct.bshuf_decompress_lz4
    if dectris is None and bitshuffle_decode is None:
        return None
    header = _HEADER.unpack_from
    elements = nbytes // itemsize
    minimum = max(_HEADER.size, -(-nbytes // _MAX_EXPANSION))
    layouts: dict[int, tuple[int, int, int]] = {}  # by the header's block size

    def decode(blob: Any, destination: int, max_bytes: int) -> bool:
        size = len(blob)
        if nbytes > max_bytes or size < minimum:
            return False
        declared, block_bytes = header(blob)
        if declared != nbytes or not block_bytes:
            return False
        layout = layouts.get(block_bytes)
        if layout is None:
            try:
                layout = _block_layout(block_bytes, nbytes, itemsize)
            except CompressionError:
                return False
            if len(layouts) < 4:  # a few block sizes per channel; a hostile stream sends more
                layouts[block_bytes] = layout
        block, blocks, tail = layout
        try:
            if _blocks_end(blob, _HEADER.size, blocks) != size - tail:
                return False
        except CompressionError:
            return False
        source = _address_of(blob)
        if source is None:
            return False
        if dectris is not None:
            return dectris(source, size, destination, nbytes, itemsize) == nbytes
        _openmp.apply()
        used = bitshuffle_decode(source + _HEADER.size, destination, elements, itemsize, block)
        return used == size - _HEADER.size

    return decode


def _bsread_lz4_value_decoder(nbytes, order):
    decompress = _direct.lz4_decompress_safe
    if decompress is None:
        return None
    prefix = struct.Struct(order + "I").unpack_from
    minimum = 4 + -(-nbytes // _MAX_EXPANSION)

    def decode(blob: Any, destination: int, max_bytes: int) -> bool:
        size = len(blob)
        if nbytes > max_bytes or size < minimum or size - 4 > _INT_MAX:
            return False
        if prefix(blob)[0] != nbytes:
            return False
        source = _address_of(blob)
        if source is None:
            return False
        return decompress(source + 4, destination, size - 4, nbytes) == nbytes

    return decode
