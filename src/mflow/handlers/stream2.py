"""DECTRIS Stream V2: one CBOR map per single-part message (EIGER2, PILATUS4, Jungfraujoch).

``receive`` returns the decoded map as plain ``dict``/``list`` values, e.g.
``{"type": "image", "series_id": 1, "image_id": 0, "data": {"threshold_1": <(y, x) array>},
...}`` (``"type"`` is ``"start"``, ``"image"`` or ``"end"``; other types pass through). Tags:

- RFC 8746 typed arrays (tags 64–87, big- and little-endian, float16 included) become 1-D
  numpy arrays of that type and byte order;
- tag 40 (multi-dimensional, row-major) reshapes its array to its dimensions, so an image
  is ``(y, x)``; tag 1040 (column-major) is read in Fortran order;
- tag 56500 (DECTRIS compression, ``["bslz4" | "lz4", modifier, bytes]``) is decompressed
  in place of the byte string it stands for. With decoding switched off
  (``Stream(decode=False)`` / ``receive(decode=False)``), and for algorithms this package
  cannot decompress (e.g. ``bszstd``), it stays a `CompressedData` that carries the
  algorithm, modifier and compressed bytes, plus the dtype and shape of the typed array and
  tag 40 around it; `CompressedData.decode` turns it into the array later;
- tag 0 dates become ``datetime`` (by cbor2), unknown tags stay ``cbor2.CBORTag`` objects.

Messages with and without the self-described CBOR prefix (tag 55799) are accepted. Invalid
CBOR, a top level other than a map with a text ``type``, or a typed array whose length is
not a whole number of elements is a `MalformedMessageError`; a corrupt compressed blob a
`CompressionError`.

``send`` (and `encode_stream2`) writes the map back with the 55799 prefix: numpy arrays
become typed arrays, those with two or more dimensions inside tag 40, compressed (by default
``bslz4``) in a tag 56500; `CompressedData` is sent as it came.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Callable

import cbor2
import numpy as np

from .. import codecs
from ..errors import CompressionError, ConfigurationError, DecodeError, MalformedMessageError
from ._parts import send_parts

__all__ = ["Handler", "CompressedData", "decode_stream2", "encode_stream2"]

SELF_DESCRIBED_CBOR = 55799
MULTI_DIMENSIONAL_ARRAY = 40
MULTI_DIMENSIONAL_ARRAY_COLUMN_MAJOR = 1040
DECTRIS_COMPRESSION = 56500
_ALGORITHMS = ("bslz4", "lz4")


def _typed_array_dtypes() -> dict[int, np.dtype]:
    """RFC 8746 tag → dtype: bit 4 float, bit 3 signed, bit 2 little-endian, bits 0–1 size."""
    dtypes = {}
    for tag in range(64, 88):
        is_float, signed, little, size_code = tag & 16, tag & 8, tag & 4, tag & 3
        size = 2 << size_code if is_float else 1 << size_code
        if size == 16 or (signed and little and size == 1):
            continue  # float128 has no numpy equivalent; tag 76 is reserved
        kind = "f" if is_float else "i" if signed else "u"
        dtypes[tag] = np.dtype(f"{'<' if little else '>'}{kind}{size}")
    return dtypes


def _is_little_endian(dtype: np.dtype) -> bool:
    return dtype.byteorder in "<|" or (dtype.byteorder == "=" and sys.byteorder == "little")


_DTYPE_OF_TAG = _typed_array_dtypes()
_TAG_OF_DTYPE = {(dtype.kind, dtype.itemsize, _is_little_endian(dtype)): tag
                 for tag, dtype in _DTYPE_OF_TAG.items() if tag != 68}  # 68: clamped uint8


@dataclass(frozen=True)
class CompressedData:
    """A DECTRIS compression tag (56500) left undecoded.

    ``data`` holds the compressed bytes of ``algorithm`` (``"bslz4"``: bitshuffle-LZ4 with
    ``modifier`` the element size; ``"lz4"``: LZ4; both in HDF5 framing). ``dtype`` and
    ``shape`` come from the typed array and tag 40 the blob sits in (``None`` outside them).
    """

    algorithm: str
    modifier: int
    data: bytes
    dtype: np.dtype | None = None
    shape: tuple[int, ...] | None = None

    def decode(self) -> Any:
        """The decompressed array (``dtype``, ``shape``), or bytes when there is no dtype."""
        if self.algorithm not in _ALGORITHMS:
            raise CompressionError(f"unsupported Stream V2 compression {self.algorithm!r}")
        element = np.dtype("u1")
        if self.algorithm == "bslz4":
            if self.modifier not in (1, 2, 4, 8):
                raise CompressionError(f"bslz4 element size {self.modifier} is not 1, 2, 4 or 8")
            element = np.dtype(f"u{self.modifier}")
        dtype = self.dtype
        # bitshuffle works on elements of the modifier's size, which is normally the dtype's
        direct = dtype is not None and (self.algorithm == "lz4"
                                        or dtype.itemsize == element.itemsize)
        flat = codecs.decode_stream2(self.algorithm, self.data, dtype if direct else element)
        if dtype is None:
            return flat.tobytes()
        if not direct:
            try:
                flat = np.frombuffer(flat, dtype)
            except ValueError:
                raise CompressionError(f"{flat.nbytes} decompressed bytes are not whole "
                                       f"{dtype} elements") from None
        return flat if self.shape is None else _reshaped(flat, self.shape, "C")


def _reshaped(array: np.ndarray, dims: tuple[int, ...], order: str) -> np.ndarray:
    try:
        return array.reshape(dims, order=order)
    except ValueError:
        raise MalformedMessageError(f"array of {array.size} elements does not fit "
                                    f"dimensions {list(dims)}") from None


def _dimensions(value: Any) -> tuple[int, ...]:
    dims = value[0] if isinstance(value, (list, tuple)) and len(value) == 2 else None
    if not isinstance(dims, (list, tuple)) or not all(type(n) is int and n >= 0 for n in dims):
        raise MalformedMessageError("multi-dimensional array content is not "
                                    "[dimensions, array]")
    return tuple(dims)


def _decode_tag(tag: cbor2.CBORTag, decode: bool) -> Any:
    number, value = tag.tag, tag.value
    dtype = _DTYPE_OF_TAG.get(number)
    if dtype is not None:
        if isinstance(value, CompressedData):
            compressed = replace(value, dtype=dtype)
            if decode and compressed.algorithm in _ALGORITHMS:
                return compressed.decode()
            return compressed
        if not isinstance(value, bytes) or len(value) % dtype.itemsize:
            raise MalformedMessageError(f"typed array tag {number} does not hold whole "
                                        f"{dtype} elements")
        return np.frombuffer(value, dtype)
    if number == MULTI_DIMENSIONAL_ARRAY or number == MULTI_DIMENSIONAL_ARRAY_COLUMN_MAJOR:
        dims = _dimensions(value)
        array = value[1]
        order = "C" if number == MULTI_DIMENSIONAL_ARRAY else "F"
        if isinstance(array, CompressedData) and order == "C":
            return replace(array, shape=dims)
        if isinstance(array, np.ndarray):
            return _reshaped(array, dims, order)
        return tag
    if number == DECTRIS_COMPRESSION:
        if not (isinstance(value, (list, tuple)) and len(value) == 3
                and isinstance(value[0], str) and type(value[1]) is int
                and isinstance(value[2], bytes)):
            raise MalformedMessageError("compression tag content is not "
                                        "[algorithm, modifier, bytes]")
        return CompressedData(*value)
    return tag


def _tag_hook(decode: bool, *args: Any) -> Any:
    # cbor2 6 calls tag_hook(tag, immutable), cbor2 5 tag_hook(decoder, tag).
    tag = args[0] if isinstance(args[0], cbor2.CBORTag) else args[1]
    return _decode_tag(tag, decode)


_HOOKS = {True: partial(_tag_hook, True), False: partial(_tag_hook, False)}


def _thaw(value: Any, decode: bool) -> Any:
    """Plain dicts and lists for cbor2's frozendicts and tuples (cbor2 6 freezes tag content)."""
    if isinstance(value, (dict, Mapping)):
        return {key: _thaw(item, decode) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thaw(item, decode) for item in value]
    if isinstance(value, cbor2.CBORTag):
        return cbor2.CBORTag(value.tag, _thaw(value.value, decode))
    if (decode and isinstance(value, CompressedData) and value.dtype is None
            and value.algorithm in _ALGORITHMS):
        return value.decode()
    return value


