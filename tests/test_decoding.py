"""Tests of frame pools (mflow.framepool) and decode workers (mflow.decoding) on streams."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import zmq

import mflow
from mflow import synthetic
from mflow.errors import CompressionError, ConfigurationError
from mflow.framepool import FramePool
from mflow.handlers.dimage_1_0 import encode_image
from mflow.stream import poll_streams

from .conftest import TIMEOUT_MS, bind_random

pytestmark = pytest.mark.usefixtures("receive_path")


def dimage(frame: int, image: np.ndarray, encoding: str | None = None) -> list[bytes]:
    part_2, blob = encode_image(image, encoding)
    header = {"htype": "dimage-1.0", "series": 1, "frame": frame, "hash": ""}
    return [json.dumps(header).encode(), json.dumps(part_2).encode(), blob, b"{}"]


def images(count: int, shape=(48, 40)) -> list[np.ndarray]:
    return [np.random.default_rng(i).poisson(2, shape).astype("uint16") for i in range(count)]


def corrupt(message: list[bytes]) -> list[bytes]:
    blob = bytearray(message[2])
    for position in range(16, len(blob), 5):
        blob[position] ^= 0xA5
    return [message[0], message[1], bytes(blob), message[3]]


def decode_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("mflow-decode")]


@pytest.fixture
def source(push):
    """Send the given messages on the raw PUSH socket; the endpoint to connect to."""
    socket, endpoint = push

    def send(messages):
        for message in messages:
            socket.send_multipart(message)

    return send, endpoint


@pytest.fixture
def fed(context, stream_factory):
    """``fed(messages, **options)``: a stream (``options``) that is sent ``messages`` by a
    PUSH socket of its own."""
    senders = []

    def make(messages, **options):
        sender = context.socket(zmq.PUSH)
        sender.linger = 0
        sender.sndtimeo = TIMEOUT_MS
        senders.append(sender)
        stream = stream_factory(bind_random(sender), **options)
        for message in messages:
            sender.send_multipart(message)
        return stream

    yield make
    for sender in senders:
        sender.close(linger=0)


def receive_all(stream: mflow.Stream, count: int) -> list:
    return [stream.receive() for _ in range(count)]


# -- the frame pool ------------------------------------------------------------------------


def test_pool_reuses_a_dropped_frame():
    pool = FramePool(2)
    first = pool.acquire("uint16", (10, 10))
    address = first.ctypes.data
    del first
    again = pool.acquire("uint16", (10, 10))
    assert again.ctypes.data == address
    assert (pool.allocated, pool.reused, pool.fresh, pool.in_use) == (1, 1, 0, 1)


def test_pool_keeps_a_frame_while_a_view_of_it_lives():
    pool = FramePool(1)
    view = pool.acquire("uint16", (10, 10))[2:5]
    assert pool.in_use == 1
    other = pool.acquire("uint16", (10, 10))
    assert not np.shares_memory(view, other)
    assert pool.fresh == 1
    del view
    assert pool.in_use == 0


def test_pool_exhausted_falls_back_to_fresh_arrays_and_counts_them():
    pool = FramePool(2)
    held = [pool.acquire("float32", 100) for _ in range(5)]
    assert (pool.allocated, pool.fresh, pool.in_use) == (2, 3, 2)
    assert len({a.ctypes.data for a in held}) == 5
    assert all(a.flags.writeable and a.flags.c_contiguous for a in held)


def test_pool_makes_room_for_a_new_size():
    pool = FramePool(1)
    pool.acquire("uint8", 100)  # dropped at once
    frame = pool.acquire("uint8", 300)
    assert frame.shape == (300,) and pool.fresh == 0 and pool.allocated == 2


@pytest.mark.parametrize("size", [0, -1, 1.5, None])
def test_pool_size_must_be_a_positive_count(size):
    with pytest.raises(ValueError):
        FramePool(size)


# -- streams with a pool ---------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 2])
def test_stream_never_overwrites_a_frame_still_referenced(source, stream_factory, workers):
    send, endpoint = source
    pictures = images(4)
    stream = stream_factory(endpoint, decode_pool=1, decode_workers=workers)
    send([dimage(n, image) for n, image in enumerate(pictures[:2])])
    pool = stream.decode_pool
    assert isinstance(pool, FramePool)
    kept = stream.receive().data["image"]  # holds the only pooled frame
    second = stream.receive().data["image"]
    assert not np.shares_memory(kept, second)
    np.testing.assert_array_equal(kept, pictures[0])
    np.testing.assert_array_equal(second, pictures[1])
    assert pool.fresh >= 1
    address = kept.ctypes.data
    del kept, second
    assert pool.in_use == 0
    send([dimage(n + 2, image) for n, image in enumerate(pictures[2:])])
    rest = [stream.receive().data["image"] for _ in range(2)]
    for image, expected in zip(rest, pictures[2:], strict=True):
        np.testing.assert_array_equal(image, expected)
    assert pool.reused >= 1 and address in {image.ctypes.data for image in rest}


@pytest.mark.parametrize("kind", ["dectris", "stream2"])
@pytest.mark.parametrize("compression", ["bslz4", "lz4"])
def test_pooled_images_equal_fresh_ones(fed, kind, compression):
    spec = synthetic.Spec(shape=(30, 20), images=6, compression=compression)
    _, messages = synthetic.make_source(kind, spec)
    batch = [next(messages) for _ in range(8)]
    expected = [m.data for m in receive_all(fed(batch), 8)]
    pooled = fed(batch, decode_pool=3)
    got = [m.data for m in receive_all(pooled, 8)]
    assert pooled.decode_pool.allocated >= 1
    assert repr(expected) == repr(got)


def test_a_pool_can_be_shared(source, stream_factory):
    send, endpoint = source
    pictures = images(2)
    pool = FramePool(4)
    stream = stream_factory(endpoint, decode_pool=pool)
    send([dimage(n, image) for n, image in enumerate(pictures)])
    assert stream.decode_pool is pool
    image = stream.receive().data["image"]
    assert pool.in_use == 1 and image.base is not None


@pytest.mark.parametrize("bad", [0, -2, "4", 2.0])
def test_decode_pool_and_workers_are_checked(stream_factory, bad):
    with pytest.raises(ConfigurationError):
        stream_factory("tcp://127.0.0.1:1", decode_pool=bad)
    if bad != 0:
        with pytest.raises(ConfigurationError):
            stream_factory("tcp://127.0.0.1:1", decode_workers=bad)


# -- decode workers --------------------------------------------------------------------------


def mixed_messages() -> list[list[bytes]]:
    """Good images, corrupt images, undecodable messages and series messages, interleaved."""
    spec = synthetic.Spec(shape=(36, 28), images=5)
    _, series = synthetic.make_source("dectris", spec)
    messages = [next(series) for _ in range(14)]  # two series of 5 images
    pictures = images(6, (20, 30))
    extra = [dimage(100 + n, image) for n, image in enumerate(pictures)]
    extra[1] = corrupt(extra[1])
    extra[4] = corrupt(extra[4])
    garbage = [[b"not json at all \xff"], [b'{"htype": "no-such-type-1.0"}']]
    return (
        messages[:3]
        + extra[:3]
        + garbage[:1]
        + messages[3:9]
        + extra[3:]
        + garbage[1:]
        + (messages[9:])
    )


def counters(statistics: mflow.Statistics) -> dict:
    return {
        "messages": statistics.messages_received,
        "bytes": statistics.total_bytes_received,
        "pending_bytes": statistics.bytes_received,
        "by_htype": dict(statistics.messages_by_htype),
        "skipped": dict(statistics.skipped),
        "payload_errors": dict(statistics.payload_errors),
        "gaps": (statistics.missed, statistics.duplicated, statistics.reverted),
        "series": statistics.series_started,
    }


@pytest.mark.parametrize("pool", [None, 4])
def test_workers_deliver_in_order_and_count_as_the_serial_path(fed, pool):
    messages = mixed_messages()
    serial = fed(messages)
    expected = [None if m is None else m.data for m in receive_all(serial, len(messages))]
    expected_counts = counters(serial.statistics)
    parallel = fed(messages, decode_workers=2, decode_pool=pool)
    assert parallel.decode_workers == 2
    got = [None if m is None else m.data for m in receive_all(parallel, len(messages))]
    assert repr(got) == repr(expected)
    assert counters(parallel.statistics) == expected_counts
    assert expected_counts["payload_errors"] and expected_counts["skipped"]
    assert sum(m is not None and "image_error" in m for m in got) == 2


def test_workers_keep_order_over_many_messages(source, stream_factory):
    send, endpoint = source
    pictures = images(5)
    count = 60
    stream = stream_factory(endpoint, decode_workers=3, decode_pool=2)
    send([dimage(n, pictures[n % 5]) for n in range(count)])
    for n in range(count):
        message = stream.receive()
        assert message.data["header"]["frame"] == n
        np.testing.assert_array_equal(message.data["image"], pictures[n % 5])
        assert stream.in_flight <= 6
    assert stream.receive(block=False) is None
    assert stream.statistics.messages_received == count


def test_strict_stream_raises_at_the_failing_message(source, stream_factory):
    send, endpoint = source
    pictures = images(3)
    messages = [dimage(n, image) for n, image in enumerate(pictures)]
    stream = stream_factory(endpoint, decode_workers=2, strict=True)
    send([messages[0], corrupt(messages[1]), messages[2]])
    assert stream.receive().data["header"]["frame"] == 0
    with pytest.raises(CompressionError):
        stream.receive()
    assert stream.receive().data["header"]["frame"] == 2
    assert stream.statistics.skipped[CompressionError.reason] == 1
    assert stream.statistics.messages_received == 2


def test_timeout_with_nothing_in_flight_is_counted(push, stream_factory):
    _, endpoint = push
    stream = stream_factory(endpoint, decode_workers=2, receive_timeout=50)
    assert stream.receive() is None
    assert stream.receive(block=False) is None
    assert stream.statistics.skipped == {"timeout": 1}


def test_close_stops_the_threads_and_counts_undelivered_messages(context, stream_factory):
    # inproc: a sent message is in the receiver's queue when send returns
    sender = context.socket(zmq.PUSH)
    sender.bind("inproc://close-test")
    try:
        stream = stream_factory("inproc://close-test", context=context, decode_workers=2)
        for n, image in enumerate(images(8)):
            sender.send_multipart(dimage(n, image))
        assert stream.receive().data["header"]["frame"] == 0
        assert stream.in_flight == 3  # the depth (2 workers: 4) less the one delivered
        assert decode_threads()
        stream.disconnect()
    finally:
        sender.close(linger=0)
    assert not decode_threads()
    statistics = stream.statistics
    assert statistics.messages_received == 1
    assert statistics.skipped["discarded_at_close"] == 7  # 3 in flight, 4 still queued
    assert stream.in_flight == 0


def test_receive_in_flight_delivers_without_taking_more(source, stream_factory):
    send, endpoint = source
    pictures = images(6)
    stream = stream_factory(endpoint, decode_workers=1)
    send([dimage(n, image) for n, image in enumerate(pictures)])
    assert stream.receive().data["header"]["frame"] == 0
    assert stream.in_flight == 1
    assert stream.receive_in_flight().data["header"]["frame"] == 1
    assert stream.receive_in_flight() is None
    assert stream.receive().data["header"]["frame"] == 2


def test_decode_off_for_a_call_leaves_images_compressed(source, stream_factory):
    send, endpoint = source
    stream = stream_factory(endpoint, decode_workers=2)
    send([dimage(0, images(1)[0])])
    message = stream.receive(decode=False)
    assert "image" not in message.data and message.data["part_3_raw"]


def test_serial_stream_has_no_workers(stream_factory, push):
    _, endpoint = push
    stream = stream_factory(endpoint)
    assert stream.decode_workers == 0 and stream.in_flight == 0
    assert stream.receive_in_flight() is None
    assert stream.decode_pool is None


@pytest.mark.parametrize("kind", ["stream2", "sls", "bsread", "array", "dectris"])
def test_workers_give_every_message_type_as_the_serial_path(fed, kind):
    spec = synthetic.Spec(shape=(24, 16), images=4)
    if kind == "bsread":
        spec = synthetic.Spec(
            channels=(("a", "float64", (100,)), ("b", "uint16", (8, 8))), compression="bslz4"
        )
    _, source = synthetic.make_source(kind, spec)
    messages = [next(source) for _ in range(12)]
    serial = fed(messages, decode_pool=2)
    expected = [m.data for m in receive_all(serial, len(messages))]
    parallel = fed(messages, decode_workers=2, decode_pool=2)
    got = [m.data for m in receive_all(parallel, len(messages))]
    assert repr(got) == repr(expected)
    assert counters(parallel.statistics) == counters(serial.statistics)


def test_workers_keep_a_bsread_message_s_payload_errors(fed):
    from .test_bsread import CORRUPT_CHANNEL

    stream = fed([CORRUPT_CHANNEL], decode_workers=2)
    message = stream.receive().data
    assert message["data"] == {"bad": None, "good": 7}
    assert message["payload_errors"]["bad"].startswith("CompressionError")
    assert stream.statistics.payload_errors == {"compression_error": 1}


def test_poll_sees_the_messages_the_workers_have_taken(source, stream_factory):
    send, endpoint = source
    stream = stream_factory(endpoint, decode_workers=1)
    send([dimage(n, image) for n, image in enumerate(images(2))])
    assert stream.receive().data["header"]["frame"] == 0
    assert stream.in_flight == 1  # the socket has nothing left: the workers took it
    assert stream.poll(0) and poll_streams([stream], 0) == [stream]
    assert stream.receive().data["header"]["frame"] == 1
