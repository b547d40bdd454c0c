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

Typed arrays and compressed blobs are views on the received frame, never copies: the
definite-length CBOR that detectors send is walked directly, and cbor2 decodes the rest
(dates, and whole messages using indefinite lengths or value sharing). Values shared by
reference (tags 28/29) stay shared, so decoding is linear in the message size; a value
that contains itself, or nesting deeper than `MAX_DEPTH`, is refused.

Messages with and without the self-described CBOR prefix (tag 55799) are accepted. Invalid
CBOR, a top level other than a map with a text ``type``, or a typed array whose length is
not a whole number of elements is a `MalformedMessageError`. A compressed blob that fails
to decompress (corrupt, or over the stream's decoded-bytes budget) is ``None``, named in
``"payload_errors"`` by its path (e.g. ``"data.threshold_1"``), counted, and raised on a
strict stream (see `mflow.handlers._payload`); `decode_stream2` without ``payloads`` raises
its `CompressionError`. A start message's ``image_size_x``/``image_size_y``/``image_dtype``
and ``channels`` set the stream's default budget for the images that follow.

``send`` (and `encode_stream2`) writes the map back with the 55799 prefix: numpy arrays
become typed arrays, those with two or more dimensions inside tag 40, compressed (by default
``bslz4``) in a tag 56500; `CompressedData` is sent as it came.
"""

from __future__ import annotations

import math
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Literal

import cbor2
import numpy as np

from .. import codecs
from ..errors import CompressionError, ConfigurationError, DecodeError, MalformedMessageError
from ._parts import send_parts
from ._payload import PayloadDecoding, declare_image_bytes

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
_IMAGE_DTYPES: dict[Any, np.dtype] = {
    name: np.dtype(name)
    for name in ("uint8", "uint16", "uint32", "int8", "int16", "int32", "float32")
}
_TAG_OF_DTYPE = {
    (dtype.kind, dtype.itemsize, _is_little_endian(dtype)): tag
    for tag, dtype in _DTYPE_OF_TAG.items()
    if tag != 68
}  # 68: clamped uint8


@dataclass(frozen=True)
class CompressedData:
    """A DECTRIS compression tag (56500) left undecoded.

    ``data`` holds the compressed bytes of ``algorithm`` (``"bslz4"``: bitshuffle-LZ4 with
    ``modifier`` the element size; ``"lz4"``: LZ4; both in HDF5 framing): a view on the
    received message, or bytes. ``dtype`` and ``shape`` come from the typed array and tag 40
    the blob sits in (``None`` outside them).
    """

    algorithm: str
    modifier: int
    data: bytes | memoryview
    dtype: np.dtype | None = None
    shape: tuple[int, ...] | None = None

    def decode(
        self,
        *,
        max_bytes: int | None = None,
        allocate: Callable[[np.dtype, tuple[int, ...]], np.ndarray | None] | None = None,
    ) -> Any:
        """The decompressed array (``dtype``, ``shape``), or bytes when there is no dtype.

        ``max_bytes`` caps the decompressed size (`mflow.errors.DecodedSizeError`);
        ``allocate(dtype, shape)`` gives the array to decompress into (``None``: a new one).
        """
        if self.algorithm not in _ALGORITHMS:
            raise CompressionError(f"unsupported Stream V2 compression {self.algorithm!r}")
        element = np.dtype("u1")
        if self.algorithm == "bslz4":
            if self.modifier not in (1, 2, 4, 8):
                raise CompressionError(f"bslz4 element size {self.modifier} is not 1, 2, 4 or 8")
            element = np.dtype(f"u{self.modifier}")
        dtype = self.dtype
        # bitshuffle works on elements of the modifier's size, which is normally the dtype's
        direct = dtype is not None and (
            self.algorithm == "lz4" or dtype.itemsize == element.itemsize
        )
        target = dtype if direct and dtype is not None else element
        out = None
        if allocate is not None and dtype is not None and self.shape is not None:
            nbytes = math.prod(self.shape) * dtype.itemsize
            # Only a blob whose header states the array's size decodes into it; the rest
            # fails (or not) as without a pool.
            if nbytes % target.itemsize == 0 and bytes(self.data[:8]) == nbytes.to_bytes(8, "big"):
                out = allocate(target, (nbytes // target.itemsize,))
        flat = codecs.decode_stream2(
            self.algorithm, self.data, target, max_bytes=max_bytes, out=out
        )
        if dtype is None:
            return flat.tobytes()
        if not direct:
            try:
                flat = np.frombuffer(flat, dtype)
            except ValueError:
                raise CompressionError(
                    f"{flat.nbytes} decompressed bytes are not whole {dtype} elements"
                ) from None
        return flat if self.shape is None else _reshaped(flat, self.shape, "C")


def _reshaped(array: np.ndarray, dims: tuple[int, ...], order: Literal["C", "F"]) -> np.ndarray:
    try:
        return array.reshape(dims, order=order)
    except ValueError:
        raise MalformedMessageError(
            f"array of {array.size} elements does not fit dimensions {list(dims)}"
        ) from None


def _dimensions(value: Any) -> tuple[int, ...]:
    dims = value[0] if isinstance(value, (list, tuple)) and len(value) == 2 else None
    if not isinstance(dims, (list, tuple)) or not all(type(n) is int and n >= 0 for n in dims):
        raise MalformedMessageError("multi-dimensional array content is not [dimensions, array]")
    return tuple(dims)


_BYTES = (bytes, memoryview)


def _decode_tag(number: int, value: Any) -> Any:
    """The value of tag ``number`` around ``value`` (compressed blobs stay `CompressedData`)."""
    dtype = _DTYPE_OF_TAG.get(number)
    if dtype is not None:
        if isinstance(value, CompressedData):
            return CompressedData(value.algorithm, value.modifier, value.data, dtype, value.shape)
        if not isinstance(value, _BYTES) or len(value) % dtype.itemsize:
            raise MalformedMessageError(
                f"typed array tag {number} does not hold whole {dtype} elements"
            )
        return np.frombuffer(value, dtype)
    if number == MULTI_DIMENSIONAL_ARRAY or number == MULTI_DIMENSIONAL_ARRAY_COLUMN_MAJOR:
        dims = _dimensions(value)
        array = value[1]
        order: Literal["C", "F"] = "C" if number == MULTI_DIMENSIONAL_ARRAY else "F"
        if isinstance(array, CompressedData) and order == "C":
            return CompressedData(array.algorithm, array.modifier, array.data, array.dtype, dims)
        if isinstance(array, np.ndarray):
            return _reshaped(array, dims, order)
    elif number == DECTRIS_COMPRESSION:
        if not (
            isinstance(value, (list, tuple))
            and len(value) == 3
            and isinstance(value[0], str)
            and type(value[1]) is int
            and isinstance(value[2], _BYTES)
        ):
            raise MalformedMessageError(
                "compression tag content is not [algorithm, modifier, bytes]"
            )
        return CompressedData(*value)
    return cbor2.CBORTag(number, value)


def _tag_hook(*args: Any) -> Any:
    # cbor2 6 calls tag_hook(tag, immutable), cbor2 5 tag_hook(decoder, tag).
    tag = args[0] if isinstance(args[0], cbor2.CBORTag) else args[1]
    decoded = _decode_tag(tag.tag, tag.value)
    return tag if type(decoded) is cbor2.CBORTag else decoded


#: Deepest nesting of arrays, maps and tags a message may have (DECTRIS' go 6 deep).
MAX_DEPTH = 64

_SHAREABLE, _SHARED_REFERENCE = 28, 29
_GENERAL_TAGS = (0, 1)  # dates: decoded by cbor2 from the item's bytes
_VIEW_TAGS = frozenset(
    (
        *_DTYPE_OF_TAG,
        MULTI_DIMENSIONAL_ARRAY,
        MULTI_DIMENSIONAL_ARRAY_COLUMN_MAJOR,
        DECTRIS_COMPRESSION,
    )
)
_ARGUMENT = {
    24: struct.Struct(">B"),
    25: struct.Struct(">H"),
    26: struct.Struct(">I"),
    27: struct.Struct(">Q"),
}
_FLOATS = {25: struct.Struct(">e"), 26: struct.Struct(">f"), 27: struct.Struct(">d")}
_SIMPLE = {20: False, 21: True, 22: None, 23: cbor2.undefined}


class _Unusual(Exception):
    """CBOR the walker leaves to the general decoder (indefinite lengths, value sharing...)."""


class _Pending(list):
    """Where compressed blobs sit in a decoded message: ``(container, key, path)``."""


def _too_deep() -> MalformedMessageError:
    return MalformedMessageError(f"CBOR message nests deeper than {MAX_DEPTH} levels")


class _Walker:
    """Decodes the definite-length CBOR that Stream V2 producers send, leaving byte strings
    in typed arrays and compression tags as views on the message; raises `_Unusual` for
    anything else."""

    __slots__ = ("view", "pending")

    def __init__(self, view: memoryview, pending: _Pending) -> None:
        self.view = view
        self.pending = pending

    def item(self, pos: int, depth: int, path: tuple, views: bool) -> tuple[Any, int]:
        """The item at ``pos`` and the position after it (``views``: byte strings as views)."""
        view = self.view
        start = pos
        initial = view[pos]
        if initial < 24:  # the most common item: a small unsigned integer
            return initial, pos + 1
        major, info = initial >> 5, initial & 31
        pos += 1
        if info < 24:
            argument = info
        elif info < 28:
            if major == 7 and info > 24:
                return _FLOATS[info].unpack_from(view, pos)[0], pos + _FLOATS[info].size
            argument = _ARGUMENT[info].unpack_from(view, pos)[0]
            pos += _ARGUMENT[info].size
        else:
            raise _Unusual
        if major == 0:
            return argument, pos
        if major == 1:
            return -1 - argument, pos
        if major == 2 or major == 3:
            end = pos + argument
            if end > len(view):
                raise _Unusual
            if major == 3:
                try:
                    return str(view[pos:end], "utf-8"), end
                except UnicodeDecodeError:
                    raise _Unusual from None
            return (view[pos:end] if views else bytes(view[pos:end])), end
        if major == 7:
            if argument not in _SIMPLE or info == 24:
                raise _Unusual
            return _SIMPLE[argument], pos
        if depth >= MAX_DEPTH:
            raise _too_deep()
        if major < 6 and argument > len(view) - pos:  # every item takes at least one byte
            raise _Unusual
        if major == 4:
            items: list[Any] = []
            for index in range(argument):
                value, pos = self.item(pos, depth + 1, path, views)
                if type(value) is CompressedData and not views:  # views: a tag's content
                    self.pending.append((items, index, (*path, index)))
                items.append(value)
            return items, pos
        if major == 5:
            mapping: dict[Any, Any] = {}
            for _ in range(argument):
                head = view[pos]
                if 0x60 <= head < 0x78:  # a short text key, read in place
                    end = pos + head - 0x5F
                    if end > len(view):
                        raise _Unusual
                    try:
                        key = str(view[pos + 1 : end], "utf-8")
                    except UnicodeDecodeError:
                        raise _Unusual from None
                    pos = end
                else:
                    key, pos = self.item(pos, depth + 1, path, False)
                    if type(key) is not str and type(key) is not int:
                        raise _Unusual
                # only arrays, maps and tags can hold a blob, so only they need its path
                inner = (*path, key) if 0x80 <= view[pos] < 0xE0 else path
                value, pos = self.item(pos, depth + 1, inner, False)
                if type(value) is CompressedData:
                    self.pending.append((mapping, key, (*path, key)))
                mapping[key] = value
            return mapping, pos
        return self.tag(argument, start, pos, depth, path)

    def tag(self, number: int, start: int, pos: int, depth: int, path: tuple) -> tuple[Any, int]:
        if number == _SHAREABLE or number == _SHARED_REFERENCE:
            raise _Unusual
        if number == SELF_DESCRIBED_CBOR:
            return self.item(pos, depth + 1, path, False)
        value, end = self.item(pos, depth + 1, path, number in _VIEW_TAGS)
        if number in _GENERAL_TAGS:
            return _general(bytes(self.view[start:end])), end
        return _decode_tag(number, value), end


def _general(data: bytes) -> Any:
    try:
        return cbor2.loads(data, tag_hook=_tag_hook)
    except Exception:  # the whole message then goes to cbor2, which says what is wrong
        raise _Unusual from None


def _thaw(value: Any, depth: int, path: tuple, pending: _Pending, done: dict, busy: set) -> Any:
    """Plain dicts and lists for cbor2's frozendicts and tuples (cbor2 6 freezes tag
    content). A value shared by reference (tags 28/29) is copied once and stays shared,
    so the work is linear in the message; a value that contains itself is refused."""
    if not isinstance(value, (Mapping, list, tuple, cbor2.CBORTag)):
        return value
    key = id(value)
    if key in done:
        return done[key]
    if key in busy:
        raise MalformedMessageError("CBOR message refers to itself")
    if depth >= MAX_DEPTH:
        raise _too_deep()
    busy.add(key)
    thawed: Any
    if isinstance(value, cbor2.CBORTag):
        thawed = cbor2.CBORTag(value.tag, _thaw(value.value, depth + 1, path, pending, done, busy))
    elif isinstance(value, Mapping):
        thawed = {}
        for name, item in value.items():
            thawed[name] = _thaw(item, depth + 1, (*path, name), pending, done, busy)
            if type(item) is CompressedData:
                pending.append((thawed, name, (*path, name)))
    else:
        thawed = []
        for index, item in enumerate(value):
            thawed.append(_thaw(item, depth + 1, (*path, index), pending, done, busy))
            if type(item) is CompressedData:
                pending.append((thawed, index, (*path, index)))
    busy.discard(key)
    done[key] = thawed
    return thawed


def _mflow_error(error: BaseException) -> DecodeError | None:
    """The mflow error behind ``error`` (cbor2 wraps what a tag hook raises), if any."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, DecodeError):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def _parse(view: memoryview, pending: _Pending) -> Any:
    """The message in ``view``: walked without copies where it can be, else by cbor2."""
    try:
        return _Walker(view, pending).item(0, 0, (), False)[0]
    except (_Unusual, IndexError, struct.error):
        pending.clear()
    try:
        message = cbor2.loads(view, tag_hook=_tag_hook)
    # cbor2's semantic decoders (dates, regular expressions, ...) raise all kinds of errors
    # on hostile input; they all mean "not a valid message".
    except Exception as error:
        found = _mflow_error(error)
        if found is not None:
            raise found.with_traceback(None) from None
        raise MalformedMessageError(f"invalid CBOR: {error}") from None
    return _thaw(message, 0, (), pending, {}, set())


