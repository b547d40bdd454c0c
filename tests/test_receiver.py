"""The receive cursor: 1.0 calls, byte accounting, frame-by-frame use outside receive()."""

from __future__ import annotations

import json

import pytest
import zmq

from mflow.receiver import ReceiveHandler

from .conftest import TIMEOUT_MS

pytestmark = pytest.mark.usefixtures("receive_path")


@pytest.fixture
def pull(context, push):
    socket, endpoint = push
    pull = context.socket(zmq.PULL)
    pull.linger = 0
    pull.rcvtimeo = TIMEOUT_MS
    pull.connect(endpoint)
    yield socket, pull
    pull.close(linger=0)


def loaded(parts, copy=True):
    receiver = ReceiveHandler(None, copy=copy)
    receiver.load(parts if copy else [zmq.Frame(p) for p in parts])
    receiver._in_receive = True
    return receiver


def test_next_counts_bytes_and_stops_at_the_end():
    receiver = loaded([b'{"htype": "x"}', b"abc", b""])
    assert receiver.next(as_json=True) == {"htype": "x"}
    assert receiver.next() == b"abc"
    assert receiver.has_more() == 1
    assert receiver.next() == b""
    assert receiver.has_more() == 0
    assert receiver.next() is None
    assert receiver.statistics.bytes_received == len(b'{"htype": "x"}') + 3


def test_header_is_parsed_once_and_kept_raw():
    receiver = loaded([b'{"a": 1}', b"x"])
    header = receiver.header()
    assert receiver.raw_header == b'{"a": 1}'
    assert receiver.next(as_json=True) is header
    assert receiver.raw_header is None
    # header() itself is not counted (1.0), next() is
    assert receiver.statistics.bytes_received == len(b'{"a": 1}')


def test_zero_copy_frames_are_memoryviews():
    receiver = loaded([b"{}", b"payload", b""], copy=False)
    receiver.next()
    view = receiver.next()
    assert isinstance(view, memoryview) and bytes(view) == b"payload"
    assert not receiver.next()  # an empty frame is falsy (bsread relies on it)


def test_rest_hands_out_every_unread_frame():
    receiver = loaded([b"{}", b"a", b"bb"], copy=False)
    receiver.next()
    assert [bytes(v) for v in receiver.rest()] == [b"a", b"bb"]
    assert receiver.has_more() == 0 and receiver.statistics.bytes_received == 5


def test_json_errors_propagate_to_the_handler():
    receiver = loaded([b"not json"])
    with pytest.raises(ValueError):
        receiver.next(as_json=True)


def test_flush_closes_the_message_accounting():
    receiver = loaded([b"{}", b"abc"])
    receiver.next()
    receiver.flush()
    stats = receiver.statistics
    assert (stats.messages_received, stats.total_bytes_received, stats.bytes_received) == (1, 2, 0)
    receiver.load([b"12345"])
    receiver.next()
    receiver.flush(success=False)
    assert (stats.messages_received, stats.total_bytes_received, stats.bytes_received) == (1, 2, 0)


def test_frame_by_frame_use_reads_from_the_socket(pull):
    """1.0 code may drive the receiver directly, outside Stream.receive()."""
    push, socket = pull
    receiver = ReceiveHandler(socket)
    push.send_multipart([b'{"n": 1}', b"one"])
    push.send_multipart([b'{"n": 2}', b"two"])
    assert receiver.header() == {"n": 1}
    assert receiver.next(as_json=True) == {"n": 1}
    assert receiver.next() == b"one"
    assert receiver.has_more() == 0
    receiver.flush()
    assert receiver.header() == {"n": 2}
    assert receiver.next() == b'{"n": 2}'
    assert receiver.next() == b"two"


def test_frame_by_frame_timeout(pull):
    _, socket = pull
    socket.rcvtimeo = 10
    receiver = ReceiveHandler(socket)
    assert receiver.next() is None
    with pytest.raises(zmq.Again):
        receiver.header()
    receiver.block = False
    assert receiver.next() is None


def test_json_frames_after_the_first_are_parsed_each_time():
    receiver = loaded([b"{}", json.dumps({"k": [1, 2]}).encode()])
    receiver.next()
    assert receiver.next(as_json=True) == {"k": [1, 2]}


def test_the_cursor_reads_through_the_stream_never_a_socket():
    messages = [[b'{"htype": "a"}', b"1"], [b'{"htype": "b"}']]
    receiver = ReceiveHandler(None, take_message=lambda flags: messages.pop(0))
    assert receiver.header() == {"htype": "a"}
    assert receiver.next(as_json=True) == {"htype": "a"} and receiver.next() == b"1"
    assert receiver.header() == {"htype": "b"}
    assert messages == []


def test_a_cursor_without_a_stream_has_nothing_to_read():
    receiver = ReceiveHandler(None)
    assert receiver.next() is None
    with pytest.raises(zmq.ZMQError):
        receiver.header()
