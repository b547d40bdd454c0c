"""DECTRIS Stream V2 (CBOR): golden bytes, typed arrays, multi-dimensional arrays, the
compression tag with and without decoding, errors, and fuzzing of the decoder."""

from __future__ import annotations

import datetime
import struct

import bitshuffle
import cbor2
import lz4.block
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mflow
from mflow import dispatch
from mflow.errors import CompressionError, ConfigurationError, DecodeError, MalformedMessageError
from mflow.handlers.stream2 import CompressedData, Handler, decode_stream2, encode_stream2

from .conformance import assert_same, decode, encode, load_golden
from .fixtures.cases import CASES

pytestmark = pytest.mark.usefixtures("receive_path")

STREAM2_CASES = sorted(name for name in CASES if name.startswith("stream2_"))
SELF_DESCRIBED = b"\xd9\xd9\xf7"
IMAGE = (np.arange(35, dtype="<u2") * 31).reshape(5, 7)

# RFC 8746 typed-array tags and the numpy type they stand for
TYPED_ARRAYS = {
    64: "u1",
    65: ">u2",
    66: ">u4",
    67: ">u8",
    68: "u1",
    69: "<u2",
    70: "<u4",
    71: "<u8",
    72: "i1",
    73: ">i2",
    74: ">i4",
    75: ">i8",
    77: "<i2",
    78: "<i4",
    79: "<i8",
    80: ">f2",
    81: ">f4",
    82: ">f8",
    84: "<f2",
    85: "<f4",
    86: "<f8",
}


def cbor(message, prefix: bool = True) -> bytes:
    """``message`` (built from cbor2 tags, no mflow involved) as a Stream V2 frame."""
    return cbor2.dumps(cbor2.CBORTag(55799, message) if prefix else message)


def bslz4_blob(array: np.ndarray) -> bytes:
    block = 8192 // array.itemsize
    return (
        struct.pack(">QI", array.nbytes, block * array.itemsize)
        + bitshuffle.compress_lz4(array.reshape(-1), block).tobytes()
    )


def hdf5_lz4_blob(array: np.ndarray) -> bytes:
    raw = array.tobytes()
    block = lz4.block.compress(raw, store_size=False)
    return struct.pack(">QI", len(raw), len(raw)) + struct.pack(">I", len(block)) + block


def image_message(content) -> dict:
    return {"type": "image", "series_id": 1, "image_id": 0, "data": {"threshold_1": content}}


def multi_dim(array: np.ndarray, content) -> cbor2.CBORTag:
    return cbor2.CBORTag(40, [list(array.shape), cbor2.CBORTag(69, content)])


def assert_plain(value, path="message"):
    """No frozendicts or tuples anywhere (cbor2 6 returns them inside tags)."""
    assert not isinstance(value, tuple), path
    if isinstance(value, dict):
        assert type(value) is dict, path
        for key, item in value.items():
            assert_plain(item, f"{path}[{key!r}]")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_plain(item, f"{path}[{index}]")
    elif isinstance(value, cbor2.CBORTag):
        assert_plain(value.value, f"{path}.value")


# -- golden fixtures and round trips ----------------------------------------------------


def test_registered_under_the_stream2_dispatch_key():
    assert mflow.get_handler(dispatch.STREAM2) is Handler


@pytest.mark.parametrize("prefix", [True, False], ids=["self-described", "bare map"])
def test_sniffer_dispatches_cbor_with_and_without_the_prefix(prefix, pull_stream):
    socket, stream = pull_stream
    socket.send(cbor({"type": "end", "series_id": 2}, prefix))
    assert stream.receive().data == {"type": "end", "series_id": 2}


# -- tags -------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", sorted(TYPED_ARRAYS))
def test_every_typed_array_tag(tag):
    dtype = np.dtype(TYPED_ARRAYS[tag])
    array = (np.arange(6) * 3 % 11).astype(dtype)
    message = decode_stream2(cbor({"type": "start", "table": cbor2.CBORTag(tag, array.tobytes())}))
    assert message["table"].dtype == dtype
    np.testing.assert_array_equal(message["table"], array)


def test_reserved_and_float128_tags_stay_tags():
    message = decode_stream2(
        cbor({"type": "x", "r": cbor2.CBORTag(76, b"\x01"), "q": cbor2.CBORTag(87, b"\x00" * 16)})
    )
    assert message["r"] == cbor2.CBORTag(76, b"\x01")
    assert message["q"] == cbor2.CBORTag(87, b"\x00" * 16)