def decode_stream2(
    frame: Any, decode: bool = True, payloads: PayloadDecoding | None = None
) -> dict:
    """The Stream V2 message in ``frame`` (bytes-like) as described in the module docstring.

    Typed arrays and compressed blobs are views on ``frame``. ``payloads`` applies the
    policy for blobs that fail to decompress (default: they raise).
    """
    try:
        view = memoryview(frame).cast("B")
    except TypeError:
        raise MalformedMessageError(f"a {type(frame).__name__} is not a CBOR message") from None
    pending = _Pending()
    message = _parse(view, pending)
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise MalformedMessageError("a Stream V2 message is a CBOR map with a text 'type'")
    if decode:
        for container, key, path in pending:
            data = container[key]
            if type(data) is not CompressedData or data.algorithm not in _ALGORITHMS:
                continue  # decoded already (a key repeated), or left compressed as documented
            if payloads is None:
                container[key] = data.decode()
            else:
                name = ".".join(map(str, path))
                payloads.decode_into(container, key, name, data.decode, pooled=True)
    return message if payloads is None else payloads.record(message)


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
        content = cbor2.CBORTag(
            DECTRIS_COMPRESSION, ["bslz4", flat.itemsize, codecs.encode_bslz4(flat)]
        )
    else:
        content = cbor2.CBORTag(DECTRIS_COMPRESSION, ["lz4", 0, codecs.encode_hdf5_lz4(flat)])
    typed = cbor2.CBORTag(tag, content)
    if array.ndim == 1:
        return typed
    return cbor2.CBORTag(MULTI_DIMENSIONAL_ARRAY, [list(array.shape), typed])


