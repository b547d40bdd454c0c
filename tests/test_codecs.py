"""Tests of mflow.codecs against the reference libraries, and of its error behaviour."""

from __future__ import annotations

import struct
import threading

import bitshuffle
import lz4.block
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mflow import _openmp, codecs
from mflow.codecs import (
    decode_bslz4,
    decode_bsread,
    decode_bsread_lz4,
    decode_hdf5_lz4,
    decode_lz4_block,
    decode_stream2,
    encode_bslz4,
    encode_bsread_lz4,
    encode_hdf5_lz4,
    encode_lz4_block,
)
from mflow.errors import CompressionError, ConfigurationError, DecodeError

# (dtype, element count): odd sizes leave a partial last block and a raw tail.
CASES = [
    ("uint8", 1003),
    ("uint16", 1001),
    ("uint32", 5001),
    ("uint64", 777),
    ("int64", 8),
    ("float64", 1029),
    ("int16", 4096 * 3),
    ("uint16", 5),
    ("uint8", 1),
]
CASE_IDS = [f"{n}x{dt}" for dt, n in CASES]


def sample(dtype, count, seed=0):
    """Detector-like data: mostly small counts, compressible but not trivially."""
    rng = np.random.default_rng(seed)
    return rng.poisson(2.0, count).astype(dtype)


def header(nbytes, block_bytes):
    return struct.pack(">QI", nbytes, block_bytes)


def assert_decoded(out, expected):
    assert out.dtype == expected.dtype
    assert out.shape == expected.shape
    assert out.flags.writeable
    assert out.tobytes() == expected.tobytes()


# --- bitshuffle-LZ4 -----------------------------------------------------------------------