def test_multi_dimensional_arrays_row_and_column_major():
    flat = np.arange(6, dtype="<u4")
    message = decode_stream2(
        cbor(
            {
                "type": "start",
                "row": cbor2.CBORTag(40, [[2, 3], cbor2.CBORTag(70, flat.tobytes())]),
                "column": cbor2.CBORTag(1040, [[2, 3], cbor2.CBORTag(70, flat.tobytes())]),
                "classic": cbor2.CBORTag(40, [[2], [1, 2]]),
            }
        )
    )
    np.testing.assert_array_equal(message["row"], flat.reshape(2, 3))
    np.testing.assert_array_equal(message["column"], flat.reshape(2, 3, order="F"))
    assert message["classic"] == cbor2.CBORTag(40, [[2], [1, 2]])


@pytest.mark.parametrize("algorithm, blob", [("bslz4", bslz4_blob), ("lz4", hdf5_lz4_blob)])
def test_compressed_image_is_decoded_to_y_x(algorithm, blob):
    modifier = 2 if algorithm == "bslz4" else 0
    content = cbor2.CBORTag(56500, [algorithm, modifier, blob(IMAGE)])
    message = decode_stream2(cbor(image_message(multi_dim(IMAGE, content))))
    assert_same(message["data"]["threshold_1"], IMAGE)


def test_compressed_byte_string_outside_a_typed_array_is_bytes():
    raw = bytes(range(200))
    blob = bslz4_blob(np.frombuffer(raw, np.uint8))
    message = decode_stream2(cbor({"type": "x", "b": cbor2.CBORTag(56500, ["bslz4", 1, blob])}))
    assert message["b"] == raw


def test_without_decoding_the_compressed_blob_is_kept_with_dtype_and_shape():
    frame = load_golden("stream2_image")[0]
    message = decode(Handler, [frame], decode=False)
    kept = message["data"]["threshold_1"]
    assert isinstance(kept, CompressedData)
    assert (kept.algorithm, kept.modifier, kept.dtype, kept.shape) == (
        "bslz4",
        2,
        np.dtype("<u2"),
        (4, 6),
    )
    assert_same(kept.decode(), CASES["stream2_image"]()[2]["data"]["threshold_1"])
    assert encode(Handler, message) == [frame]  # forwarded without recompressing


def test_receive_decode_false_through_a_stream(stream_pair):
    sender, receiver = stream_pair()
    sender.send(load_golden("stream2_image")[0])
    kept = receiver.receive(decode=False).data["data"]["threshold_1"]
    assert isinstance(kept, CompressedData)


def test_unsupported_algorithm_is_kept_compressed():
    content = cbor2.CBORTag(56500, ["bszstd", 2, b"\x01\x02"])
    kept = decode_stream2(cbor(image_message(multi_dim(IMAGE, content))))["data"]["threshold_1"]
    assert kept == CompressedData("bszstd", 2, b"\x01\x02", np.dtype("<u2"), (5, 7))
    with pytest.raises(CompressionError):
        kept.decode()


def test_dates_unknown_tags_and_plain_containers():
    when = datetime.datetime(
        2023, 10, 3, 17, 47, 49, 434000, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
    )
    message = decode_stream2(
        cbor(
            {
                "type": "start",
                "arm_date": when,
                "odd": cbor2.CBORTag(12345, {"a": [1, {"b": [2]}]}),
                "user_data": {"nested": [[1, 2], {"x": (3,)}]},
            }
        )
    )
    assert message["arm_date"] == when
    assert message["odd"] == cbor2.CBORTag(12345, {"a": [1, {"b": [2]}]})
    assert_plain(message)


@pytest.mark.parametrize(
    "call",
    [
        lambda hook, tag: hook(object(), tag),  # cbor2 5: tag_hook(decoder, tag)
        lambda hook, tag: hook(tag, True),  # cbor2 6: tag_hook(tag, immutable)
    ],
    ids=["cbor2 5", "cbor2 6"],
)
def test_both_cbor2_tag_hook_signatures(call, monkeypatch):
    loads = cbor2.loads

    def loads_calling_the_hook_so(data, tag_hook=None, **kwargs):
        def native(*args):
            return call(tag_hook, args[0] if isinstance(args[0], cbor2.CBORTag) else args[1])

        return loads(data, tag_hook=native, **kwargs)

    monkeypatch.setattr(cbor2, "loads", loads_calling_the_hook_so)
    assert_same(decode_stream2(load_golden("stream2_image")[0]), CASES["stream2_image"]()[2])


# -- errors -----------------------------------------------------------------------------

