"""bsr_m-1.0 / bsr_m-1.1 (bsread): golden bytes, every type, byte order and compression,
data-header caching, errors, fuzzing, and both directions against psi-bsread 2.0.1."""

from __future__ import annotations

import hashlib
import json
import struct
import time

import bitshuffle
import lz4.block
import numpy as np
import pytest
import zmq
from bsread.sender import Sender
from bsread.source import Source
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mflow
from mflow.errors import CompressionError, ConfigurationError, DecodeError, MalformedMessageError
from mflow.handlers.bsread import Handler
from mflow.receiver import ReceiveHandler

from .conformance import assert_same, decode, encode, load_golden, round_trip
from .conftest import TIMEOUT_MS
from .fixtures.cases import CASES

pytestmark = pytest.mark.usefixtures("receive_path")

BSREAD_CASES = sorted(name for name in CASES if name.startswith("bsread_"))
NUMERIC_TYPES = [
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float32",
    "float64",
]
COMPRESSIONS = ["none", "lz4", "bitshuffle_lz4"]


# -- hand-made wire messages (independent of mflow's encoder) ---------------------------


def compress(raw: bytes, compression: str, itemsize: int, byteorder: str = "<") -> bytes:
    if compression == "lz4":
        return struct.pack(byteorder + "I", len(raw)) + lz4.block.compress(raw, store_size=False)
    if compression == "bitshuffle_lz4":
        elements = np.frombuffer(raw, f"u{itemsize}")
        block = max(128, 8192 // itemsize // 8 * 8)
        return (
            struct.pack(">QI", len(raw), block * itemsize)
            + bitshuffle.compress_lz4(elements, block).tobytes()
        )
    return raw


def wire(
    channels: list[dict],
    values: list[tuple[bytes, bytes]],
    *,
    pulse_id: int = 1,
    htype: str = "bsr_m-1.1",
    global_timestamp: dict | None = None,
    dh_compression: str | None = None,
    **header_keys,
) -> list[bytes]:
    """A bsread message: main header, data header, then (value, timestamp) pairs."""
    data_header = json.dumps({"htype": "bsr_d-1.1", "channels": channels}).encode()
    if dh_compression:
        data_header = compress(data_header, dh_compression, 1)
        header_keys["dh_compression"] = dh_compression
    header = {
        "htype": htype,
        "hash": hashlib.md5(data_header).hexdigest(),
        "pulse_id": pulse_id,
        "global_timestamp": global_timestamp or {"sec": 1700000000, "ns": 42},
        **header_keys,
    }
    parts = [json.dumps(header).encode(), data_header]
    for value, timestamp in values:
        parts += [value, timestamp]
    return parts


def stamp(sec: int = 1700000000, ns: int = 42, byteorder: str = "<") -> bytes:
    return struct.pack(byteorder + "qq", sec, ns)


def assert_values(actual: dict, expected: dict) -> None:
    """Channel values equal, scalars of the same numpy type, arrays of the same dtype."""
    assert list(actual) == list(expected)
    for name, value in expected.items():
        if isinstance(value, np.generic):
            assert type(actual[name]) is type(value), f"{name}: {type(actual[name])}"
        assert_same(actual[name], value, name)


# -- golden fixtures and round trips ----------------------------------------------------


@pytest.mark.parametrize("copy", [True, False], ids=["copy", "zero-copy"])
@pytest.mark.parametrize("name", BSREAD_CASES)
def test_golden_fixture_decodes_to_the_expected_data(name, copy):
    _, _, expected = CASES[name]()
    actual = decode(Handler, load_golden(name), copy=copy)
    assert_same(actual, expected)
    assert_values(actual["data"], expected["data"])


@pytest.mark.parametrize("name", BSREAD_CASES)
def test_round_trip_through_real_sockets_by_htype(name, stream_pair):
    _, message, expected = CASES[name]()
    sender, receiver = stream_pair()
    assert_same(round_trip(sender, receiver, message, htype="bsr_m-1.1"), expected)
    # forwarding what was received reproduces it (dispatch by the header's htype)
    assert_same(round_trip(sender, receiver, expected), expected)


def test_both_htypes_are_registered():
    assert mflow.get_handler("bsr_m-1.0") is Handler
    assert mflow.get_handler("bsr_m-1.1") is Handler


# -- types, byte orders, compressions ---------------------------------------------------


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("encoding", ["little", "big"])
@pytest.mark.parametrize("type_name", NUMERIC_TYPES + ["bool"])
def test_every_type_byte_order_and_compression(type_name, encoding, compression):
    order = ">" if encoding == "big" else "<"
    dtype = np.dtype(order + ("?" if type_name == "bool" else np.dtype(type_name).str[1:]))
    image = (np.arange(15) % (2 if type_name == "bool" else 100)).astype(dtype).reshape(3, 5)
    scalar = image.reshape(-1)[:1]
    channels = [
        {
            "name": name,
            "type": type_name,
            "shape": shape,
            "encoding": encoding,
            "compression": compression,
        }
        for name, shape in (("scalar", [1]), ("image", [5, 3]))
    ]
    values = [
        (compress(array.tobytes(), compression, dtype.itemsize, order), stamp(7, 8, order))
        for array in (scalar, image)
    ]
    message = decode(Handler, wire(channels, values))
    assert_values(message["data"], {"scalar": scalar[0], "image": image})
    assert message["timestamps"] == {"scalar": (7, 8), "image": (7, 8)}


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_string_channel_is_text_of_any_length(compression):
    text = "Gr\u00fcezi " * 50
    channels = [{"name": "s", "type": "string", "shape": [1], "compression": compression}]
    raw = text.encode()
    assert decode(Handler, wire(channels, [(compress(raw, compression, 1), stamp())]))["data"] == {
        "s": text
    }


@pytest.mark.parametrize(
    "alias, dtype",
    [
        ("double", "<f8"),
        ("float", "<f4"),
        ("integer", "<i4"),
        ("long", "<i4"),
        ("ulong", "<u4"),
        ("short", "<i2"),
        ("ushort", "<u2"),
        ("Float64", "<f8"),
    ],
)
def test_legacy_type_aliases_and_bsr_m_1_0_epoch(alias, dtype):
    array = np.arange(4, dtype=dtype)
    channels = [{"name": "a", "type": alias, "shape": [4]}]
    message = decode(
        Handler,
        wire(
            channels,
            [(array.tobytes(), stamp())],
            htype="bsr_m-1.0",
            global_timestamp={"epoch": 1400000000, "ns": 3},
        ),
    )
    assert_values(message["data"], {"a": array})
    assert message["global_timestamp"] == (1400000000, 3)


def test_channel_without_type_is_float64_and_without_shape_is_unshaped():
    channels = [{"name": "one"}, {"name": "many"}]
    values = [(np.float64(2.5).tobytes(), stamp()), (np.arange(3.0).tobytes(), stamp())]
    assert_values(
        decode(Handler, wire(channels, values))["data"],
        {"one": np.float64(2.5), "many": np.arange(3.0)},
    )


def test_bool_reads_any_nonzero_byte_as_true():
    channels = [{"name": "b", "type": "bool", "shape": [3]}]
    assert_values(
        decode(Handler, wire(channels, [(b"\x00\x02\xff", stamp())]))["data"],
        {"b": np.array([False, True, True])},
    )


def test_missing_values_and_timestamps():
    channels = [{"name": n, "type": "int32"} for n in ("missing", "no_stamp", "short_stamp")]
    value = np.int32(5).tobytes()
    message = decode(Handler, wire(channels, [(b"", b""), (value, b""), (value, b"x" * 8)]))
    assert message["data"] == {"missing": None, "no_stamp": 5, "short_stamp": 5}
    assert message["timestamps"] == {"missing": None, "no_stamp": None, "short_stamp": None}


def test_missing_global_timestamp_is_none():
    parts = wire([], [])
    header = json.loads(parts[0])
    del header["global_timestamp"]
    assert decode(Handler, [json.dumps(header).encode(), parts[1]])["global_timestamp"] is None


@pytest.mark.parametrize(
    "channel, value",
    [
        ({"type": "complex64"}, b"\x00" * 8),
        ({"type": "int32", "compression": "zstd"}, b"\x00" * 4),
        ({"type": "int32", "compression": "lz4"}, b"\x10\x00\x00\x00garbage"),
        ({"type": "int32", "compression": "bitshuffle_lz4"}, b"\x00" * 7),
        ({"type": "int32", "shape": [3]}, b"\x00" * 8),
        ({"type": "int32"}, b"\x00" * 5),
        ({"type": "int32", "shape": "3"}, b"\x00" * 4),
        ({"type": "string"}, b"\xff\xfe"),
        ({"type": 5}, b"\x00" * 8),
    ],
    ids=[
        "unknown type",
        "unknown compression",
        "corrupt lz4",
        "truncated bitshuffle",
        "shape mismatch",
        "partial element",
        "shape not a list",
        "bad utf-8",
        "type not text",
    ],
)
def test_a_channel_that_cannot_be_decoded_is_none_and_the_rest_is_delivered(channel, value):
    channels = [{"name": "bad", **channel}, {"name": "good", "type": "uint8"}]
    receiver = ReceiveHandler(None)
    receiver.load(wire(channels, [(value, stamp()), (b"\x07", stamp())]))
    message = Handler.receive(receiver)
    assert message["data"] == {"bad": None, "good": 7}
    assert list(message["payload_errors"]) == ["bad"]
    reason = message["payload_errors"]["bad"].split(":")[0]
    assert reason in ("MalformedMessageError", "CompressionError")
    assert sum(receiver.statistics.payload_errors.values()) == 1


_BLOB = compress(np.arange(400, dtype="<i4").tobytes(), "bitshuffle_lz4", 4)
CORRUPT_CHANNEL = wire(
    [
        {"name": "bad", "type": "int32", "compression": "bitshuffle_lz4"},
        {"name": "good", "type": "uint8"},
    ],
    [
        (_BLOB[:12] + b"\x00\x00\x10\x00" + _BLOB[16:], stamp()),  # bad length
        (b"\x07", stamp()),
    ],
)


def test_a_corrupt_compressed_channel_is_counted_on_a_stream(stream_pair):
    sender, receiver = stream_pair()
    sender.send_multipart(CORRUPT_CHANNEL)
    message = receiver.receive().data
    assert message["data"] == {"bad": None, "good": 7}
    assert message["payload_errors"]["bad"].startswith("CompressionError")
    assert receiver.statistics.payload_errors == {"compression_error": 1}


def test_a_strict_stream_raises_for_a_corrupt_channel(stream_pair):
    sender, receiver = stream_pair(strict=True)
    sender.send_multipart(CORRUPT_CHANNEL)
    with pytest.raises(CompressionError):
        receiver.receive()
    assert receiver.statistics.skipped == {"compression_error": 1}


def test_the_decoded_bytes_budget_covers_all_channels(stream_factory):
    sender = stream_factory("tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUSH)
    receiver = stream_factory(sender.endpoint, max_decoded_bytes=10_000)
    raw = np.arange(1000, dtype="<f8").tobytes()  # 8000 bytes each
    channels = [
        {"name": name, "type": "float64", "shape": [1000], "compression": kind}
        for name, kind in (("a", "lz4"), ("b", "none"), ("c", "bitshuffle_lz4"))
    ]
    sender.send_multipart(
        wire(
            channels,
            [
                (compress(raw, "lz4", 8), stamp()),
                (raw, stamp()),
                (compress(raw, "bitshuffle_lz4", 8), stamp()),
            ],
        )
    )
    message = receiver.receive().data
    assert message["data"]["a"].nbytes == message["data"]["b"].nbytes == 8000
    assert message["data"]["c"] is None and list(message["payload_errors"]) == ["c"]
    assert receiver.statistics.payload_errors == {"decoded_size": 1}


# -- fixed-shape compressed channels: one C call per value, the general path for the rest --

_FIXED = np.arange(1000, dtype="<f8") * 0.5


def _fixed_channel(compression: str, **keys) -> dict:
    return {"name": "v", "type": "float64", "shape": [1000], "compression": compression, **keys}


def test_fixed_shape_compressed_values_take_one_call_each(monkeypatch):
    channels = [
        {"name": "bs", "type": "float64", "shape": [1000], "compression": "bitshuffle_lz4"},
        {"name": "lz", "type": "int32", "shape": [25, 40], "compression": "lz4"},
        {
            "name": "big",
            "type": "uint16",
            "shape": [7, 3],
            "compression": "bitshuffle_lz4",
            "encoding": "big",
        },
    ]
    image = np.arange(1000, dtype="<i4").reshape(40, 25)
    big = np.arange(21, dtype=">u2").reshape(3, 7)
    values = [
        (compress(_FIXED.tobytes(), "bitshuffle_lz4", 8), stamp()),
        (compress(image.tobytes(), "lz4", 4), stamp()),
        (compress(big.tobytes(), "bitshuffle_lz4", 2, ">"), stamp(byteorder=">")),
    ]

    def general(*args, **kwargs):
        raise AssertionError("the general decode was called")

    monkeypatch.setattr(mflow.codecs, "decode_bsread", general)
    message = decode(Handler, wire(channels, values))
    assert_values(message["data"], {"bs": _FIXED, "lz": image, "big": big})
    assert all(value.flags.writeable for value in message["data"].values())
    assert "payload_errors" not in message


_GOOD_BSLZ4 = compress(_FIXED.tobytes(), "bitshuffle_lz4", 8)
_GOOD_LZ4 = compress(_FIXED.tobytes(), "lz4", 8)


@pytest.mark.parametrize(
    ("compression", "blob"),
    [
        ("bitshuffle_lz4", _GOOD_BSLZ4[:12] + b"\x00\x00\x10\x00" + _GOOD_BSLZ4[16:]),
        ("bitshuffle_lz4", _GOOD_BSLZ4[:-5]),
        ("bitshuffle_lz4", struct.pack(">QI", 16000, 8192) + _GOOD_BSLZ4[12:]),
        ("bitshuffle_lz4", _GOOD_BSLZ4[:16] + bytes(len(_GOOD_BSLZ4) - 16)),
        ("bitshuffle_lz4", bytes(12) + _GOOD_BSLZ4[12:]),
        ("bitshuffle_lz4", _GOOD_BSLZ4[12:]),
        ("bitshuffle_lz4", struct.pack(">QI", 8000, 12) + _GOOD_BSLZ4[12:]),
        ("lz4", _GOOD_LZ4[:-3]),
        ("lz4", _GOOD_LZ4[:4] + bytes(len(_GOOD_LZ4) - 4)),
        ("lz4", struct.pack(">I", 8000) + _GOOD_LZ4[4:]),
        ("lz4", struct.pack("<I", 16000) + _GOOD_LZ4[4:]),
        ("lz4", _GOOD_LZ4[:4] + b"\x00"),
    ],
    ids=[
        "bad block length",
        "truncated",
        "other size",
        "corrupt blocks",
        "zeroed header",
        "no header",
        "block size not whole elements",
        "lz4 truncated",
        "lz4 corrupt",
        "lz4 big-endian prefix",
        "lz4 other size",
        "lz4 a byte",
    ],
)
@pytest.mark.parametrize("budget", [None, 4000])
def test_a_fixed_shape_value_decodes_as_the_general_decode_does(compression, blob, budget):
    receiver = ReceiveHandler(None)
    receiver.max_decoded_bytes = budget
    receiver.load(wire([_fixed_channel(compression)], [(blob, stamp())]))
    message = Handler.receive(receiver)
    try:
        expected = mflow.codecs.decode_bsread(compression, blob, "<f8", max_bytes=budget)
    except DecodeError as error:
        assert message["data"] == {"v": None}
        assert message["payload_errors"] == {"v": f"{type(error).__name__}: {error}"}
        assert dict(receiver.statistics.payload_errors) == {error.reason: 1}
    else:
        assert_same(message["data"]["v"], expected, "v")
        assert "payload_errors" not in message


def test_a_data_header_declaring_huge_values_allocates_nothing_for_them():
    import tracemalloc

    channels = [
        {"name": f"c{index}", "type": "float64", "shape": [200_000_000], "compression": "lz4"}
        for index in range(20)
    ]  # 1.6 GB each, 32 GB in all
    receiver = ReceiveHandler(None)
    tracemalloc.start()
    try:
        receiver.load(wire(channels, [(_GOOD_LZ4, stamp())] * 20))
        message = Handler.receive(receiver)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000
    assert set(message["data"].values()) == {None}
    assert dict(receiver.statistics.payload_errors) == {"malformed": 20}  # shape not matching


# -- malformed messages -----------------------------------------------------------------


def _replace_header(parts: list[bytes], **changes) -> list[bytes]:
    """``parts`` with main-header keys changed (a value of ``...`` removes the key)."""
    header = json.loads(parts[0])
    header.update(changes)
    return [json.dumps({k: v for k, v in header.items() if v is not ...}).encode(), *parts[1:]]


GOOD = wire([{"name": "a", "type": "uint8"}], [(b"\x01", stamp())])


@pytest.mark.parametrize(
    "parts",
    [
        [b"not json", *GOOD[1:]],
        [b"[1, 2]", *GOOD[1:]],
        _replace_header(GOOD, pulse_id=...),
        _replace_header(GOOD, pulse_id="1"),
        _replace_header(GOOD, global_timestamp={"ns": 1}),
        _replace_header(GOOD, global_timestamp={"sec": 1}),
        _replace_header(GOOD, global_timestamp=12),
        GOOD[:1],
        GOOD[:3],
        GOOD + [b""],
        [GOOD[0], b"{not json", *GOOD[2:]],
        wire([], [])[:1] + [b'{"htype": "bsr_d-1.1"}'],
        wire([{"type": "uint8"}], [(b"\x01", stamp())]),
        wire([{"name": "a"}, {"name": "a"}], [(b"", b""), (b"", b"")]),
        _replace_header(GOOD, dh_compression="zip"),
        _replace_header(GOOD, dh_compression="lz4"),
    ],
    ids=[
        "header not json",
        "header not object",
        "no pulse_id",
        "pulse_id text",
        "timestamp without sec",
        "timestamp without ns",
        "timestamp not object",
        "no data header",
        "missing timestamp part",
        "extra part",
        "data header not json",
        "no channels",
        "channel without name",
        "duplicate channel",
        "unknown dh_compression",
        "corrupt compressed data header",
    ],
)
def test_malformed_messages_raise(parts):
    with pytest.raises(MalformedMessageError):
        decode(Handler, parts)


@pytest.mark.parametrize("dh_compression", ["lz4", "bitshuffle_lz4"])
def test_compressed_data_header(dh_compression):
    parts = wire(
        [{"name": "a", "type": "uint8"}], [(b"\x09", stamp())], dh_compression=dh_compression
    )
    assert decode(Handler, parts)["data"] == {"a": 9}


def test_a_bad_message_is_skipped_and_the_next_one_decodes(stream_pair):
    sender, receiver = stream_pair()
    sender.send_multipart(GOOD[:3])
    sender.send_multipart(GOOD)
    assert receiver.receive() is None
    assert receiver.statistics.skipped["malformed"] == 1
    assert receiver.receive().data["data"] == {"a": 1}


# -- data-header caching ----------------------------------------------------------------


def _receiver() -> ReceiveHandler:
    receiver = ReceiveHandler(None)
    receiver._in_receive = True
    return receiver


def _receive(receiver: ReceiveHandler, parts: list[bytes]) -> dict:
    receiver.load(parts)
    return Handler.receive(receiver)


def test_a_known_hash_skips_parsing_the_data_header():
    receiver = _receiver()
    first = _receive(receiver, GOOD)
    second = _receive(receiver, [GOOD[0], b"not parsed again", *GOOD[2:]])
    assert second["data"] == {"a": 1}
    assert second["data_header"] is first["data_header"]


def test_the_cache_belongs_to_one_receiver():
    _receive(_receiver(), GOOD)
    with pytest.raises(MalformedMessageError):
        _receive(_receiver(), [GOOD[0], b"not parsed again", *GOOD[2:]])


def test_a_new_hash_is_parsed_and_the_cache_is_bounded():
    receiver = _receiver()
    for width in range(1, 21):
        parts = wire(
            [{"name": "w", "type": "uint8", "shape": [width]}], [(bytes(range(width)), stamp())]
        )
        assert _receive(receiver, parts)["data"]["w"].shape == ((width,) if width > 1 else ())
    cache = receiver.bsread_data_headers
    assert len(cache) == 16
    assert list(cache)[-1] == json.loads(parts[0])["hash"]


def test_a_data_header_not_matching_its_hash_is_used_but_not_cached():
    receiver = _receiver()
    liar = _replace_header(GOOD, hash="0" * 32)
    assert _receive(receiver, liar)["data"] == {"a": 1}
    with pytest.raises(MalformedMessageError):
        _receive(receiver, [liar[0], b"garbage", *liar[2:]])


def test_without_hash_every_data_header_is_parsed():
    receiver = _receiver()
    no_hash = _replace_header(GOOD, hash=...)
    assert _receive(receiver, no_hash)["data"] == {"a": 1}
    assert receiver.bsread_data_headers == {}


# -- sending ----------------------------------------------------------------------------


def test_sender_infers_types_like_psi_bsread():
    data = {
        "b": True,
        "i": 3,
        "f": 1.5,
        "s": "x",
        "n": None,
        "l": [1, 2, 3],
        "u": np.uint16(2),
        "a": np.zeros((2, 3), ">f4"),
        "nb": np.bool_(False),
    }
    parts = encode(Handler, {"pulse_id": 1, "global_timestamp": (1, 0), "data": data})
    channels = {
        c["name"]: (c["type"], c["shape"], c["encoding"]) for c in json.loads(parts[1])["channels"]
    }
    assert channels == {
        "b": ("bool", [1], "little"),
        "i": ("int64", [1], "little"),
        "f": ("float64", [1], "little"),
        "s": ("string", [1], "little"),
        "n": ("float64", [1], "little"),
        "l": ("int64", [3], "little"),
        "u": ("uint16", [1], "little"),
        "a": ("float32", [3, 2], "big"),
        "nb": ("bool", [1], "little"),
    }
    assert parts[10:12] == [b"", b""]  # None: value and timestamp parts empty


def _described(name: str, value, **description) -> dict:
    return {
        "pulse_id": 1,
        "data": {name: value},
        "data_header": {"channels": [{"name": name, **description}]},
    }


@pytest.mark.parametrize(
    "message",
    [
        {"pulse_id": 1, "data": {"h": np.zeros(2, np.float16)}},
        {"pulse_id": 1, "data": {"c": 1j}},
        {"pulse_id": 1, "data": {"o": object()}},
        _described("s", 5, type="string"),
        _described("x", "abc", type="int32"),
        _described("x", 1, type="int128"),
        _described("x", 1, compression="zip"),
        {"data": {"x": 1}},
        {"pulse_id": 1, "data": {"x": 1}, "data_header": {"channels": [{"type": "int32"}]}},
        {"pulse_id": 1, "data": {"x": 1}, "global_timestamp": "now"},
        {"pulse_id": 1, "data": {"x": 1}, "timestamps": {"x": {"ns": 1}}},
    ],
    ids=[
        "float16",
        "complex",
        "object",
        "string type, int value",
        "int type, text value",
        "unknown type",
        "unknown compression",
        "no pulse_id",
        "nameless description",
        "bad global timestamp",
        "bad channel timestamp",
    ],
)
def test_sending_what_bsread_cannot_carry_is_a_configuration_error(message):
    with pytest.raises(ConfigurationError):
        encode(Handler, message)


def test_sender_uses_psi_bsread_2_type_names_for_legacy_aliases():
    message = {
        "pulse_id": 1,
        "data": {"x": 7},
        "data_header": {"channels": [{"name": "x", "type": "ulong", "modulo": 2}]},
    }
    parts = encode(Handler, message)
    assert json.loads(parts[1])["channels"] == [
        {"name": "x", "type": "uint32", "shape": [1], "encoding": "little", "modulo": 2}
    ]
    assert parts[2] == np.uint32(7).tobytes()


def test_forwarding_keeps_a_missing_channel_of_unknown_type():
    channels = [
        {"name": "odd", "type": "complex64", "compression": "zstd"},
        {"name": "x", "type": "long"},
    ]
    received = decode(Handler, wire(channels, [(b"", b""), (np.int32(4).tobytes(), stamp())]))
    resent = decode(Handler, encode(Handler, received))
    assert resent["data"] == {"odd": None, "x": 4}
    assert [c["type"] for c in resent["data_header"]["channels"]] == ["complex64", "int32"]


def test_sender_timestamps_now_none_or_seconds():
    before = time.time()
    now = decode(Handler, encode(Handler, {"pulse_id": 1, "data": {"x": 1}}))
    assert before - 1 <= now["global_timestamp"][0] <= time.time()
    assert now["timestamps"]["x"] == now["global_timestamp"]
    none = decode(
        Handler, encode(Handler, {"pulse_id": 1, "global_timestamp": None, "data": {"x": 1}})
    )
    assert none["global_timestamp"] is None and none["timestamps"] == {"x": None}
    assert "global_timestamp" not in none["header"]
    seconds = decode(
        Handler, encode(Handler, {"pulse_id": 1, "global_timestamp": 12.25, "data": {"x": 1}})
    )
    assert seconds["global_timestamp"] == (12, 250000000)
    numpy_seconds = decode(
        Handler,
        encode(Handler, {"pulse_id": 1, "data": {"x": 1}, "global_timestamp": np.int64(12)}),
    )
    assert numpy_seconds["global_timestamp"] == (12, 0)


def test_sender_writes_lz4_size_prefix_in_the_channel_byte_order():
    parts = encode(
        Handler,
        {
            "pulse_id": 1,
            "global_timestamp": (1, 2),
            "data": {"x": np.arange(250, dtype=">i4")},
            "data_header": {"channels": [{"name": "x", "compression": "lz4"}]},
        },
    )
    assert parts[2][:4] == struct.pack(">I", 1000)
    assert parts[3] == stamp(1, 2, ">")


def test_sender_keeps_extra_header_keys_and_recomputes_the_hash():
    message = decode(Handler, load_golden("bsread_compressed_arrays"))
    message["header"] = {**message["header"], "source": "test", "hash": "stale"}
    message["data"]["counts"] = np.arange(6, dtype=">i4")
    resent = decode(Handler, encode(Handler, message))
    assert resent["header"]["source"] == "test"
    assert resent["header"]["hash"] == hashlib.md5(encode(Handler, message)[1]).hexdigest()
    assert_same(resent["data"], message["data"])


def test_sending_no_channels_gives_a_two_part_message():
    parts = encode(Handler, {"pulse_id": 3, "global_timestamp": (1, 2), "data": {}})
    assert len(parts) == 2
    assert decode(Handler, parts)["data"] == {}


# -- fuzzing ----------------------------------------------------------------------------

VALID = [(load_golden(name), CASES[name]()[2]) for name in BSREAD_CASES]


@st.composite
def mutated_messages(draw):
    parts, expected = draw(st.sampled_from(VALID))
    parts = list(parts)
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(parts) - 1))
        part = parts[index]
        action = draw(st.sampled_from(["flip", "truncate", "drop", "duplicate", "replace"]))
        if action == "flip" and part:
            at = draw(st.integers(0, len(part) - 1))
            part = part[:at] + bytes([part[at] ^ draw(st.integers(1, 255))]) + part[at + 1 :]
            parts[index] = part
        elif action == "truncate":
            parts[index] = part[: draw(st.integers(0, len(part)))]
        elif action == "drop" and len(parts) > 1:
            del parts[index]
        elif action == "duplicate":
            parts.insert(index, part)
        else:
            parts[index] = draw(st.binary(max_size=64))
    return parts, expected