def _mflow_error(error: BaseException) -> DecodeError | None:
    """The mflow error behind ``error`` (cbor2 wraps what a tag hook raises), if any."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, DecodeError):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def decode_stream2(frame: Any, decode: bool = True) -> dict:
    """The Stream V2 message in ``frame`` (bytes-like) as described in the module docstring."""
    try:
        message = cbor2.loads(frame, tag_hook=_HOOKS[decode])
    # cbor2's semantic decoders (dates, regular expressions, ...) raise all kinds of errors
    # on hostile input; they all mean "not a valid message".
    except Exception as error:
        found = _mflow_error(error)
        if found is not None:
            raise found.with_traceback(None) from None
        raise MalformedMessageError(f"invalid CBOR: {error}") from None
    if not isinstance(message, Mapping) or not isinstance(message.get("type"), str):
        raise MalformedMessageError("a Stream V2 message is a CBOR map with a text 'type'")
    try:
        return _thaw(message, decode)
    except RecursionError:
        # shared-value references (tags 28/29) can make a value contain itself
        raise MalformedMessageError("CBOR message refers to itself") from None


def _typed_array_tag(dtype: np.dtype) -> int:
    tag = _TAG_OF_DTYPE.get((dtype.kind, dtype.itemsize, _is_little_endian(dtype)))
    if tag is None:
        raise ConfigurationError(f"Stream V2 has no typed array for dtype {dtype}")
    return tag


def _array_tag(array: np.ndarray, compression: str | None) -> Any:
    """A numpy array as a typed array, inside tag 40 when it has two or more dimensions."""
    if array.ndim == 0:
        return array.item()
    tag = _typed_array_tag(array.dtype)
    flat = np.ascontiguousarray(array).reshape(-1)
    if array.ndim == 1 or compression is None:
        content: Any = flat.tobytes()
    elif compression == "bslz4":
        content = cbor2.CBORTag(DECTRIS_COMPRESSION,
                                ["bslz4", flat.itemsize, codecs.encode_bslz4(flat)])
    else:
        content = cbor2.CBORTag(DECTRIS_COMPRESSION, ["lz4", 0, codecs.encode_hdf5_lz4(flat)])
    typed = cbor2.CBORTag(tag, content)
    if array.ndim == 1:
        return typed
    return cbor2.CBORTag(MULTI_DIMENSIONAL_ARRAY, [list(array.shape), typed])


def _compressed_tag(data: CompressedData) -> cbor2.CBORTag:
    tag = cbor2.CBORTag(DECTRIS_COMPRESSION, [data.algorithm, data.modifier, data.data])
    if data.dtype is not None:
        tag = cbor2.CBORTag(_typed_array_tag(data.dtype), tag)
    if data.shape is not None:
        tag = cbor2.CBORTag(MULTI_DIMENSIONAL_ARRAY, [list(data.shape), tag])
    return tag


def _encode_default(compression: str | None, encoder: Any, value: Any) -> None:
    if isinstance(value, np.ndarray):
        encoder.encode(_array_tag(value, compression))
    elif isinstance(value, np.generic):
        encoder.encode(value.item())
    elif isinstance(value, CompressedData):
        encoder.encode(_compressed_tag(value))
    else:
        raise ConfigurationError(f"Stream V2 cannot encode a {type(value).__name__}")


def encode_stream2(message: Mapping, compression: str | None = "bslz4") -> bytes:
    """``message`` as one self-described CBOR map (the inverse of `decode_stream2`).

    ``compression`` (``"bslz4"``, ``"lz4"`` or ``None``) applies to arrays of two or more
    dimensions (images, flatfields, masks); 1-D arrays are sent uncompressed.
    """
    if compression not in (None, *_ALGORITHMS):
        raise ConfigurationError(f"unknown Stream V2 compression {compression!r}")
    try:
        return cbor2.dumps(cbor2.CBORTag(SELF_DESCRIBED_CBOR, message),
                           default=partial(_encode_default, compression))
    except cbor2.CBOREncodeError as error:
        cause = error.__cause__ or error.__context__
        if isinstance(cause, ConfigurationError):
            raise cause.with_traceback(None) from None
        raise ConfigurationError(f"cannot encode Stream V2 message: {error}") from None


class Handler:
    """DECTRIS Stream V2 receive and send (registered under ``dispatch.STREAM2``)."""

    #: Compression `send` applies to arrays of two or more dimensions (``"bslz4"``,
    #: ``"lz4"`` or ``None``); `encode_stream2` takes it per call.
    compression: str | None = "bslz4"

    @staticmethod
    def receive(receiver: Any) -> dict:
        """Decode the receiver's single CBOR part (see the module docstring)."""
        frame = receiver.next()
        if receiver.has_more():
            raise MalformedMessageError(
                f"a Stream V2 message is one part, got {len(receiver.frames)}")
        return decode_stream2(frame, receiver.decode)

    @staticmethod
    def send(message: Mapping, send: Callable[..., Any], block: bool = True) -> None:
        """Send ``message`` as one CBOR part (arrays compressed per `Handler.compression`)."""
        send_parts([encode_stream2(message, Handler.compression)], send, block)