GOOD_IMAGE = load_golden("stream2_image")[0]


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        GOOD_IMAGE[:-5],
        b"\xff\xff",
        cbor([1, 2]),
        cbor({"series_id": 1}),
        cbor({"type": 3}),
        cbor({"type": "x", "a": cbor2.CBORTag(69, b"\x00\x01\x02")}),
        cbor({"type": "x", "a": cbor2.CBORTag(69, "text")}),
        cbor({"type": "x", "a": cbor2.CBORTag(40, [[5, 5], cbor2.CBORTag(69, b"\x00\x01")])}),
        cbor({"type": "x", "a": cbor2.CBORTag(40, [["y"], cbor2.CBORTag(69, b"\x00\x01")])}),
        cbor({"type": "x", "a": cbor2.CBORTag(56500, ["bslz4", 2])}),
        cbor({"type": "x", "a": cbor2.CBORTag(1, "not a time")}),
        b"\xa2\x64type\x61x\x61a\xd8\x1c\x81\xd8\x1d\x00",
    ],
    ids=[
        "empty",
        "truncated",
        "not cbor",
        "not a map",
        "no type",
        "type not text",
        "partial element",
        "typed array of text",
        "dimensions mismatch",
        "bad dimensions",
        "bad compression tag",
        "bad date",
        "refers to itself",
    ],
)
def test_malformed_messages_raise(frame):
    with pytest.raises(MalformedMessageError):
        decode_stream2(frame)


@pytest.mark.parametrize(
    "content",
    [
        cbor2.CBORTag(56500, ["bslz4", 2, b"\x00" * 20]),
        cbor2.CBORTag(56500, ["lz4", 0, hdf5_lz4_blob(IMAGE)[:-3]]),
        cbor2.CBORTag(56500, ["bslz4", 3, bslz4_blob(IMAGE)]),
    ],
    ids=["corrupt bslz4", "truncated lz4", "bad element size"],
)
def test_bad_compressed_blob_raises_compression_error(content):
    with pytest.raises(CompressionError):
        decode_stream2(cbor(image_message(multi_dim(IMAGE, content))))


@pytest.mark.parametrize("decoding", [True, False])
def test_blob_with_fewer_pixels_than_the_dimensions_is_malformed(decoding):
    content = cbor2.CBORTag(56500, ["lz4", 0, hdf5_lz4_blob(IMAGE[:2])])
    frame = cbor(image_message(multi_dim(IMAGE, content)))
    with pytest.raises(MalformedMessageError):
        decode_stream2(frame, decoding)["data"]["threshold_1"].decode()


def test_multipart_message_is_malformed():
    with pytest.raises(MalformedMessageError):
        decode(Handler, [GOOD_IMAGE, b"extra"])


CORRUPT_IMAGE = cbor(image_message(multi_dim(IMAGE, cbor2.CBORTag(56500, ["lz4", 0, b"x"]))))


def test_a_corrupt_blob_is_none_named_and_counted_and_the_next_message_decodes(stream_pair):
    sender, receiver = stream_pair()
    sender.send(CORRUPT_IMAGE)
    sender.send(GOOD_IMAGE)
    message = receiver.receive().data
    assert message["data"] == {"threshold_1": None} and message["image_id"] == 0
    assert message["payload_errors"]["data.threshold_1"].startswith("CompressionError")
    assert receiver.statistics.payload_errors == {"compression_error": 1}
    assert receiver.statistics.skipped == {}
    assert_same(receiver.receive().data, CASES["stream2_image"]()[2])


def test_a_strict_stream_raises_for_a_corrupt_blob(stream_pair):
    sender, receiver = stream_pair(strict=True)
    sender.send(CORRUPT_IMAGE)
    with pytest.raises(CompressionError):
        receiver.receive()
    assert receiver.statistics.skipped["compression_error"] == 1
    assert not receiver.statistics.payload_errors


# -- encoding ---------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["bslz4", "lz4", None])
def test_encode_round_trips_with_every_compression(compression):
    _, message, expected = CASES["stream2_start"]()
    frame = encode_stream2(message, compression)
    assert frame.startswith(SELF_DESCRIBED)
    assert_same(decode_stream2(frame), expected)


def test_encode_turns_numpy_scalars_and_zero_dim_arrays_into_numbers():
    frame = encode_stream2(
        {"type": "x", "a": np.uint16(3), "b": np.array(2.5), "c": np.bool_(True)}
    )
    assert cbor2.loads(frame) == {"type": "x", "a": 3, "b": 2.5, "c": True}