@settings(deadline=None)
@given(mutated_messages())
def test_fuzzed_messages_raise_only_decode_errors_and_never_poison_the_cache(sample):
    parts, expected = sample
    receiver = _receiver()
    _receive(receiver, VALID[0][0])
    try:
        message = _receive(receiver, parts)
    except DecodeError:
        pass
    else:
        assert isinstance(message, dict)
    for valid, valid_expected in VALID:
        assert_same(_receive(receiver, valid), valid_expected)


@pytest.fixture
def one_pair(stream_pair):
    """One sender/receiver pair shared by all examples of a hypothesis test."""
    return stream_pair()


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sample=mutated_messages())
def test_fuzzed_messages_through_a_stream_then_a_valid_one(one_pair, sample):
    parts, _ = sample
    sender, receiver = one_pair
    sender.send_multipart(parts)
    result = receiver.receive()
    assert result is None or isinstance(result.data, dict)
    sender.send_multipart(VALID[1][0])
    assert_same(receiver.receive().data, VALID[1][1])


# -- psi-bsread 2.0.1 -------------------------------------------------------------------


def interop_channels():
    """(name, metadata, value) for every type, byte order and compression psi-bsread sends."""
    for compression in COMPRESSIONS:
        for type_name in NUMERIC_TYPES + ["bool"]:
            dtype = np.dtype("?" if type_name == "bool" else type_name)
            ramp = (np.arange(24) % (2 if type_name == "bool" else 120)).astype(dtype)
            yield f"{type_name}-{compression}-scalar", {"type": type_name}, ramp[5]
            yield (
                f"{type_name}-{compression}-image",
                {"type": type_name, "shape": [6, 4]},
                ramp.reshape(4, 6),
            )
            yield (
                f"{type_name}-{compression}-big",
                {"type": type_name, "shape": [250], "encoding": "big"},
                np.resize(ramp, 250).astype(dtype.newbyteorder(">")),
            )
        yield f"string-{compression}", {"type": "string"}, "Gr\u00fcezi, bsread"


