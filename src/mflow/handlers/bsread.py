"""bsr_m-1.0 / bsr_m-1.1: PSI beam-synchronous data (bsread).

Parts: the main header (JSON: ``pulse_id``, ``global_timestamp``, ``hash``, optional
``dh_compression``), the data header (JSON ``{"htype": "bsr_d-1.1", "channels": [...]}``,
possibly compressed), then for each channel a value part and a 16-byte timestamp part.

``receive`` returns::

    {"header": main header,
     "data_header": parsed data header (shared between messages with the same hash),
     "pulse_id": int,
     "global_timestamp": (sec, ns) or None,
     "data": {channel name: value, ...},           # in channel order
     "timestamps": {channel name: (sec, ns) or None, ...}}

A value is a numpy scalar of the channel's type (shape ``[1]`` or none), a numpy array in
numpy order (the channel's ``shape`` reversed; ``[W, H]`` gives ``(H, W)``), a ``str`` for
``string`` channels, or ``None`` when the value is missing or the channel cannot be decoded
(unknown type or compression, corrupt data, size not matching the shape, more than the
stream's decoded-bytes budget). A channel that cannot be decoded is named in
``"payload_errors"`` (channel name → error), counted in the statistics' ``payload_errors``
and raised on a strict stream (see `mflow.handlers._payload`). Arrays keep the
channel's byte order; a ``[W, 1]`` channel stays ``(1, W)`` (psi-bsread collapses it to its
first row). The compressed values of a fixed shape are views on one buffer per message,
each decoded into it by one C call (`mflow.codecs.bsread_value_decoder`). A bad main
header or data header, or a part count other than 2 + 2·channels, makes the whole message a
`MalformedMessageError`.

Parsed data headers are cached per receiver (the last 16), keyed by ``hash``: a message
whose hash was seen recently reuses the parsed header and channel decoders without reading
part 2. A data header is cached only if the MD5 of part 2 matches its hash.

``send`` takes such a dict, or just ``{"data": {...}, "pulse_id": ...}`` (optionally
``global_timestamp``, ``timestamps``, ``header``, ``data_header``): channel types and shapes
are inferred from the values as psi-bsread's ``Sender`` does; a ``data_header`` entry for a
channel supplies its ``type``, ``encoding``, ``compression`` and any extra metadata, and a
``dh_compression`` in ``header`` compresses the data header. Type names are sent as
psi-bsread 2 knows them (legacy aliases become ``int32``, ``float64``, ...). Without a
``global_timestamp`` key the current time is sent (an explicit ``None`` sends none); channels
without their own timestamp get the global one.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import struct
import time
from collections import OrderedDict
from typing import Any, Callable, cast

import numpy as np

from .. import codecs
from ..errors import ConfigurationError, DecodeError, MalformedMessageError
from ._parts import decode_json, encode_json, payload, require_dict, send_parts
from ._payload import PayloadDecoding

__all__ = ["Handler", "encode_message", "TYPES"]

TYPES = {
    "bool": "?",
    "string": "u1",
    "int8": "i1",
    "uint8": "u1",
    "int16": "i2",
    "uint16": "u2",
    "int32": "i4",
    "uint32": "u4",
    "int64": "i8",
    "uint64": "u8",
    "float32": "f4",
    "float64": "f8",
    # Legacy aliases of psi-bsread before 2017 and of mflow 1.0 (EPICS names: long is 32-bit).
    "double": "f8",
    "float": "f4",
    "integer": "i4",
    "long": "i4",
    "ulong": "u4",
    "short": "i2",
    "ushort": "u2",
}
"""bsread channel type → numpy type code (byte order comes from the channel's ``encoding``)."""

_COMPRESSIONS = {None: "none", "none": "none", "lz4": "lz4", "bitshuffle_lz4": "bitshuffle_lz4"}
_CACHE_ATTRIBUTE = "bsread_data_headers"
_CACHE_SIZE = 16
_TIMESTAMP = {"<": struct.Struct("<qq"), ">": struct.Struct(">qq")}
_ALIGNMENT = 64  # of each value in a message's value buffer
_MAX_EXPANSION = 256  # LZ4 data decodes to less than 256 times its size


class _Channel:
    """How to decode one channel's value and timestamp parts."""

    __slots__ = (
        "name",
        "dtype",
        "shape",
        "compression",
        "byteorder",
        "is_string",
        "problem",
        "count",
        "fast",
        "offset",
    )

    def __init__(self, description: Any) -> None:
        if not isinstance(description, dict) or not isinstance(description.get("name"), str):
            raise MalformedMessageError(f"bsread channel {description!r} has no name")
        self.name = description["name"]
        self.byteorder = ">" if description.get("encoding") == "big" else "<"
        type_name = description.get("type", "float64")
        type_name = type_name.lower() if isinstance(type_name, str) else None
        code = None if type_name is None else TYPES.get(type_name)
        self.is_string = type_name == "string"
        self.compression = _COMPRESSIONS.get(description.get("compression"))
        # A string's shape is always [1], whatever its length.
        self.shape = None if self.is_string else _numpy_shape(description.get("shape"))
        # A channel this cannot describe decodes to None on every message (as in psi-bsread),
        # each time counted as a payload error.
        self.problem = None if code is not None else f"unknown type {description.get('type')!r}"
        if self.compression is None:
            self.problem = f"unknown compression {description.get('compression')!r}"
        if self.shape is False:
            self.problem = f"shape {description.get('shape')!r} is not a list of sizes"
        self.dtype = (
            np.dtype(self.byteorder + code) if self.problem is None and code is not None else None
        )
        #: Elements of a compressed numeric value of fixed shape; ``fast`` decodes such a
        #: value at ``offset`` in the message's value buffer (see `_plan`), else ``None``.
        self.count = 0
        self.fast = None
        self.offset = 0
        dtype = self.dtype
        if dtype is not None and dtype.kind != "b" and not self.is_string and self.shape:
            self.count = math.prod(cast(tuple, self.shape))
            self.fast = codecs.bsread_value_decoder(
                cast(str, self.compression), dtype, self.count, self.byteorder
            )

    def value(self, part: Any, max_bytes: int) -> Any:
        """The decoded value of a non-empty value part; a `DecodeError` on bad data.

        ``max_bytes`` caps what a compressed value may decode to.
        """
        dtype = self.dtype
        if dtype is None:
            raise MalformedMessageError(f"bsread channel {self.name!r}: {self.problem}")
        try:
            return self._value(part, dtype, max_bytes)
        except (ValueError, TypeError) as error:  # bad UTF-8, a size not fitting the shape
            raise MalformedMessageError(f"bsread channel {self.name!r}: {error}") from None

    def _value(self, part: Any, dtype: np.dtype, max_bytes: int) -> Any:
        compression = cast(str, self.compression)  # a channel with a dtype has one
        if self.is_string:
            if self.compression != "none":
                part = codecs.decode_bsread(
                    compression, part, dtype, None, self.byteorder, max_bytes=max_bytes
                )
            return str(memoryview(part), "utf-8")
        is_bool = dtype.kind == "b"
        if is_bool:  # any non-zero byte is True, so read bytes and compare
            dtype = np.dtype("u1")
        if self.compression == "none":
            array = np.frombuffer(part, dtype)
        else:
            array = codecs.decode_bsread(
                compression, part, dtype, None, self.byteorder, max_bytes=max_bytes
            )
        if is_bool:
            array = array != 0
        if self.shape is None:
            if array.size == 1:
                return array[0]
            return array if array.size else None
        return array.reshape(self.shape)

    def timestamp(self, part: Any) -> tuple[int, int] | None:
        """``(sec, ns)`` from a 16-byte timestamp part; ``None`` for any other length."""
        if len(part) != 16:
            return None
        return _TIMESTAMP[self.byteorder].unpack(part)


def _numpy_shape(shape: Any) -> tuple[int, ...] | None | bool:
    """numpy shape of a bsread ``shape`` (fastest dimension first); None: unshaped; False: bad."""
    if shape is None:
        return None
    if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
        return False
    if shape == [1] or not shape:
        return None
    return tuple(reversed(shape))


def _parse_data_header(header: dict, part: Any) -> tuple[dict, list[_Channel], int]:
    part = part if type(part) is bytes else bytes(part)  # a received frame, for the JSON parser
    compression = header.get("dh_compression")
    if compression not in _COMPRESSIONS:
        raise MalformedMessageError(f"unknown bsread dh_compression {compression!r}")
    if _COMPRESSIONS[compression] != "none":
        try:
            part = codecs.decode_bsread(_COMPRESSIONS[compression], part, "u1")
        except DecodeError as error:
            raise MalformedMessageError(f"bsread data header: {error}") from None
    data_header = require_dict(decode_json(part, "bsread data header"), "bsread data header")
    channels = data_header.get("channels")
    if not isinstance(channels, list):
        raise MalformedMessageError("bsread data header has no channels list")
    decoders = [_Channel(channel) for channel in channels]
    if len({channel.name for channel in decoders}) != len(decoders):
        raise MalformedMessageError("bsread data header names a channel twice")
    return data_header, decoders, _plan(decoders)


def _plan(channels: list[_Channel]) -> int:
    """Place the values of the channels with a ``fast`` decoder in one buffer per message
    (one allocation, each value a view on it, aligned); the buffer's size in bytes."""
    size = 0
    for channel in channels:
        if channel.fast is not None:
            channel.offset = size
            nbytes = channel.count * cast(np.dtype, channel.dtype).itemsize
            size += -(-nbytes // _ALIGNMENT) * _ALIGNMENT
    return size


def _data_header(receiver: Any, header: dict, part: Any) -> tuple[dict, list[_Channel], int]:
    """Parsed data header, channel decoders and value buffer size (see `_plan`), from the
    receiver's cache when the hash is known."""
    key = header.get("hash")
    cache = getattr(receiver, _CACHE_ATTRIBUTE, None)
    if cache is None:
        cache = OrderedDict()
        try:
            setattr(receiver, _CACHE_ATTRIBUTE, cache)
        except AttributeError:
            pass  # a receiver without attributes just parses every data header
    if isinstance(key, str) and key in cache:
        cache.move_to_end(key)
        return cache[key]
    parsed = _parse_data_header(header, part)
    # Cache only a header that matches its hash, so that a corrupted part 2 is used for
    # its own message at most and never for the good messages after it.
    if isinstance(key, str) and key == hashlib.md5(part).hexdigest():
        cache[key] = parsed
        if len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
    return parsed


def _global_timestamp(header: dict) -> tuple[int, int] | None:
    stamp = header.get("global_timestamp")
    if stamp is None:
        return None
    if isinstance(stamp, dict):
        sec = stamp.get("sec", stamp.get("epoch"))
        ns = stamp.get("ns")
        if type(sec) is int and type(ns) is int:
            return sec, ns
    raise MalformedMessageError(f"bsread global_timestamp {stamp!r} is not {{sec, ns}}")


def _receive(receiver: Any) -> dict:
    try:
        header = receiver.next(as_json=True)
    except ValueError as error:
        raise MalformedMessageError(f"bsread main header is not UTF-8 JSON: {error}") from None
    require_dict(header, "bsread main header")
    pulse_id = header.get("pulse_id")
    if type(pulse_id) is not int:
        raise MalformedMessageError(f"bsread main header has no integer pulse_id: {pulse_id!r}")
    global_timestamp = _global_timestamp(header)
    parts = receiver.rest_buffers()  # not copied: values are decoded from (or views on) them
    if not parts:
        raise MalformedMessageError("bsread message has no data header part")
    data_header, channels, buffer_size = _data_header(receiver, header, parts[0])
    if len(parts) != 1 + 2 * len(channels):
        raise MalformedMessageError(
            f"bsread message has {len(parts) + 1} parts, its data header declares "
            f"{len(channels)} channels (expected {2 + 2 * len(channels)})"
        )
    data: dict[str, Any] = {}
    timestamps: dict[str, tuple[int, int] | None] = {}
    payloads = PayloadDecoding(receiver)
    # The values of the common kind are decoded by one C call each into one buffer; any
    # other value, and any the call refuses, takes the general path (and its errors). The
    # buffer's size comes from the data header, so it is allocated only within the budget
    # and what the message's bytes can decode to; else every value takes the general path.
    if buffer_size and (
        buffer_size > payloads.remaining or buffer_size > _MAX_EXPANSION * sum(map(len, parts))
    ):
        buffer_size = 0
    buffer = np.empty(buffer_size, np.uint8)
    address = buffer.ctypes.data if buffer_size else 0
    for index, channel in enumerate(channels):
        value_part = parts[1 + 2 * index]
        value = timestamp = None
        if len(value_part):
            fast = channel.fast if address else None
            if fast is not None and fast(value_part, address + channel.offset, payloads.remaining):
                value = np.frombuffer(buffer, channel.dtype, channel.count, channel.offset)
                if len(cast(tuple, channel.shape)) > 1:
                    value = value.reshape(channel.shape)
                payloads.remaining -= value.nbytes
            else:
                value = payloads.decode(
                    channel.name,
                    channel.value,
                    value_part,
                    compressed=channel.compression != "none",
                )
            timestamp = channel.timestamp(parts[2 + 2 * index])
        data[channel.name] = value
        timestamps[channel.name] = timestamp
    return payloads.record(
        {
            "header": header,
            "data_header": data_header,
            "pulse_id": pulse_id,
            "global_timestamp": global_timestamp,
            "data": data,
            "timestamps": timestamps,
        }
    )


# -- sending ---------------------------------------------------------------------------

_TYPE_OF_KIND = {"b": "bool", "i": "int", "u": "uint", "f": "float"}


def _type_name(dtype: np.dtype) -> str:
    """bsread type name of a numpy dtype; `ConfigurationError` for types bsread lacks."""
    kind = _TYPE_OF_KIND.get(dtype.kind)
    name = "bool" if kind == "bool" else f"{kind}{8 * dtype.itemsize}"
    if kind is None or name not in TYPES:
        raise ConfigurationError(f"bsread cannot send values of dtype {dtype}")
    return name


def _inferred_type(value: Any) -> str:
    """The channel type psi-bsread's Sender infers for ``value``."""
    if value is None:
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, (np.ndarray, np.generic)):
        return _type_name(value.dtype)
    if isinstance(value, (list, tuple)):
        return _type_name(np.asarray(value).dtype)
    raise ConfigurationError(f"bsread cannot send a {type(value).__name__}")


def _canonical_type(type_name: Any, channel: str) -> str:
    """The psi-bsread 2.x name of a channel type (legacy aliases are not understood there)."""
    lowered = type_name.lower() if isinstance(type_name, str) else None
    code = None if lowered is None else TYPES.get(lowered)
    if code is None:
        raise ConfigurationError(f"bsread channel {channel!r} has unknown type {type_name!r}")
    return lowered if lowered == "string" else _type_name(np.dtype(code))


def _channel_parts(description: dict, value: Any) -> tuple[dict, Any]:
    """The channel description as sent and its value part (not yet compressed)."""
    name = description["name"]
    if value is None:
        # A missing value carries no data, so its description is passed on as it is (an
        # unknown type included); known types still get their psi-bsread 2 names.
        type_name = description.get("type", "float64")
        if isinstance(type_name, str) and type_name.lower() in TYPES:
            type_name = _canonical_type(type_name, name)
        channel = {
            "name": name,
            "type": type_name,
            "shape": description.get("shape", [1]),
            "encoding": description.get("encoding", "little"),
        }
        channel.update((k, v) for k, v in description.items() if k not in channel)
        return channel, b""
    type_name = _canonical_type(description.get("type") or _inferred_type(value), name)
    encoding = description.get("encoding")
    if encoding is None:
        big = isinstance(value, np.ndarray) and value.dtype.byteorder == ">"
        encoding = "big" if big else "little"
    shape = [1]
    if type_name == "string":
        if not isinstance(value, str):
            raise ConfigurationError(f"bsread string channel {name!r} got a {type(value).__name__}")
        raw: Any = value.encode("utf-8")
    else:
        dtype = np.dtype(TYPES[type_name]).newbyteorder(">" if encoding == "big" else "<")
        try:
            array = np.asarray(value, dtype)
        except (TypeError, ValueError, OverflowError) as error:
            raise ConfigurationError(
                f"bsread channel {name!r}: cannot send {value!r} as {type_name}: {error}"
            ) from None
        if array.ndim:
            shape = list(array.shape[::-1])
        raw = payload(array.reshape(-1))
    channel = {"name": name, "type": type_name, "shape": shape, "encoding": encoding}
    channel.update((k, v) for k, v in description.items() if k not in channel)
    return channel, raw


def _compressed(raw: Any, compression: Any, dtype: np.dtype, byteorder: str) -> Any:
    kind = _COMPRESSIONS.get(compression)
    if kind is None:
        raise ConfigurationError(f"unknown bsread compression {compression!r}")
    if kind == "none":
        return raw
    if kind == "lz4":
        return codecs.encode_bsread_lz4(raw, byteorder)
    return codecs.encode_bslz4(raw, dtype)


def _timestamp_value(stamp: Any) -> tuple[int, int] | None:
    """``(sec, ns)`` from a tuple, a ``{sec|epoch, ns}`` dict or seconds as a number."""
    if stamp is None:
        return None
    try:
        if isinstance(stamp, dict):
            seconds: Any = stamp.get("sec", stamp.get("epoch"))  # None: a TypeError below
            return int(seconds), int(stamp["ns"])
        if isinstance(stamp, numbers.Real):
            fraction, seconds = math.modf(stamp)
            return int(seconds), int(fraction * 1e9)
        sec, ns = stamp
        return int(sec), int(ns)
    except (KeyError, TypeError, ValueError):
        raise ConfigurationError(f"a bsread timestamp is (sec, ns), not {stamp!r}") from None


def _given_channels(data_header: Any) -> dict[str, dict]:
    """The channel descriptions a message to send brings along, by name."""
    given = {}
    for channel in (data_header or {}).get("channels", []):
        if not isinstance(channel, dict) or not isinstance(channel.get("name"), str):
            raise ConfigurationError(f"bsread channel description {channel!r} has no name")
        given[channel["name"]] = channel
    return given


def encode_message(message: dict) -> list[Any]:
    """The parts of a bsread message for ``message`` (see the module docstring)."""
    header_in = message.get("header") or {}
    pulse_id = message.get("pulse_id", header_in.get("pulse_id"))
    if pulse_id is None:
        raise ConfigurationError("a bsread message needs a pulse_id")
    if "global_timestamp" in message:
        global_timestamp = _timestamp_value(message["global_timestamp"])
    elif "global_timestamp" in header_in:
        global_timestamp = _timestamp_value(header_in["global_timestamp"])
    else:
        global_timestamp = _timestamp_value(time.time())
    data = message.get("data") or {}
    given = _given_channels(message.get("data_header"))
    names = list(data) + [name for name in given if name not in data]
    timestamps = message.get("timestamps") or {}

    channels: list[dict] = []
    value_parts: list[Any] = []
    for name in names:
        value = data.get(name)
        channel, raw = _channel_parts(given.get(name, {"name": name}), value)
        channels.append(channel)
        if not len(raw):  # missing value: empty value and timestamp parts
            value_parts += (b"", b"")
            continue
        byteorder = ">" if channel["encoding"] == "big" else "<"
        element = np.dtype(f"u{np.dtype(TYPES[channel['type']]).itemsize}")
        value_parts.append(_compressed(raw, channel.get("compression"), element, byteorder))
        stamp = _timestamp_value(timestamps.get(name, global_timestamp))
        value_parts.append(b"" if stamp is None else _TIMESTAMP[byteorder].pack(*stamp))

    dh_compression = header_in.get("dh_compression")
    data_header = _compressed(
        encode_json({"htype": "bsr_d-1.1", "channels": channels}),
        dh_compression,
        np.dtype("u1"),
        "<",
    )
    header: dict[str, Any] = {"htype": "bsr_m-1.1"}
    if dh_compression is not None:
        header["dh_compression"] = dh_compression
    header["hash"] = hashlib.md5(data_header).hexdigest()
    header["pulse_id"] = int(pulse_id)
    if global_timestamp is not None:
        header["global_timestamp"] = {"sec": global_timestamp[0], "ns": global_timestamp[1]}
    header.update(
        (k, v)
        for k, v in header_in.items()
        if k not in header and k not in ("global_timestamp", "dh_compression")
    )
    return [encode_json(header), data_header, *value_parts]


class Handler:
    """bsr_m-1.0 / bsr_m-1.1 receive and send."""

    @staticmethod
    def receive(receiver: Any) -> dict:
        """Decode the receiver's message (see the module docstring)."""
        return _receive(receiver)

    @staticmethod
    def send(message: dict, send: Callable[..., Any], block: bool = True) -> None:
        """Send ``message`` (see the module docstring) as one multipart message."""
        send_parts(encode_message(message), send, block)
