"""Images as HDF5 chunks: compressed blobs stored as they came, under the matching filter.

A bitshuffle-LZ4 blob in HDF5 framing (V1 ``bs8|16|32-lz4<``, V2 ``bslz4``) *is* a chunk of
the bitshuffle filter (32008); a V2 ``lz4`` blob is a chunk of the LZ4 filter (32004). Both
are written with direct chunk write, nothing is decompressed. Two repairs are made without
recompressing: a bitshuffle blob whose 12-byte header is zeroed or missing (simulators do
that) gets a correct header, and a V1 ``lz4<`` blob (one plain LZ4 block) is framed for the
LZ4 filter (u64 BE size, u32 BE block size, u32 BE block length, then the block).
Uncompressed images are compressed with bitshuffle-LZ4 unless compression is ``none``.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import codecs
from ..errors import CompressionError, MalformedMessageError

__all__ = [
    "BITSHUFFLE",
    "COMPRESSIONS",
    "LZ4",
    "NONE",
    "Chunk",
    "array_chunk",
    "bslz4_chunk",
    "converted",
    "dimage_chunk",
    "filter_options",
    "lz4_block_chunk",
    "stream2_chunk",
]

BITSHUFFLE = "bslz4"
LZ4 = "lz4"
NONE = "none"
#: What ``compression`` may be for images that arrive uncompressed.
COMPRESSIONS = (BITSHUFFLE, NONE)

_HEADER = struct.Struct(">QI")
_U32_BE = struct.Struct(">I")
_BITSHUFFLE_BLOCK_BYTES = 8192


@dataclass(frozen=True)
class Chunk:
    """One image's bytes as an HDF5 chunk of ``filter`` (`BITSHUFFLE`, `LZ4` or `NONE`)."""

    filter: str
    data: Any
    dtype: np.dtype
    shape: tuple[int, ...]

    def decode(self) -> np.ndarray:
        """The image (for checks and for converting between filters)."""
        if self.filter == BITSHUFFLE:
            return codecs.decode_bslz4(self.data, self.dtype, self.shape)
        if self.filter == LZ4:
            return codecs.decode_hdf5_lz4(self.data, self.dtype, self.shape)
        return np.frombuffer(self.data, self.dtype).reshape(self.shape)


def filter_options(name: str) -> Mapping[str, Any]:
    """The ``create_dataset`` keywords of the filter ``name`` (hdf5plugin's parameters)."""
    from ._deps import hdf5plugin

    if name == BITSHUFFLE:
        return hdf5plugin.Bitshuffle(nelems=0, cname="lz4")
    if name == LZ4:
        return hdf5plugin.LZ4(nbytes=0)
    return {}