def _interop():
    channels, values = [], {}
    for name, metadata, value in interop_channels():
        compression = name.split("-")[1]
        channels.append((name, {**metadata, "compression": compression}))
        values[name] = value
    return channels, values


@pytest.mark.parametrize("dh_compression", [None, "lz4", "bitshuffle_lz4"])
def test_psi_bsread_sender_to_mflow(dh_compression, stream_factory):
    channels, values = _interop()
    sender = Sender(
        port="*",
        address="tcp://127.0.0.1",
        send_timeout=TIMEOUT_MS,
        data_header_compression=dh_compression,
    )
    for name, metadata in channels:
        sender.add_channel(name, metadata=dict(metadata))
    sender.open()
    try:
        stream = stream_factory(sender.stream.endpoint)
        for pulse_id in (100, 101):  # the second message takes the cached data header
            sender.send(
                *values.values(),
                pulse_id=pulse_id,
                timestamp=(1700000000, pulse_id),
                check_data=False,
            )
            message = stream.receive()
            assert message is not None, stream.statistics.skipped
            assert message.data["pulse_id"] == pulse_id
            assert_values(message.data["data"], values)
            assert set(message.data["timestamps"].values()) == {(1700000000, pulse_id)}
    finally:
        sender.close()


@pytest.mark.parametrize("dh_compression", [None, "lz4", "bitshuffle_lz4"])
def test_mflow_to_psi_bsread_source(dh_compression, stream_factory):
    channels, values = _interop()
    sender = stream_factory(
        "tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUSH, send_timeout=TIMEOUT_MS
    )
    port = int(sender.endpoint.rsplit(":", 1)[1])
    message = {
        "pulse_id": 5,
        "global_timestamp": (1700000000, 77),
        "data": values,
        "data_header": {
            "channels": [{"name": n, "compression": m["compression"]} for n, m in channels]
        },
        "header": {"dh_compression": dh_compression} if dh_compression else {},
    }
    with Source(host="127.0.0.1", port=port, receive_timeout=TIMEOUT_MS) as source:
        for pulse_id in (5, 6):
            Handler.send({**message, "pulse_id": pulse_id}, sender.send)
            received = source.receive()
            assert received is not None
            assert received.data.pulse_id == pulse_id
            assert (received.data.global_timestamp, received.data.global_timestamp_offset) == (
                1700000000,
                77,
            )
            decoded = {name: value.value for name, value in received.data.data.items()}
            assert_values(decoded, values)
            assert {(v.timestamp, v.timestamp_offset) for v in received.data.data.values()} == {
                (1700000000, 77)
            }


def test_same_bytes_as_psi_bsread_sender_for_the_same_data(context):
    data = {
        "b": True,
        "i": -3,
        "f": 0.5,
        "s": "text",
        "n": None,
        "u": np.uint32(9),
        "a": np.arange(6, dtype="i2").reshape(2, 3),
    }
    puller = context.socket(zmq.PULL)
    puller.rcvtimeo = TIMEOUT_MS
    sender = Sender(
        port="*",
        address="tcp://127.0.0.1",
        send_timeout=TIMEOUT_MS,
        data_compression="bitshuffle_lz4",
    )
    sender.open()
    try:
        puller.connect(sender.stream.endpoint)
        sender.send(data=data, pulse_id=12, timestamp=(1700000000, 1))
        psi_parts = puller.recv_multipart()
    finally:
        sender.close()
        puller.close(linger=0)
    channels = [{"name": name, "compression": "bitshuffle_lz4"} for name in data]
    ours = encode(
        Handler,
        {
            "pulse_id": 12,
            "global_timestamp": (1700000000, 1),
            "data": data,
            "data_header": {"channels": channels},
        },
    )
    assert ours == psi_parts