@pytest.mark.parametrize(
    "message, compression",
    [
        ({"type": "x", "a": np.zeros(2, bool)}, "bslz4"),
        ({"type": "x", "a": np.zeros(2, complex)}, "bslz4"),
        ({"type": "x", "a": object()}, "bslz4"),
        ({"type": "x", "a": datetime.datetime(2024, 1, 1)}, "bslz4"),
        ({"type": "x"}, "zstd"),
    ],
    ids=["bool array", "complex array", "object", "naive datetime", "unknown compression"],
)
def test_encoding_what_stream2_cannot_carry_is_a_configuration_error(message, compression):
    with pytest.raises(ConfigurationError):
        encode_stream2(message, compression)


# -- fuzzing ----------------------------------------------------------------------------

VALID = [load_golden(name)[0] for name in STREAM2_CASES]


@st.composite
def mutated_frames(draw):
    frame = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        at = draw(st.integers(0, max(len(frame) - 1, 0)))
        if action == "flip" and frame:
            frame[at] ^= draw(st.integers(1, 255))
        elif action == "truncate":
            del frame[at:]
        elif action == "insert":
            frame[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif frame:
            del frame[at : at + draw(st.integers(1, 8))]
    return bytes(frame)


LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=40)
)
TAGS = st.sampled_from([0, 1, 28, 29, 40, 1040, 56500, 55799, 12345, *range(64, 88)])
TREES = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=4), children, max_size=4)
        | st.builds(cbor2.CBORTag, TAGS, children)
        | st.builds(
            lambda alg, mod, data: cbor2.CBORTag(56500, [alg, mod, data]),
            st.sampled_from(["bslz4", "lz4", "bszstd"]),
            st.integers(-1, 9),
            st.binary(max_size=40),
        )
    ),
    max_leaves=16,
)
MESSAGES = st.builds(
    lambda kind, rest: {**rest, "type": kind},
    st.sampled_from(["start", "image", "end"]),
    st.dictionaries(st.text(max_size=6), TREES, max_size=5),
)


def _decodes_or_raises_decode_error(frame: bytes, decoding: bool = True) -> None:
    try:
        message = decode_stream2(frame, decoding)
    except DecodeError:
        return
    assert isinstance(message, dict)
    assert_plain(message)


@settings(deadline=None)
@given(mutated_frames(), st.booleans())
def test_fuzzed_frames_raise_only_decode_errors(frame, decoding):
    _decodes_or_raises_decode_error(frame, decoding)


@settings(deadline=None)
@given(MESSAGES, st.booleans(), st.booleans())
def test_arbitrary_cbor_trees_with_stream2_tags_raise_only_decode_errors(message, prefix, decoding):
    _decodes_or_raises_decode_error(cbor(message, prefix), decoding)


@pytest.fixture
def one_pair(stream_pair):
    """One sender/receiver pair shared by all examples of a hypothesis test."""
    return stream_pair()


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=mutated_frames())
def test_fuzzed_frames_through_a_stream_then_a_valid_one(one_pair, frame):
    sender, receiver = one_pair
    sender.send(frame)
    result = receiver.receive()
    assert result is None or isinstance(result.data, dict)
    sender.send(GOOD_IMAGE)
    assert_same(receiver.receive().data, CASES["stream2_image"]()[2])


def test_image_id_gaps_are_counted(stream_pair):
    sender, receiver = stream_pair()
    for image_id in (0, 1, 3):
        sender.send(encode_stream2({"type": "image", "series_id": 4, "image_id": image_id}))
        assert receiver.receive() is not None
    assert receiver.statistics.missed == 1
    assert receiver.statistics.messages_by_htype == {"dectris-stream2": 3}


# -- hostile structure: value sharing, self-reference, nesting --------------------------


def _uint(number: int) -> bytes:
    return bytes([number]) if number < 24 else bytes([0x18, number])


def shared_doubling(levels: int) -> bytes:
    """A message whose value refers twice to the one before, ``levels`` times: a few bytes
    per level, 2**levels values if every reference were copied."""
    # Shareables are numbered in the order they start, so the outermost is number 0 and
    # the one at nesting level k (from the outside) refers to number k + 1.
    value = b"\xd8\x1c\x80"  # the innermost: []
    for level in range(levels - 1, -1, -1):
        reference = b"\xd8\x1d" + _uint(level + 1)
        value = b"\xd8\x1c\x82" + value + reference
    return b"\xa2" + cbor2.dumps("type") + cbor2.dumps("image") + cbor2.dumps("x") + value


def test_shared_values_stay_shared_and_decode_in_linear_time():
    frame = shared_doubling(40)
    assert len(frame) < 300
    message = decode_stream2(frame)
    value, depth = message["x"], 0
    while value:
        assert value[0] is value[1]
        value, depth = value[0], depth + 1
    assert depth == 40