@pytest.mark.parametrize(("dtype", "count"), CASES, ids=CASE_IDS)
def test_bslz4_matches_bitshuffle(dtype, count):
    data = sample(dtype, count)
    blob = encode_bslz4(data)
    block_bytes = max(128, 8192 // data.itemsize // 8 * 8) * data.itemsize
    assert blob == header(data.nbytes, block_bytes) + bitshuffle.compress_lz4(data).tobytes()
    assert_decoded(decode_bslz4(blob, dtype, count), data)
    body = np.frombuffer(blob[12:], np.uint8)
    assert_decoded(bitshuffle.decompress_lz4(body, data.shape, data.dtype, 0), data)


@pytest.mark.parametrize(("dtype", "count"), CASES, ids=CASE_IDS)
def test_bslz4_header_variants(dtype, count):
    data = sample(dtype, count, seed=1)
    blob = encode_bslz4(data)
    body = blob[12:]
    assert_decoded(decode_bslz4(bytes(12) + body, dtype, count), data)  # zeroed header
    assert_decoded(decode_bslz4(body, dtype, count), data)  # no header
    assert_decoded(decode_bslz4(blob, dtype), data)  # size taken from the header


@pytest.mark.parametrize("block", [8, 256, 1000, 100_000])
def test_bslz4_block_size_from_header(block):
    data = sample("uint16", 5001)
    blob = encode_bslz4(data, block_size=block)
    assert blob[8:12] == struct.pack(">I", block * 2)
    assert blob[12:] == bitshuffle.compress_lz4(data, block).tobytes()
    assert_decoded(decode_bslz4(blob, "uint16", 5001), data)


def test_bslz4_shapes_and_dtypes():
    image = sample("uint16", 12 * 34).reshape(12, 34)
    blob = encode_bslz4(image)
    assert_decoded(decode_bslz4(blob, np.uint16, (12, 34)), image)
    assert_decoded(decode_bslz4(blob, "<u2", [12, 34]), image)
    assert_decoded(decode_bslz4(blob, np.dtype("uint16"), np.int64(408)), image.reshape(-1))
    # The encoder reads raw bytes as the given dtype.
    assert encode_bslz4(image.tobytes(), dtype="uint16") == blob
    assert encode_bslz4(image.view(np.uint8), dtype=np.uint16) == blob


def test_bslz4_empty():
    blob = encode_bslz4(np.zeros(0, np.uint32))
    assert blob == header(0, 8192)
    assert_decoded(decode_bslz4(blob, "uint32", 0), np.zeros(0, np.uint32))
    assert decode_bslz4(blob, "uint32").shape == (0,)


def test_bslz4_rejects_wrong_sizes():
    data = sample("uint16", 1001)
    blob = encode_bslz4(data)
    with pytest.raises(CompressionError, match="header states 2002"):
        decode_bslz4(blob, "uint16", 1000)
    with pytest.raises(CompressionError):
        decode_bslz4(blob, "uint32", 1001)
    with pytest.raises(CompressionError):
        decode_bslz4(blob[:-1], "uint16", 1001)
    with pytest.raises(CompressionError):
        decode_bslz4(blob + b"\0", "uint16", 1001)
    with pytest.raises(CompressionError):
        decode_bslz4(blob[12:], "uint16")  # no header, no shape: size unknown
    with pytest.raises(CompressionError, match="not a whole number"):
        decode_bslz4(header(2002, 8191) + blob[12:], "uint16", 1001)


def test_bslz4_corrupt_block_length_is_caught_before_decoding():
    data = sample("uint32", 5001)
    blob = bytearray(encode_bslz4(data))
    blob[12:16] = struct.pack(">I", 0xFFFFFFF0)
    with pytest.raises(CompressionError, match="truncated|take"):
        decode_bslz4(blob, "uint32", 5001)


# --- plain LZ4 block (Stream V1 lz4<) ----------------------------------------------------


@pytest.mark.parametrize(("dtype", "count"), CASES, ids=CASE_IDS)
def test_lz4_block_matches_lz4(dtype, count):
    data = sample(dtype, count)
    blob = encode_lz4_block(data)
    assert blob == lz4.block.compress(data.tobytes(), store_size=False)
    assert_decoded(decode_lz4_block(blob, dtype, count), data)
    with pytest.raises(CompressionError):
        decode_lz4_block(blob, dtype, count + 1)
    if count > 1:
        with pytest.raises(CompressionError):
            decode_lz4_block(blob, dtype, count - 1)


def test_lz4_block_needs_shape():
    with pytest.raises(CompressionError):
        decode_lz4_block(encode_lz4_block(b"abc"), "uint8", None)


# --- LZ4 in HDF5 framing (Stream V2 lz4) -------------------------------------------------


@pytest.mark.parametrize(("dtype", "count"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize("block", [0, 64, 1000])
def test_hdf5_lz4_round_trip(dtype, count, block):
    data = sample(dtype, count)
    blob = encode_hdf5_lz4(data, block)
    assert_decoded(decode_hdf5_lz4(blob, dtype, count), data)
    assert_decoded(decode_hdf5_lz4(blob, dtype), data)


def test_hdf5_lz4_layout_and_raw_blocks():
    compressible = np.zeros(3000, np.uint8)
    noise = np.random.default_rng(2).integers(0, 256, 3000, dtype=np.uint8)
    data = np.concatenate([compressible, noise])
    blob = encode_hdf5_lz4(data, 3000)
    assert blob[:12] == header(6000, 3000)
    (first,) = struct.unpack_from(">I", blob, 12)
    assert blob[16 : 16 + first] == lz4.block.compress(compressible.tobytes(), store_size=False)
    (second,) = struct.unpack_from(">I", blob, 16 + first)
    assert second == 3000  # incompressible: stored as is
    assert blob[20 + first :] == noise.tobytes()
    assert_decoded(decode_hdf5_lz4(blob, "uint8", 6000), data)


def test_hdf5_lz4_rejects_bad_blobs():
    data = sample("uint16", 1001)
    blob = encode_hdf5_lz4(data)
    with pytest.raises(CompressionError, match="header states 2002"):
        decode_hdf5_lz4(blob, "uint16", 1000)
    with pytest.raises(CompressionError):
        decode_hdf5_lz4(blob[:-1], "uint16", 1001)
    with pytest.raises(CompressionError, match="unexpected bytes"):
        decode_hdf5_lz4(blob + b"x", "uint16", 1001)
    with pytest.raises(CompressionError, match="block size of 0"):
        decode_hdf5_lz4(header(2002, 0) + blob[12:], "uint16", 1001)
    with pytest.raises(CompressionError, match="shorter"):
        decode_hdf5_lz4(blob[:11], "uint16", 1001)
    # A V1 lz4< blob has no header: it must not be mistaken for one.
    with pytest.raises(CompressionError):
        decode_hdf5_lz4(encode_lz4_block(data), "uint16", 1001)


# --- bsread LZ4 ----------------------------------------------------------------------------


@pytest.mark.parametrize(("dtype", "count"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize("written", ["<", ">"])
@pytest.mark.parametrize("declared", ["<", ">", "little", "big"])
def test_bsread_lz4_either_prefix_order(dtype, count, written, declared):
    data = sample(dtype, count)
    blob = encode_bsread_lz4(data, written)
    assert blob[:4] == struct.pack(written + "I", data.nbytes)
    assert blob[4:] == lz4.block.compress(data.tobytes(), store_size=False)
    assert_decoded(decode_bsread_lz4(blob, dtype, count, declared), data)
    assert_decoded(decode_bsread_lz4(blob, dtype, byteorder=declared), data)


def test_bsread_lz4_python_lz4_framing():
    # lz4.block.compress() with its default store_size writes a little-endian size prefix.
    data = sample("int32", 250)
    blob = lz4.block.compress(data.tobytes())
    assert_decoded(decode_bsread_lz4(blob, "int32", 250, ">"), data)


def test_bsread_lz4_rejects_bad_blobs():
    data = sample("uint32", 1000)
    blob = encode_bsread_lz4(data)
    with pytest.raises(CompressionError, match="4000 bytes, expected 3996"):
        decode_bsread_lz4(blob, "uint32", 999)
    with pytest.raises(CompressionError):
        decode_bsread_lz4(blob[:-3], "uint32", 1000)
    with pytest.raises(CompressionError, match="shorter"):
        decode_bsread_lz4(blob[:3], "uint32")
    with pytest.raises(ConfigurationError):
        decode_bsread_lz4(blob, "uint32", 1000, byteorder="middle")
    empty = encode_bsread_lz4(b"")
    assert decode_bsread_lz4(empty, "float64").shape == (0,)


# --- reference implementations ---------------------------------------------------------------


def _h5_chunk_round_trip(tmp_path, data, filter_kwargs, our_blob):
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "chunks.h5", "w") as f:
        written = f.create_dataset("by_filter", data=data, chunks=data.shape, **filter_kwargs)
        _, filter_chunk = written.id.read_direct_chunk((0,) * data.ndim)
        ours = f.create_dataset(
            "by_us", shape=data.shape, dtype=data.dtype, chunks=data.shape, **filter_kwargs
        )
        ours.id.write_direct_chunk((0,) * data.ndim, our_blob)
        read_back = ours[()]
    return bytes(filter_chunk), read_back


@pytest.mark.parametrize(("dtype", "count"), CASES[:5], ids=CASE_IDS[:5])
def test_bslz4_hdf5plugin(tmp_path, dtype, count):
    hdf5plugin = pytest.importorskip("hdf5plugin")
    data = sample(dtype, count)
    blob = encode_bslz4(data)
    bitshuffle_lz4 = hdf5plugin.Bitshuffle(cname="lz4")
    chunk, read_back = _h5_chunk_round_trip(tmp_path, data, bitshuffle_lz4, blob)
    assert chunk == blob
    assert_decoded(decode_bslz4(chunk, dtype, count), data)
    assert read_back.tobytes() == data.tobytes()


@pytest.mark.parametrize(("dtype", "count"), CASES[:5], ids=CASE_IDS[:5])
def test_hdf5_lz4_hdf5plugin(tmp_path, dtype, count):
    hdf5plugin = pytest.importorskip("hdf5plugin")
    data = sample(dtype, count)
    blob = encode_hdf5_lz4(data)
    chunk, read_back = _h5_chunk_round_trip(tmp_path, data, hdf5plugin.LZ4(), blob)
    # Same framing; the LZ4 bytes themselves may differ between LZ4 library versions.
    assert chunk[:12] == blob[:12]
    assert_decoded(decode_hdf5_lz4(chunk, dtype, count), data)
    assert read_back.tobytes() == data.tobytes()


@pytest.mark.parametrize(("dtype", "count"), CASES, ids=CASE_IDS)
def test_dectris_compression(dtype, count):
    compression = pytest.importorskip(
        "dectris.compression",
        reason="dectris-compression is not installed: it compiles from source, so it is the "
        "optional `reference` extra (./dev test installs it)",
    )
    data = sample(dtype, count)
    raw = data.tobytes()
    assert compression.decompress(encode_bslz4(data), "bslz4", elem_size=data.itemsize) == raw
    assert compression.decompress(encode_hdf5_lz4(data), "lz4") == raw


# --- input types, limits, helpers --------------------------------------------------------------


def test_accepts_any_bytes_like_blob():
    data = sample("uint16", 1001)
    blob = encode_bslz4(data)
    for variant in (
        blob,
        bytearray(blob),
        memoryview(blob),
        zmq.Frame(blob),
        np.frombuffer(blob, np.uint8),
        np.repeat(np.frombuffer(blob, np.uint8), 2)[::2],  # not contiguous
        np.frombuffer(blob, np.int8).reshape(1, -1),  # other format, 2-D
    ):
        assert_decoded(decode_bslz4(variant, "uint16", 1001), data)
    with pytest.raises(CompressionError, match="bytes-like"):
        decode_bslz4("not bytes", "uint16", 1001)
    with pytest.raises(ConfigurationError):
        encode_lz4_block("not bytes")


@pytest.mark.parametrize(
    "decode",
    [decode_bslz4, decode_hdf5_lz4, decode_lz4_block, decode_bsread_lz4],
)
def test_empty_blob(decode):
    with pytest.raises(CompressionError):
        decode(b"", "uint16", 10)


@pytest.mark.parametrize(
    ("dtype", "shape"),
    [("uint16", (-1, 5)), ("uint16", 2.5), ("object", 4), ("no-such-type", 4), ("V0", 4)],
)
def test_invalid_targets(dtype, shape):
    blob = encode_bslz4(np.zeros(16, np.uint8))
    for decode in (decode_bslz4, decode_hdf5_lz4, decode_lz4_block, decode_bsread_lz4):
        with pytest.raises(CompressionError):
            decode(blob, dtype, shape)


def test_size_limit(monkeypatch):
    data = np.zeros(4096, np.uint16)
    blobs = {
        decode_bslz4: encode_bslz4(data),
        decode_hdf5_lz4: encode_hdf5_lz4(data),
        decode_lz4_block: encode_lz4_block(data),
        decode_bsread_lz4: encode_bsread_lz4(data),
    }
    monkeypatch.setattr(codecs, "MAX_DECODED_BYTES", 8191)
    for decode, blob in blobs.items():
        with pytest.raises(CompressionError, match="limit"):
            decode(blob, "uint16", 4096)


def test_absurd_declared_sizes_fail_before_allocating():
    for blob in (header(2**40, 8192) + bytes(20), header(2**30, 8192) + bytes(20)):
        with pytest.raises(CompressionError):
            decode_bslz4(blob, "uint8")
        with pytest.raises(CompressionError):
            decode_hdf5_lz4(blob, "uint8")
    with pytest.raises(CompressionError, match="cannot hold"):
        decode_lz4_block(b"\x00" * 10, "uint8", 100_000)
    with pytest.raises(CompressionError):
        decode_bsread_lz4(b"\xff\xff\xff\x7f\x00", "uint8")


def test_name_helpers():
    data = sample("uint16", 1001)
    assert_decoded(decode_stream2("bslz4", encode_bslz4(data), "uint16", 1001), data)
    assert_decoded(decode_stream2("lz4", encode_hdf5_lz4(data), "uint16"), data)
    assert_decoded(decode_bsread("bitshuffle_lz4", encode_bslz4(data), "uint16", 1001, "big"), data)
    big_prefix = encode_bsread_lz4(data, ">")
    assert_decoded(decode_bsread("lz4", big_prefix, "uint16", 1001, "little"), data)
    for helper in (decode_stream2, decode_bsread):
        with pytest.raises(CompressionError, match="unsupported"):
            helper("bszstd", b"", "uint16", 1)
    assert issubclass(CompressionError, DecodeError)


# --- fuzzing: only CompressionError may escape ---------------------------------------------------

ALL_DECODERS = [decode_bslz4, decode_hdf5_lz4, decode_lz4_block, decode_bsread_lz4]
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decode_or_compression_error(decode, blob, dtype, shape):
    try:
        out = decode(blob, dtype, shape)
    except CompressionError:
        return None
    if shape is not None:
        assert out.shape == ((shape,) if isinstance(shape, int) else shape)
    assert out.dtype == np.dtype(dtype)
    return out


@FUZZ
@given(
    blob=st.binary(max_size=300),
    dtype=st.sampled_from(["uint8", "uint16", "uint32", "uint64"]),
    shape=st.one_of(
        st.none(), st.integers(0, 2000), st.tuples(st.integers(0, 40), st.integers(0, 40))
    ),
)
def test_random_blobs(blob, dtype, shape):
    for decode in ALL_DECODERS:
        if decode is decode_lz4_block and shape is None:
            continue
        _decode_or_compression_error(decode, blob, dtype, shape)


def _valid_blobs(dtype, count, seed):
    data = sample(dtype, count, seed)
    body = encode_bslz4(data)[12:]
    return data, [
        (decode_bslz4, encode_bslz4(data)),
        (decode_bslz4, encode_bslz4(data, block_size=64)),
        (decode_bslz4, bytes(12) + body),
        (decode_bslz4, body),
        (decode_hdf5_lz4, encode_hdf5_lz4(data, 100)),
        (decode_lz4_block, encode_lz4_block(data)),
        (decode_bsread_lz4, encode_bsread_lz4(data, ">")),
    ]


@FUZZ
@given(
    case=st.sampled_from(CASES[:6]),
    seed=st.integers(0, 3),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
    extra=st.binary(max_size=8),
)
def test_mutated_blobs(case, seed, edits, cut, extra):
    dtype, count = case
    data, blobs = _valid_blobs(dtype, count, seed)
    for decode, blob in blobs:
        mutated = bytearray(blob)
        for position, value in edits:
            mutated[position % len(mutated)] = value
        if cut is not None:
            mutated = mutated[: cut % (len(mutated) + 1)]
        mutated += extra
        for shape in (count, None) if decode is not decode_lz4_block else (count,):
            _decode_or_compression_error(decode, bytes(mutated), dtype, shape)


@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (0, 0)])
def test_empty_two_dimensional_arrays_encode_and_decode(shape):
    empty = np.zeros(shape, "<u2")
    assert codecs.decode_lz4_block(codecs.encode_lz4_block(empty), "<u2", shape).shape == shape
    assert codecs.decode_bslz4(codecs.encode_bslz4(empty), "<u2", shape).shape == shape
    assert codecs.decode_hdf5_lz4(codecs.encode_hdf5_lz4(empty), "<u2", shape).shape == shape


@pytest.mark.parametrize(
    "decode, blob",
    [
        (
            lambda blob, **kw: codecs.decode_lz4_block(blob, "u1", 4096, **kw),
            codecs.encode_lz4_block(bytes(4096)),
        ),
        (
            lambda blob, **kw: codecs.decode_bslz4(blob, "u1", **kw),
            codecs.encode_bslz4(bytes(4096)),
        ),
        (
            lambda blob, **kw: codecs.decode_hdf5_lz4(blob, "u1", **kw),
            codecs.encode_hdf5_lz4(bytes(4096)),
        ),
        (
            lambda blob, **kw: codecs.decode_bsread_lz4(blob, "u1", **kw),
            codecs.encode_bsread_lz4(bytes(4096)),
        ),
    ],
    ids=["lz4 block", "bitshuffle-lz4", "hdf5 lz4", "bsread lz4"],
)
def test_max_bytes_refuses_a_bigger_result_unread(decode, blob):
    from mflow.errors import DecodedSizeError

    assert decode(blob, max_bytes=4096).nbytes == 4096
    with pytest.raises(DecodedSizeError, match="limit of 4095 bytes"):
        decode(blob, max_bytes=4095)


def _threads_after(threads: int | None, call) -> int:
    """OpenMP's thread count (of bitshuffle's runtime) in a fresh thread after one call."""
    seen: list[int] = []

    def run() -> None:
        call()
        seen.append(_openmp._openmp.omp_get_max_threads())

    if threads is not None:
        codecs.set_decoder_threads(threads)
    try:
        thread = threading.Thread(target=run)
        thread.start()
        thread.join(timeout=30)
    finally:
        codecs.set_decoder_threads(1)
    assert len(seen) == 1
    return seen[0]


@pytest.mark.skipif(_openmp._openmp is None, reason="bitshuffle built without OpenMP")
@pytest.mark.parametrize("threads", [None, 1, 3])
@pytest.mark.parametrize("coder", ["decode_bslz4", "encode_bslz4", "decode_bsread"])
def test_bitshuffle_runs_on_the_configured_openmp_threads(threads, coder):
    values = np.arange(1024, dtype="<f8")
    blob = encode_bslz4(values)
    call = {
        "decode_bslz4": lambda: decode_bslz4(blob, "<f8", 1024),
        "encode_bslz4": lambda: encode_bslz4(values),
        "decode_bsread": lambda: decode_bsread("bitshuffle_lz4", blob, "<f8", 1024),
    }[coder]
    assert _threads_after(threads, call) == (1 if threads is None else threads)


def test_set_decoder_threads_refuses_less_than_one():
    with pytest.raises(ValueError, match="at least 1"):
        codecs.set_decoder_threads(0)


# -- out=: decoding into a given array ---------------------------------------------------

_OUT_CODECS = {
    "bslz4": (encode_bslz4, lambda blob, dt, n, **kw: decode_bslz4(blob, dt, n, **kw)),
    "lz4_block": (encode_lz4_block, lambda blob, dt, n, **kw: decode_lz4_block(blob, dt, n, **kw)),
    "hdf5_lz4": (
        lambda data: encode_hdf5_lz4(data, block_size=1000),
        lambda blob, dt, n, **kw: decode_hdf5_lz4(blob, dt, n, **kw),
    ),
    "bsread_lz4": (
        encode_bsread_lz4,
        lambda blob, dt, n, **kw: decode_bsread_lz4(blob, dt, n, **kw),
    ),
    "stream2_bslz4": (
        encode_bslz4,
        lambda blob, dt, n, **kw: decode_stream2("bslz4", blob, dt, n, **kw),
    ),
    "bsread_bslz4": (
        encode_bslz4,
        lambda blob, dt, n, **kw: decode_bsread("bitshuffle_lz4", blob, dt, n, **kw),
    ),
}


@pytest.mark.parametrize("codec", sorted(_OUT_CODECS))
@pytest.mark.parametrize("dtype, count", CASES)
def test_out_receives_the_decoded_data(codec, dtype, count):
    encode, decode = _OUT_CODECS[codec]
    data = (np.arange(count) * 7 % 251).astype(dtype)
    out = np.full(count, 3, dtype)
    result = decode(encode(data), dtype, count, out=out)
    assert result is out
    np.testing.assert_array_equal(out, data)


@pytest.mark.parametrize("codec", sorted(_OUT_CODECS))
def test_out_of_another_shape_is_reshaped_as_a_view(codec):
    encode, decode = _OUT_CODECS[codec]
    data = np.arange(24, dtype="uint16").reshape(4, 6)
    out = np.zeros(24, "uint16")
    result = decode(encode(data), "uint16", (4, 6), out=out)
    assert result.shape == (4, 6) and np.shares_memory(result, out)
    np.testing.assert_array_equal(result, data)


@pytest.mark.parametrize("codec", sorted(_OUT_CODECS))
@pytest.mark.parametrize(
    "out, problem",
    [
        (np.zeros(99, "uint16"), "holds 198 bytes"),
        (np.zeros(100, "int16"), "dtype int16"),
        (np.zeros(100, "uint8"), "dtype uint8"),
        (np.zeros(200, "uint16")[::2], "C-contiguous"),
        (bytearray(200), "numpy array"),
    ],
)
def test_out_that_does_not_fit_is_a_clear_value_error(codec, out, problem):
    encode, decode = _OUT_CODECS[codec]
    blob = encode(np.arange(100, dtype="uint16"))
    with pytest.raises(ValueError, match=problem) as raised:
        decode(blob, "uint16", 100, out=out)
    assert isinstance(raised.value, ConfigurationError)


def test_read_only_out_is_refused():
    out = np.zeros(100, "uint16")
    out.flags.writeable = False
    with pytest.raises(ConfigurationError, match="writable"):
        decode_bslz4(encode_bslz4(np.arange(100, dtype="uint16")), "uint16", 100, out=out)


@pytest.mark.parametrize("codec", ["bslz4", "lz4_block", "hdf5_lz4", "bsread_lz4"])
def test_corrupt_blob_into_out_is_a_compression_error(codec):
    encode, decode = _OUT_CODECS[codec]
    data = (np.arange(5000) % 13).astype("uint32")
    blob = bytearray(encode(data))
    for position in range(20, len(blob), 7):
        blob[position] ^= 0x5A
    with pytest.raises(CompressionError):
        decode(bytes(blob), "uint32", 5000, out=np.zeros(5000, "uint32"))


def test_out_without_the_c_functions_decodes_and_copies(monkeypatch):
    from mflow import _direct

    monkeypatch.setattr(_direct, "bshuf_decompress_lz4", None)
    monkeypatch.setattr(_direct, "lz4_decompress_safe", None)
    monkeypatch.setattr(_direct, "dectris_decompress_bslz4", None)
    data = np.arange(3001, dtype="uint16")
    for codec in ("bslz4", "lz4_block", "hdf5_lz4", "bsread_lz4"):
        encode, decode = _OUT_CODECS[codec]
        out = np.zeros(3001, "uint16")
        assert decode(encode(data), "uint16", 3001, out=out) is out
        np.testing.assert_array_equal(out, data)


def test_the_c_functions_are_found():
    from mflow import _direct

    assert _direct.bshuf_decompress_lz4 is not None
    assert _direct.lz4_decompress_safe is not None


def test_decoding_into_out_releases_the_gil():
    """Another thread sees ``out`` half decoded: it ran during the call (with the GIL held
    it could only see ``out`` before or after)."""
    data = np.random.default_rng(0).poisson(0.5, 4_000_000).astype("uint16")
    blob = encode_bslz4(data)
    unwritten = 0xFFFF  # no pixel of the data has it
    out = np.empty_like(data)
    half_done = threading.Event()
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            first, last = out[[0, -1]]  # one copy in C: both from the same moment
            if first != unwritten and last == unwritten:
                half_done.set()

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        for _ in range(50):  # on a loaded machine a call may pass before the thread runs
            out.fill(unwritten)
            decode_bslz4(blob, "uint16", data.size, out=out)
            if half_done.is_set():
                break
    finally:
        stop.set()
        thread.join(5)
    assert half_done.is_set()
    np.testing.assert_array_equal(out, data)


@pytest.mark.parametrize("with_dectris", [True, False])
@pytest.mark.parametrize("framing", ["header", "zeroed", "none"])
@pytest.mark.parametrize("count", [40_000, 40_005])
def test_large_blobs_decode_the_same_by_every_c_decoder(monkeypatch, with_dectris, framing, count):
    from mflow import _direct

    if with_dectris and _direct.dectris_decompress_bslz4 is None:
        pytest.skip("dectris-compression is not installed")
    if not with_dectris:
        monkeypatch.setattr(_direct, "dectris_decompress_bslz4", None)
    data = sample("uint16", count)
    blob = encode_bslz4(data)
    blob = {"header": blob, "zeroed": bytes(12) + blob[12:], "none": blob[12:]}[framing]
    assert_decoded(decode_bslz4(blob, "uint16", count), data)
    out = np.zeros(count, "uint16")
    assert decode_bslz4(blob, "uint16", count, out=out) is out
    assert_decoded(out, data)
    with pytest.raises(CompressionError):
        decode_bslz4(blob[:-30], "uint16", count, out=out)