def _default_block_bytes(itemsize: int) -> int:
    return max(_BITSHUFFLE_BLOCK_BYTES // itemsize // 8 * 8, 128) * itemsize


def bslz4_chunk(blob: Any, nbytes: int, itemsize: int) -> Any:
    """``blob`` with a correct bitshuffle header for ``nbytes`` decoded bytes.

    A header stating ``nbytes`` is kept (the blob is returned as it is); a zeroed header is
    replaced, a missing one put in front (both with the default block size, which is what
    such producers use).
    """
    view = memoryview(blob).cast("B")
    header = _HEADER.pack(nbytes, _default_block_bytes(itemsize))
    if len(view) >= _HEADER.size:
        declared = _HEADER.unpack_from(view)[0]
        if declared == nbytes:
            return blob
        if declared == 0 and not any(view[: _HEADER.size]):
            return header + view[_HEADER.size :]
    return header + view


def lz4_block_chunk(blob: Any, nbytes: int) -> bytes:
    """A V1 ``lz4<`` blob (one plain LZ4 block of ``nbytes``) framed for the LZ4 filter."""
    if len(blob) == nbytes:
        # The filter reads a block as long as its data as stored raw: store it so.
        raw = codecs.decode_lz4_block(blob, np.uint8, nbytes)
        return b"".join((_HEADER.pack(nbytes, nbytes), _U32_BE.pack(nbytes), raw.tobytes()))
    return b"".join((_HEADER.pack(nbytes, nbytes), _U32_BE.pack(len(blob)), blob))


def array_chunk(array: np.ndarray, compression: str) -> Chunk:
    """An uncompressed image as a chunk: bitshuffle-LZ4 compressed, or raw for ``none``."""
    array = np.ascontiguousarray(array, array.dtype.newbyteorder("<"))
    if compression == BITSHUFFLE:
        data: Any = codecs.encode_bslz4(array)
    else:
        data = array.reshape(-1).view(np.uint8)
    return Chunk(BITSHUFFLE if compression == BITSHUFFLE else NONE, data, array.dtype, array.shape)


def dimage_chunk(description: Mapping[str, Any], blob: Any, compression: str) -> Chunk:
    """The chunk of a V1 image from its ``part_2`` (shape [x, y], type, encoding)."""
    try:
        x, y = description["shape"]
        dtype = np.dtype(str(description["type"])).newbyteorder("<")
    except (KeyError, TypeError, ValueError):
        raise MalformedMessageError(
            f"dimage part_2 {dict(description)!r} has no usable shape and type"
        ) from None
    shape = (int(y), int(x))
    nbytes = shape[0] * shape[1] * dtype.itemsize
    encoding = description.get("encoding", "<")
    if encoding == "<":
        if len(blob) != nbytes:
            raise MalformedMessageError(
                f"uncompressed image of {len(blob)} bytes does not hold {dtype} {shape}"
            )
        return array_chunk(np.frombuffer(blob, dtype).reshape(shape), compression)
    if encoding == "lz4<":
        return Chunk(LZ4, lz4_block_chunk(blob, nbytes), dtype, shape)
    if isinstance(encoding, str) and encoding.startswith("bs") and encoding.endswith("-lz4<"):
        return Chunk(BITSHUFFLE, bslz4_chunk(blob, nbytes, dtype.itemsize), dtype, shape)
    raise MalformedMessageError(f"unknown dimage encoding {encoding!r}")


def stream2_chunk(value: Any, compression: str) -> Chunk:
    """The chunk of one V2 channel image: an undecoded compressed image or an array."""
    from ..handlers.stream2 import CompressedData

    if isinstance(value, np.ndarray):
        if value.ndim != 2:
            raise MalformedMessageError(f"a Stream V2 image has two dimensions, not {value.shape}")
        return array_chunk(value, compression)
    if not isinstance(value, CompressedData) or value.dtype is None or value.shape is None:
        raise MalformedMessageError("a Stream V2 image is a typed array in a tag 40")
    if len(value.shape) != 2:
        raise MalformedMessageError(f"a Stream V2 image has two dimensions, not {value.shape}")
    dtype = value.dtype.newbyteorder("<")
    nbytes = int(np.prod(value.shape)) * dtype.itemsize
    if value.algorithm == "bslz4":
        if value.modifier != dtype.itemsize:
            raise CompressionError(
                f"bslz4 element size {value.modifier} is not the image's {dtype.itemsize}"
            )
        return Chunk(
            BITSHUFFLE, bslz4_chunk(value.data, nbytes, dtype.itemsize), dtype, value.shape
        )
    if value.algorithm == "lz4":
        return Chunk(LZ4, value.data, dtype, value.shape)
    return array_chunk(value.decode(), compression)


def converted(chunk: Chunk, filter: str) -> Chunk:
    """``chunk`` as a chunk of ``filter`` (decoded and encoded again; the rare path, for an
    image whose compression differs from the first one of its data file)."""
    if chunk.filter == filter:
        return chunk
    image = chunk.decode()
    if filter == LZ4:
        return Chunk(LZ4, codecs.encode_hdf5_lz4(image), chunk.dtype, chunk.shape)
    return array_chunk(image, filter)