def test_a_value_that_contains_itself_is_refused():
    frame = b"\xa2" + cbor2.dumps("type") + cbor2.dumps("end") + cbor2.dumps("x")
    with pytest.raises(MalformedMessageError, match="itself"):
        decode_stream2(frame + b"\xd8\x1c\x81\xd8\x1d\x00")


@pytest.mark.parametrize(
    "opening, closing", [(b"\x81", b""), (b"\x9f", b"\xff")], ids=["definite", "indefinite"]
)
def test_nesting_deeper_than_the_cap_is_refused(opening, closing):
    from mflow.handlers.stream2 import MAX_DEPTH

    def nested(levels):
        return (
            b"\xa2"
            + cbor2.dumps("type")
            + cbor2.dumps("end")
            + cbor2.dumps("x")
            + opening * levels
            + b"\x00"
            + closing * levels
        )

    assert decode_stream2(nested(MAX_DEPTH - 2))["type"] == "end"
    with pytest.raises(MalformedMessageError, match="deeper"):
        decode_stream2(nested(MAX_DEPTH + 1))


# -- zero copy --------------------------------------------------------------------------


def test_arrays_and_blobs_are_views_on_the_received_frame(stream_pair):
    sender, receiver = stream_pair()
    raw = cbor(image_message(multi_dim(IMAGE, IMAGE.tobytes())))
    sender.send(raw)
    sender.send(GOOD_IMAGE)
    image = receiver.receive().data["data"]["threshold_1"]
    assert not image.flags.owndata and np.array_equal(image, IMAGE)
    blob = receiver.receive(decode=False).data["data"]["threshold_1"]
    assert isinstance(blob.data, memoryview) and blob.data.obj is not None
    assert_same(blob.decode(), CASES["stream2_image"]()[2]["data"]["threshold_1"])


def test_cbor_is_recognised_without_parsing_it_as_json():
    from mflow.receiver import ReceiveHandler

    receiver = ReceiveHandler(None)
    receiver.load([GOOD_IMAGE])
    receiver.header = None  # dispatch must not call it for a CBOR frame
    assert dispatch.dispatch_key(receiver) == dispatch.STREAM2


def test_a_received_image_is_never_parsed_as_json(stream_pair, monkeypatch):
    import mflow.receiver

    parsed = []
    monkeypatch.setattr(
        mflow.receiver, "parse_json", lambda data: parsed.append(bytes(data[:1])) or {}
    )
    sender, receiver = stream_pair()
    sender.send(GOOD_IMAGE)
    message = receiver.receive(decode=False)
    assert message is not None and message.data["type"] == "image"
    assert parsed == []  # a megabyte frame copied and parsed only to fail, once per image


# -- decoded-bytes budget ---------------------------------------------------------------


def start_message(x: int, y: int, channels: int = 1) -> bytes:
    return cbor(
        {
            "type": "start",
            "series_id": 1,
            "image_size_x": x,
            "image_size_y": y,
            "image_dtype": "uint16",
            "channels": [f"c{n}" for n in range(channels)],
        }
    )


def compressed_image(array: np.ndarray) -> cbor2.CBORTag:
    return multi_dim(array, cbor2.CBORTag(56500, ["bslz4", 2, bslz4_blob(array)]))


def test_the_start_message_sets_the_budget_of_the_images(stream_pair):
    sender, receiver = stream_pair()
    big = np.zeros((50, 70), "<u2")
    sender.send(cbor(image_message(compressed_image(big))))  # no start message yet: 2 GiB
    sender.send(start_message(7, 5))
    sender.send(cbor(image_message(compressed_image(IMAGE))))
    sender.send(cbor(image_message(compressed_image(big))))
    assert receiver.receive().data["data"]["threshold_1"].shape == (50, 70)
    assert receiver.receive().data["type"] == "start"
    assert np.array_equal(receiver.receive().data["data"]["threshold_1"], IMAGE)
    refused = receiver.receive().data
    assert refused["data"]["threshold_1"] is None
    assert "DecodedSizeError" in refused["payload_errors"]["data.threshold_1"]
    assert receiver.statistics.payload_errors == {"decoded_size": 1}


def test_the_budget_covers_all_channels_of_a_message(stream_pair):
    sender, receiver = stream_pair(max_decoded_bytes=2 * IMAGE.nbytes)
    channels = {f"c{n}": compressed_image(IMAGE) for n in range(3)}
    sender.send(cbor({"type": "image", "series_id": 1, "image_id": 0, "data": channels}))
    data = receiver.receive().data
    assert [value is None for value in data["data"].values()] == [False, False, True]
    assert list(data["payload_errors"]) == ["data.c2"]
