"""The compiled receive path: built where it can be, and equal to the pure Python path."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import sysconfig
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

import mflow
from mflow import _fastpath
from mflow.handlers import receive_handlers
from mflow.statistics import SequenceGaps, Statistics

from .conftest import TIMEOUT_MS


def array_header(**fields: Any) -> bytes:
    return json.dumps({"htype": "array-1.0", "type": "uint16", "shape": [2, 3], **fields}).encode()


SIX = np.arange(6, dtype=np.uint16).tobytes()

#: Messages that take every branch of both paths: decoded in C, handed back to Python,
#: skipped, counted in sequences.
MESSAGES: list[list[bytes]] = [
    [array_header(pulse_id=1, source="a"), SIX],
    [array_header(pulse_id=3, source="a"), SIX, SIX],
    [array_header(pulse_id=3, source="a"), SIX],
    [array_header(pulse_id=2, source="a"), b"", SIX],
    [array_header(pulse_id=2**40, source="b"), SIX],
    [array_header(pulse_id=True, frame=7, series="s"), SIX],
    [array_header(frame=9, series="s"), SIX],
    [array_header(image_id=4, series_id=12, source=None), SIX],
    [array_header(frameIndex=1, source=[1, 2]), SIX],
    [array_header(frameIndex=3, source=[1, 2]), SIX],
    [array_header(type=">i4", shape=2, pulse_id=5), b"\x00\x00\x00\x01\x00\x00\x00\x02"],
    [array_header(type="|u1", shape=[]), b"\x07"],
    [array_header(type="float64", shape=[-1]), np.arange(3.0).tobytes()],
    [array_header(shape=[2, 4]), SIX],
    [array_header(type="no such type"), SIX],
    [array_header(type="O", shape=[1]), b"12345678"],
    [array_header(shape=[True, 3]), SIX],
    [array_header(shape="23"), SIX],
    [json.dumps({"htype": "array-1.0", "shape": [2, 3]}).encode(), SIX],
    [array_header()],
    [b'  {"htype": "array-1.0", "type": "uint16", "shape": [3], "x": NaN}', SIX[:6]],
    [json.dumps({"htype": "raw-1.0", "frame": 10, "series": "s"}).encode(), b"raw"],
    [b"{}", SIX],
    [b"[1, 2]", SIX],
    [b"{not json", SIX],
    [b"", SIX],
    [array_header(pulse_id=6), SIX],
]


def comparable(value: Any) -> Any:
    """``value`` with arrays replaced by what identifies them, for equality checks."""
    if isinstance(value, np.ndarray):
        return (
            "array",
            value.dtype.str,
            value.shape,
            value.tobytes(),
            value.flags.writeable,
            isinstance(value.base, _fastpath.FRAME_TYPES),
        )
    if isinstance(value, dict):
        return {key: comparable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [comparable(item) for item in value]
    if isinstance(value, float) and value != value:
        return "nan"
    return value


def receive_all(
    path: str, monkeypatch: pytest.MonkeyPatch, context: zmq.Context
) -> tuple[list[Any], mflow.Stream]:
    """Send MESSAGES to a new stream on ``path`` ("compiled" or "python"); what it got."""
    if path == "python":
        monkeypatch.setenv("MFLOW_PURE_PYTHON", "1")
    else:
        monkeypatch.delenv("MFLOW_PURE_PYTHON", raising=False)
    socket = context.socket(zmq.PUSH)
    socket.sndtimeo = TIMEOUT_MS
    socket.bind("tcp://127.0.0.1:*")
    stream = mflow.connect(socket.last_endpoint.decode(), receive_timeout=TIMEOUT_MS)
    assert (stream._speedups is not None) == (path == "compiled")
    try:
        results = []
        for parts in MESSAGES:
            socket.send_multipart(parts)
            message = stream.receive()
            results.append(None if message is None else comparable(message.data))
    finally:
        stream.disconnect()
        socket.close(linger=0)
    return results, stream


def test_compiled_path_is_built_where_a_compiler_is(monkeypatch):
    monkeypatch.delenv("MFLOW_PURE_PYTHON", raising=False)
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"], "Python.h")
    if not shutil.which(compiler) or not headers.exists():
        pytest.skip("no C compiler or Python headers: mflow runs on the pure Python path")
    assert _fastpath.speedups() is not None


def test_both_paths_decode_and_count_every_message_alike(monkeypatch, context):
    outcomes, times = {}, {}
    if _fastpath.speedups() is None:
        pytest.skip("the compiled receive path is not built")
    for path in ("compiled", "python"):
        results, stream = receive_all(path, monkeypatch, context)
        stats = stream.statistics
        counters = stats.as_dict()
        times[path] = counters.pop("last_message_time")
        fields = vars(stats).copy()
        fields.pop("last_message_time")
        outcomes[path] = (results, counters, fields)
    compiled, python = outcomes["compiled"], outcomes["python"]
    assert compiled[0] == python[0]
    assert compiled[1:] == python[1:]
    # every field, the clock too: both runs took place within the last minute
    assert set(vars(stream.statistics)) >= {"last_message_time", "sequences"}
    for path in times:
        assert abs(times[path] - time.time()) < 60, path
    # and the outcomes are the ones meant, not just equal
    results, counters, fields = python
    sequences = fields["sequences"]
    assert results[0]["data"][0][2] == (2, 3)
    assert results[3]["data"][0] is None
    assert sum(result is None for result in results) == 10
    assert counters["messages_by_htype"] == {"array-1.0": 16, "raw-1.0": 1}
    assert counters["skipped"] == {"malformed": 6, "bad_header": 4}
    assert (sequences["a"].missed, sequences["a"].duplicated, sequences["a"].reverted) == (1, 1, 1)
    assert (sequences["s"].last, sequences["s"].missed) == (10, 1)  # frames 7, 9, 10
    assert (sequences[None].last, sequences[None].missed) == (6, 0)  # 4, 5, 6
    assert counters["unusable_source"] == 2 and repr([1, 2]) not in sequences


def test_successful_decodes_leak_nothing(receive_path, pull_stream):
    socket, stream = pull_stream

    def receive(count: int) -> None:
        for pulse_id in range(count):
            socket.send_multipart([array_header(pulse_id=pulse_id, source="a"), SIX, SIX])
            message = stream.receive()
            assert message.data["data"][1].shape == (2, 3)
            del message

    receive(200)  # caches and free lists warm up
    before = sys.getallocatedblocks()
    receive(3000)
    assert sys.getallocatedblocks() - before < 300  # a leaked object per message: >= 3000


def test_a_statistics_subclass_is_called_on_both_paths(receive_path, push):
    class Counting(Statistics):
        calls = 0

        def message_succeeded(self, htype, header=None):
            Counting.calls += 1
            super().message_succeeded(htype, header)

    socket, endpoint = push
    stream = mflow.Stream()
    stream.statistics = Counting()
    stream.connect(endpoint, receive_timeout=TIMEOUT_MS)
    try:
        socket.send_multipart([array_header(pulse_id=1), SIX])
        message = stream.receive()
    finally:
        stream.disconnect()
    assert message.data["data"][0].shape == (2, 3)
    assert Counting.calls == 1
    assert stream.statistics.total_bytes_received == len(array_header(pulse_id=1)) + len(SIX)


def test_a_replaced_array_handler_is_used_on_both_paths(receive_path, monkeypatch, pull_stream):
    socket, stream = pull_stream
    monkeypatch.setitem(
        receive_handlers,
        "array-1.0",
        lambda receiver: {"replaced": receiver.next(as_json=True)["pulse_id"]},
    )
    socket.send_multipart([array_header(pulse_id=42), SIX])
    assert stream.receive().data == {"replaced": 42}


def test_received_frames_behave_like_zmq_frames(receive_path, pull_stream):
    socket, stream = pull_stream
    socket.send_multipart([b"head", b"", b"payload"])
    frames = stream.receive_parts()
    assert all(isinstance(frame, _fastpath.FRAME_TYPES) for frame in frames)
    assert [len(frame) for frame in frames] == [4, 0, 7]
    assert [frame.bytes for frame in frames] == [b"head", b"", b"payload"]
    assert [frame.more for frame in frames] == [True, True, False]
    view = frames[2].buffer
    view[0] = ord("P")  # writable, and no copy: the frame sees it
    assert bytes(frames[2]) == b"Payload"
    array = np.frombuffer(frames[2], np.uint8)
    assert array.flags.writeable and array.base is frames[2]


def test_the_compiled_events_are_the_sockets_events(pull_stream):
    socket, stream = pull_stream
    speedups = _fastpath.speedups()
    if speedups is None or stream._speedups is None:
        pytest.skip("the compiled receive path is not built here")
    read = lambda: speedups.events(stream._handle)  # noqa: E731
    assert read() & zmq.POLLIN == 0
    socket.send_multipart([b"a", b"b"])
    assert stream.socket.poll(TIMEOUT_MS, zmq.POLLIN)
    assert read() == stream.socket.getsockopt(zmq.EVENTS) and read() & zmq.POLLIN
    assert stream.receive_parts() is not None
    assert read() & zmq.POLLIN == 0


def test_received_frames_are_forwarded_to_several_outputs(receive_path, stream_factory, push):
    socket, endpoint = push
    source = stream_factory(endpoint)
    outputs = [
        stream_factory(
            "tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUSH, send_timeout=TIMEOUT_MS
        )
        for _ in range(2)
    ]
    sinks = [stream_factory(output.endpoint) for output in outputs]
    big = os.urandom(200_000)
    socket.send_multipart([b"small", big, b""])
    frames = source.receive_parts()
    for output in outputs:
        assert output.send_multipart(frames)
        # mixed parts: an array, large bytes and a frame go through pyzmq or C alike
        assert output.send_multipart([np.arange(3, dtype=np.uint8), big, frames[0]])
    for sink in sinks:
        assert [bytes(f) for f in sink.receive_parts()] == [b"small", big, b""]
        assert [bytes(f) for f in sink.receive_parts()] == [b"\x00\x01\x02", big, b"small"]


def test_a_signal_handler_can_interrupt_a_blocking_receive(receive_path, stream_factory, push):
    class Interrupted(Exception):
        pass

    def interrupt(signum, frame):
        raise Interrupted

    _, endpoint = push
    stream = stream_factory(endpoint, receive_timeout=30_000)
    done = threading.Event()

    def keep_signalling():
        while not done.wait(0.02):
            os.kill(os.getpid(), signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, interrupt)
    signaller = threading.Thread(target=keep_signalling)
    started = time.monotonic()
    try:
        with pytest.raises(Interrupted):
            signaller.start()
            stream.receive()
    finally:
        done.set()
        signaller.join()
        signal.signal(signal.SIGUSR1, previous)
    assert time.monotonic() - started < 10


def test_a_blocking_receive_lets_other_threads_run(receive_path, stream_factory, push):
    socket, endpoint = push
    stream = stream_factory(endpoint, receive_timeout=20_000)
    waiting = threading.Event()
    received = []

    def receive():
        waiting.set()
        received.append(stream.receive())

    receiver = threading.Thread(target=receive)
    started = time.monotonic()
    receiver.start()
    waiting.wait(TIMEOUT_MS / 1000)
    socket.send_multipart([array_header(), SIX])  # needs the interpreter lock
    receiver.join(30)
    assert received and received[0] is not None
    assert time.monotonic() - started < 15  # not after the receive timed out


def test_receive_ends_a_message_read_frame_by_frame(receive_path, pull_stream):
    socket, stream = pull_stream
    for pulse_id in (1, 2, 3, 4):
        socket.send_multipart([array_header(pulse_id=pulse_id), SIX])
    assert stream.receiver.header()["pulse_id"] == 1  # the 1.0 way: peek at the header
    assert stream.receive().data["header"]["pulse_id"] == 2
    assert stream.receiver.header()["pulse_id"] == 3  # not message 1 again
    assert stream.receive_parts() is not None  # message 4
    assert not stream.receiver.has_more()


def test_replaced_statistics_count_every_message(receive_path, pull_stream):
    socket, stream = pull_stream
    stream.statistics = replaced = Statistics()
    socket.send_multipart([array_header(pulse_id=1), SIX])
    raw = json.dumps({"htype": "raw-1.0"}).encode()
    socket.send_multipart([raw, b"x"])
    messages = [stream.receive(), stream.receive()]
    assert all(message.statistics is replaced for message in messages)
    assert replaced.messages_by_htype == {"array-1.0": 1, "raw-1.0": 1}
    assert replaced.total_bytes_received == len(array_header(pulse_id=1)) + len(SIX) + len(raw) + 1


def test_statistics_methods_patched_on_the_class_are_called(receive_path, monkeypatch, pull_stream):
    calls = []
    for cls, name in (
        (Statistics, "message_succeeded"),
        (Statistics, "observe_sequence"),
        (SequenceGaps, "observe"),
    ):
        original = getattr(cls, name)

        def patched(*args, original=original, name=name):
            calls.append(name)
            return original(*args)

        monkeypatch.setattr(cls, name, patched)
    socket, stream = pull_stream
    socket.send_multipart([array_header(pulse_id=1), SIX])
    assert stream.receive().statistics.messages_received == 1
    assert calls == ["message_succeeded", "observe_sequence", "observe"]