def _compressed_tag(data: CompressedData) -> cbor2.CBORTag:
    tag = cbor2.CBORTag(DECTRIS_COMPRESSION, [data.algorithm, data.modifier, bytes(data.data)])
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
        return cbor2.dumps(
            cbor2.CBORTag(SELF_DESCRIBED_CBOR, message),
            default=partial(_encode_default, compression),
        )
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
        parts = receiver.rest_buffers()  # the frame itself: arrays and blobs are views on it
        if len(parts) != 1:
            raise MalformedMessageError(f"a Stream V2 message is one part, got {len(parts)}")
        message = decode_stream2(parts[0], receiver.decode, PayloadDecoding(receiver))
        if message["type"] == "start":
            channels = message.get("channels", [None])
            dtype = _IMAGE_DTYPES.get(message.get("image_dtype"))
            declare_image_bytes(
                receiver,
                message.get("image_size_x"),
                message.get("image_size_y"),
                dtype and 8 * dtype.itemsize,
                len(channels) if isinstance(channels, list) else 1,
            )
        return message

    @staticmethod
    def send(message: Mapping, send: Callable[..., Any], block: bool = True) -> None:
        """Send ``message`` as one CBOR part (arrays compressed per `Handler.compression`)."""
        send_parts([encode_stream2(message, Handler.compression)], send, block)
