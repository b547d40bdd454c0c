"""Stream lifecycle, receive/send semantics of 1.0, and the fixed 1.0 bugs."""

from __future__ import annotations

import json
import logging
import socket

import numpy as np
import pytest
import zmq

import mflow
from mflow._fastpath import FRAME_TYPES
from mflow.errors import (
    ConfigurationError,
    ConnectError,
    MalformedMessageError,
    SendTimeoutError,
    StreamClosedError,
    UnknownHtypeError,
)

from .conftest import TIMEOUT_MS, wait_subscribed

pytestmark = pytest.mark.usefixtures("receive_path")


def array_frames(frame: int = 0, n: int = 10) -> list[bytes]:
    header = {"htype": "array-1.0", "type": "int32", "shape": [n], "frame": frame}
    return [json.dumps(header).encode(), np.arange(n, dtype="int32").tobytes()]


def test_connect_defaults_match_1_0(stream_factory, push):
    _, endpoint = push
    stream = stream_factory(endpoint, receive_timeout=None)
    assert stream.socket.type == zmq.PULL
    assert stream.socket.rcvhwm == 100 and stream.socket.sndhwm == 100
    assert stream.socket.linger == 1000
    assert stream.socket.rcvtimeo == -1
    assert stream.address == endpoint
    assert stream.zmq_copy is True and stream.zmq_track is False
    assert isinstance(stream.receiver, mflow.ReceiveHandler)
    assert stream._context_is_owned is True


def test_queue_size_linger_and_timeouts_are_applied(stream_factory, push):
    _, endpoint = push
    stream = stream_factory(endpoint, queue_size=7, linger=3, receive_timeout=0, send_timeout=0)
    assert (stream.socket.rcvhwm, stream.socket.sndhwm, stream.socket.linger) == (7, 7, 3)
    # 1.0 ignored a timeout of 0 (bug B13); here it means "return at once".
    assert stream.socket.rcvtimeo == 0 and stream.socket.sndtimeo == 0
    assert stream.receive() is None
    assert stream.statistics.skipped["timeout"] == 1


def test_module_connect_keeps_1_0_positional_order(push):
    _, endpoint = push
    stream = mflow.connect(endpoint, mflow.CONNECT, mflow.PULL, 5, 250)
    try:
        assert stream.socket.rcvhwm == 5 and stream.socket.rcvtimeo == 250
    finally:
        mflow.disconnect(stream)
    assert stream.closed


def test_stream_connect_keeps_1_0_positional_order(push):
    _, endpoint = push
    with mflow.Stream() as stream:
        stream.connect(endpoint, mflow.CONNECT, mflow.PULL, 250, 5)
        assert stream.socket.rcvtimeo == 250 and stream.socket.rcvhwm == 5
    assert stream.closed


def test_any_conn_type_other_than_connect_binds(stream_factory):
    stream = stream_factory("tcp://127.0.0.1:*", conn_type="anything", mode=mflow.PUSH)
    assert stream.endpoint.startswith("tcp://127.0.0.1:")
    assert stream.receiver is None


def test_large_payloads_are_never_copied(pull_stream):
    socket, stream = pull_stream
    payload = np.arange(1 << 18, dtype="uint32")
    socket.send_multipart(
        [json.dumps({"htype": "array-1.0", "type": "uint32", "shape": [1 << 18]}).encode(), payload]
    )
    array = stream.receive().data["data"][0]
    assert isinstance(array.base, FRAME_TYPES)  # a view on the received frame
    np.testing.assert_array_equal(array, payload)


def test_receive_decodes_array_by_htype(pull_stream):
    socket, stream = pull_stream
    socket.send_multipart(array_frames(frame=3))
    message = stream.receive()
    assert message.data["header"]["frame"] == 3
    np.testing.assert_array_equal(message.data["data"][0], np.arange(10, dtype="int32"))
    assert message.statistics is stream.receiver.statistics
    assert message.statistics.messages_received == 1
    assert message.statistics.total_bytes_received == sum(map(len, array_frames(frame=3)))


def test_zero_copy_receive_gives_views_on_the_zmq_buffer(stream_factory, push):
    socket, endpoint = push
    stream = stream_factory(endpoint, copy=False)
    socket.send_multipart(array_frames())
    message = stream.receive()
    array = message.data["data"][0]
    assert not array.flags.owndata and isinstance(array.base, FRAME_TYPES)
    socket.send_multipart([b'{"htype": "raw-1.0"}', b"abc"])
    raw = stream.receive_raw()
    assert isinstance(raw.data["data"][0], memoryview)
    assert bytes(raw.data["data"][0]) == b"abc"


def test_custom_handler_gets_the_1_0_cursor(pull_stream):
    socket, stream = pull_stream
    seen = []

    def handler(receiver):
        header = receiver.next(as_json=True)
        seen.append(receiver.has_more())
        body = receiver.next()
        seen.append(receiver.has_more())
        seen.append(receiver.next())
        return {"header": header, "body": bytes(body)}

    socket.send_multipart([b'{"htype": "whatever"}', b"payload"])
    message = stream.receive(handler=handler)
    assert message.data == {"header": {"htype": "whatever"}, "body": b"payload"}
    # has_more is an int as in 1.0; reading past the end yields None, not the next message.
    assert seen == [1, 0, None]
    assert type(seen[0]) is int


def test_handler_that_stops_early_leaves_no_frames_behind(pull_stream):
    socket, stream = pull_stream
    socket.send_multipart([b'{"htype": "x"}', b"a", b"b", b"c"])
    socket.send_multipart(array_frames(frame=9))
    assert stream.receive(handler=lambda r: r.next(as_json=True)) is not None
    assert stream.receive().data["header"]["frame"] == 9
    # only the frame the handler read is counted, as in 1.0
    assert stream.statistics.total_bytes_received == len(b'{"htype": "x"}') + sum(
        map(len, array_frames(frame=9))
    )


def test_falsy_handler_result_is_none_and_counted(pull_stream):
    socket, stream = pull_stream
    socket.send_multipart([b'{"htype": "x"}', b"abc"])
    assert stream.receive(handler=lambda r: (r.next(), {})[1]) is None
    assert stream.statistics.skipped["decode_error"] == 1
    assert stream.statistics.bytes_received == 0


def test_failed_message_does_not_leak_bytes_into_the_next(pull_stream):
    """Bug B4: 1.0 added a failed message's bytes to the next successful one."""
    socket, stream = pull_stream

    def failing(receiver):
        receiver.next()
        receiver.next()
        raise ValueError("cannot decode")

    socket.send_multipart([b"h" * 60, b"d" * 40])
    socket.send_multipart([b"0123456789", b"0123456789"])
    assert stream.receive(handler=failing) is None
    message = stream.receive(handler=lambda r: [r.next(), r.next()])
    assert message.statistics.total_bytes_received == 20
    assert message.statistics.messages_received == 1


def test_unknown_htype_does_not_leave_a_stale_header(pull_stream):
    """Bug B3: after a failed dispatch 1.0 served the old frame 0 to the next receive."""
    socket, stream = pull_stream
    socket.send_multipart([b'{"htype": "no-such-type"}', b"x"])
    socket.send_multipart([b'{"htype": "raw-1.0", "n": 2}', b"y"])
    assert stream.receive() is None
    assert stream.statistics.skipped["unknown_htype"] == 1
    message = stream.receive_raw()
    assert message.data["header"] == {"htype": "raw-1.0", "n": 2}
    assert message.data["data"] == [b"y"]


@pytest.mark.parametrize(
    "frames, reason",
    [
        ([b"\xff\xfe not utf-8"], "bad_header"),
        ([b"not json at all"], "bad_header"),
        ([b'["a", "list"]'], "bad_header"),
        ([b'{"no": "htype"}'], "bad_header"),
        ([b'{"htype": "unknown-9.9"}'], "unknown_htype"),
        ([b'{"htype": "array-1.0", "type": "int32", "shape": [10]}', b"short"], "malformed"),
        ([b'{"htype": "array-1.0", "type": "object", "shape": [1]}', b"12345678"], "malformed"),
        ([b'{"htype": "array-1.0", "type": "int32", "shape": "x"}', b"1234"], "malformed"),
        ([b'{"htype": "array-1.0", "shape": [1]}', b"1234"], "malformed"),
        ([b'{"htype": "dimage-1.0"}', b"{}"], "malformed"),
    ],
)
def test_bad_messages_are_none_counted_and_the_next_decodes(pull_stream, frames, reason):
    socket, stream = pull_stream
    socket.send_multipart(frames)
    socket.send_multipart(array_frames(frame=5))
    assert stream.receive() is None
    assert stream.statistics.skipped == {reason: 1}
    message = stream.receive()
    assert message.data["header"]["frame"] == 5
    assert message.statistics.total_bytes_received == sum(map(len, array_frames(frame=5)))


def test_strict_stream_raises_the_specific_error(stream_factory, push):
    socket, endpoint = push
    stream = stream_factory(endpoint, strict=True)
    socket.send_multipart([b'{"htype": "nope"}'])
    with pytest.raises(UnknownHtypeError):
        stream.receive()
    socket.send_multipart([b'{"htype": "array-1.0", "type": "int32", "shape": [4]}', b"x"])
    with pytest.raises(MalformedMessageError):
        stream.receive()
    socket.send_multipart(array_frames())
    assert stream.receive() is not None


def test_each_kind_of_skip_is_logged_once(pull_stream, caplog):
    socket, stream = pull_stream
    for _ in range(5):
        socket.send_multipart([b'{"htype": "nope"}'])
    with caplog.at_level(logging.DEBUG, logger="mflow"):
        for _ in range(5):
            assert stream.receive() is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "unknown_htype" in warnings[0].getMessage()
    assert stream.statistics.skipped["unknown_htype"] == 5


def test_no_logging_handler_is_installed_at_import():
    """Bug B24: 1.0 attached its own StreamHandler, so records printed twice."""
    handlers = logging.getLogger("mflow").handlers
    assert all(isinstance(h, logging.NullHandler) for h in handlers)
    assert not logging.getLogger("mflow.stream").handlers


def test_non_blocking_receive_returns_none_without_counting(pull_stream):
    _, stream = pull_stream
    assert stream.receive(block=False) is None
    assert stream.statistics.skipped == {}


def test_receive_on_a_send_only_stream_is_a_clear_error(stream_factory):
    """Bug B14: 1.0 raised AttributeError on None.block."""
    stream = stream_factory("tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUSH)
    with pytest.raises(ConfigurationError, match="send-only"):
        stream.receive()


def test_receive_after_disconnect_is_a_closed_error(pull_stream):
    _, stream = pull_stream
    stream.disconnect()
    with pytest.raises(StreamClosedError):
        stream.receive()
    with pytest.raises(StreamClosedError):
        stream.send(b"x")


def test_disconnect_is_idempotent_and_safe_before_connect():
    """Bug B17: 1.0 raised AttributeError for a never-connected stream."""
    stream = mflow.Stream()
    stream.disconnect()
    stream.disconnect()
    assert stream.closed


def test_disconnect_frees_the_endpoint_at_once(stream_factory):
    first = stream_factory("tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUSH)
    endpoint = first.endpoint
    for _ in range(3):
        first.disconnect()
        first = stream_factory(endpoint, conn_type=mflow.BIND, mode=mflow.PUSH)
    assert first.endpoint == endpoint


def test_failed_bind_raises_and_leaves_nothing_open(stream_factory):
    """Bug B16: 1.0 leaked the socket and context of a failed bind."""
    taken = stream_factory("tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUSH)
    stream = mflow.Stream()
    with pytest.raises(ConnectError, match="Unable to bind") as raised:
        stream.connect(taken.endpoint, conn_type=mflow.BIND, mode=mflow.PUSH)
    assert isinstance(raised.value, RuntimeError)
    assert stream.socket is None and stream.context is None
    with pytest.raises(ConnectError):
        mflow.connect("not-an-address", conn_type=mflow.BIND)


def _bind_reporting_eagain(self: zmq.Socket, address: str) -> None:
    raise zmq.Again()  # what libzmq can report for a monitored socket's failed bind


def test_a_bind_reported_as_eagain_is_named_by_its_real_cause(stream_factory, monkeypatch):
    taken = stream_factory("tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUSH)
    monkeypatch.setattr(zmq.Socket, "bind", _bind_reporting_eagain)
    with pytest.raises(ConnectError) as raised:
        mflow.connect(taken.endpoint, conn_type=mflow.BIND, mode=mflow.PUSH)
    assert str(raised.value) == f"Unable to bind to {taken.endpoint}: Address already in use"


def test_a_bind_reported_as_eagain_keeps_that_error_where_the_address_is_free(monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setattr(zmq.Socket, "bind", _bind_reporting_eagain)
    with pytest.raises(ConnectError, match="Resource temporarily unavailable"):
        mflow.connect(free, conn_type=mflow.BIND, mode=mflow.PUSH)


def test_shared_context_is_not_terminated(context, push):
    _, endpoint = push
    stream = mflow.connect(endpoint, context=context)
    stream.disconnect()
    assert not context.closed
    assert stream.context is context


def test_unclosed_stream_warns(push):
    _, endpoint = push
    stream = mflow.connect(endpoint)
    with pytest.warns(ResourceWarning, match="unclosed mflow stream"):
        stream.__del__()
    assert stream.closed


def test_send_builds_frames_with_send_more(stream_pair):
    sender, receiver = stream_pair()
    sender.send(b'{"htype": "raw-1.0"}', send_more=True)
    sender.send(b"one", send_more=True)
    sender.send({"as": "json"}, as_json=True)
    message = receiver.receive_raw()
    assert message.data["data"] == [b"one", b'{"as": "json"}']


def test_blocking_send_timeout_raises_zmq_again_compatible_error(stream_factory):
    stream = stream_factory(
        "tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUSH, send_timeout=10
    )
    with pytest.raises(SendTimeoutError) as raised:
        stream.send(b"nobody listens")
    assert isinstance(raised.value, zmq.Again) and isinstance(raised.value, TimeoutError)


def test_non_blocking_send_drop_is_counted(stream_factory):
    """Bug B19: 1.0 dropped such messages silently."""
    stream = stream_factory("tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUSH)
    assert stream.send(b"x", block=False) is False
    assert stream.send_multipart([b"a", b"b"], block=False) is False
    assert stream.statistics.send_dropped == 2


def test_forward_round_trips_every_builtin_type(stream_pair):
    sender, receiver = stream_pair()
    message = {
        "header": {"htype": "array-1.0", "type": "uint16", "shape": [2, 3]},
        "data": [np.arange(6, dtype="uint16").reshape(2, 3)],
    }
    sender.forward(message)
    received = receiver.receive().data
    assert received["header"] == message["header"]
    np.testing.assert_array_equal(received["data"][0], message["data"][0])


def test_forward_of_unknown_htype_is_logged_not_raised(stream_pair, caplog):
    sender, _ = stream_pair()
    with caplog.at_level(logging.WARNING, logger="mflow"):
        sender.forward({"header": {"htype": "nope"}})
    assert "htype - nope - not supported" in caplog.text
    with pytest.raises(KeyError):  # as in 1.0
        sender.forward({"no": "header"})


def test_closed_and_timeout_errors_are_also_the_zmq_errors_of_1_0(stream_factory):
    stream = stream_factory(
        "tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUSH, send_timeout=1
    )
    with pytest.raises(zmq.Again) as raised:
        stream.send(b"nobody listens")
    assert raised.value.errno == zmq.EAGAIN
    stream.disconnect()
    with pytest.raises(zmq.ZMQError) as raised:
        stream.send(b"x")
    assert raised.value.errno == zmq.ENOTSOCK


def test_per_stream_handler_override(pull_stream):
    """Bug B10: 1.0's README promised stream.handlers, which did nothing."""
    socket, stream = pull_stream
    stream.handlers["array-1.0"] = lambda receiver: {"mine": receiver.next(as_json=True)}
    socket.send_multipart(array_frames(frame=1))
    assert stream.receive().data["mine"]["frame"] == 1
    other = mflow.Stream()
    assert other.handlers == {}


def test_global_receive_handlers_dict_registers_custom_htype(pull_stream):
    socket, stream = pull_stream
    mflow.receive_handlers["custom-1.0"] = lambda r: {"h": r.next(as_json=True), "n": len(r.rest())}
    try:
        socket.send_multipart([b'{"htype": "custom-1.0"}', b"a", b"b"])
        assert stream.receive().data == {"h": {"htype": "custom-1.0"}, "n": 2}
    finally:
        del mflow.receive_handlers["custom-1.0"]


def test_sub_stream_subscribes_to_everything(stream_factory):
    publisher = stream_factory("tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUB)
    subscriber = stream_factory(publisher.endpoint, mode=mflow.SUB, receive_timeout=50)
    wait_subscribed(lambda: publisher.send(b'{"htype": "raw-1.0"}'), subscriber.receive_raw)
    publisher.send(b'{"htype": "raw-1.0", "last": true}')
    message = subscriber.receive_raw()
    while message is not None and "last" not in message.data["header"]:
        message = subscriber.receive_raw()
    assert message.data["header"]["last"] is True


def test_max_message_size_refuses_larger_messages(stream_factory, push):
    socket, endpoint = push
    stream = stream_factory(endpoint, max_message_size=1000, receive_timeout=200)
    assert stream.socket.maxmsgsize == 1000
    socket.send_multipart([b'{"htype": "raw-1.0"}', b"x" * 10_000])
    assert stream.receive() is None


def test_ten_thousand_part_message(pull_stream):
    socket, stream = pull_stream
    socket.send_multipart([b'{"htype": "raw-1.0"}'] + [b"p"] * 10_000)
    socket.send_multipart(array_frames(frame=2))
    assert len(stream.receive().data["data"]) == 10_000
    assert stream.receive().data["header"]["frame"] == 2


def test_receive_timeout_returns_none(stream_factory, push):
    _, endpoint = push
    stream = stream_factory(endpoint, receive_timeout=20)
    assert stream.receive() is None
    assert stream.receive(handler=lambda r: 1 / 0) is None
    assert stream.statistics.skipped["timeout"] == 2


def test_receive_timeout_is_in_milliseconds(stream_factory, push):
    _, endpoint = push
    assert stream_factory(endpoint, receive_timeout=TIMEOUT_MS).socket.rcvtimeo == TIMEOUT_MS


def test_disconnect_delivers_what_a_sender_still_queues(stream_factory, context):
    receiver = stream_factory("tcp://127.0.0.1:*", conn_type=mflow.BIND, receive_timeout=TIMEOUT_MS)
    sender = mflow.connect(receiver.endpoint, mode=mflow.PUSH, linger=TIMEOUT_MS)
    for n in range(200):
        sender.send_multipart(array_frames(frame=n))
    sender.disconnect()  # must not drop what is still queued
    frames = [receiver.receive().data["header"]["frame"] for _ in range(200)]
    assert frames == list(range(200))


def test_receive_parts_gives_the_undecoded_frames(pull_stream):
    socket, stream = pull_stream
    socket.send_multipart([b"not json", b"", b"x"])
    frames = stream.receive_parts()
    assert [f.bytes for f in frames] == [b"not json", b"", b"x"]
    assert stream.receive_parts(block=False) is None
    assert stream.statistics.messages_received == 0


def test_forward_sends_every_type_back_as_it_came(stream_pair):
    from mflow.handlers.sls import Handler as SLS
    from mflow.handlers.stream2 import encode_stream2

    sender, receiver = stream_pair()
    sender.send(encode_stream2({"type": "end", "series_id": 1, "series_unique_id": "x"}))
    SLS.send({"header": {"frameIndex": 0}, "image": np.zeros((2, 3), "<u2")}, sender.send)
    received = [receiver.receive().data for _ in range(2)]
    for data in received:
        sender.forward(data)
    for data in received:
        again = receiver.receive().data
        assert again.keys() == data.keys()


def test_a_bad_part_never_leaves_half_a_message(stream_pair):
    sender, receiver = stream_pair()
    sender.forward({"header": {"htype": "raw-1.0"}, "data": ["text is not a buffer"]})
    sender.forward({"header": {"htype": "raw-1.0", "good": True}, "data": [b"x"]})
    message = receiver.receive().data
    assert message["header"] == {"htype": "raw-1.0", "good": True} and message["data"] == [b"x"]


def test_poll_says_whether_a_message_can_be_received(pull_stream):
    socket, stream = pull_stream
    assert stream.poll(0) is False
    socket.send_multipart(array_frames())
    assert stream.poll(TIMEOUT_MS) is True
    assert stream.receive().data["header"]["frame"] == 0
    assert stream.poll(0) is False


def test_poll_out_says_whether_a_message_can_be_sent(stream_pair):
    sender, _ = stream_pair()
    assert sender.poll(TIMEOUT_MS, zmq.POLLOUT) is True


def test_poll_on_a_closed_stream_is_a_closed_error(pull_stream):
    _, stream = pull_stream
    stream.disconnect()
    with pytest.raises(StreamClosedError):
        stream.poll(0)
    with pytest.raises(StreamClosedError):
        mflow.stream.poll_streams([stream], 0)


def test_poll_streams_gives_the_readable_ones(stream_pair):
    _, receiver_a = stream_pair()
    sender_b, receiver_b = stream_pair()
    assert mflow.stream.poll_streams([receiver_a, receiver_b], 0) == []
    sender_b.send_multipart(array_frames())
    assert mflow.stream.poll_streams([receiver_a, receiver_b], TIMEOUT_MS) == [receiver_b]


def test_receive_timeout_is_readable(stream_factory, push):
    _, endpoint = push
    assert stream_factory(endpoint, receive_timeout=250).receive_timeout == 250
    assert stream_factory(endpoint, receive_timeout=None).receive_timeout is None


def test_recording_error_is_part_of_the_one_error_tree():
    import mflow.recording

    assert mflow.recording.RecordingError is mflow.errors.RecordingError
    assert issubclass(mflow.RecordingError, mflow.MflowError)


@pytest.mark.parametrize(
    "arguments", [{"mode": 12345}, {"mode": "pull"}, {"queue_size": -5}, {"queue_size": 1.5}]
)
def test_bad_connect_arguments_are_configuration_errors(push, arguments):
    _, endpoint = push
    with pytest.raises(ConfigurationError) as raised:
        mflow.connect(endpoint, **arguments)
    assert not isinstance(raised.value, ConnectError)
    assert endpoint not in str(raised.value)


def test_send_timeout_error_has_the_strerror_1_0_code_prints():
    error = SendTimeoutError()
    assert error.strerror and "send timed out" in error.strerror


def test_send_multipart_of_no_parts_is_a_clear_error(stream_pair):
    sender, receiver = stream_pair()
    with pytest.raises(ConfigurationError, match="no parts"):
        sender.send_multipart([])
    assert sender.send_multipart([b'{"htype": "raw-1.0"}'])
    assert receiver.receive().data["header"] == {"htype": "raw-1.0"}


def test_receive_with_a_handler_counts_htype_and_sequence_whatever_it_parsed(pull_stream):
    socket, stream = pull_stream
    for frame in (0, 3):
        socket.send_multipart(array_frames(frame=frame))
        assert stream.receive(handler=lambda receiver: receiver.rest()) is not None
    assert stream.statistics.messages_by_htype["array-1.0"] == 2
    assert stream.statistics.missed == 2


def test_handler_for_another_htype_keeps_the_compiled_path(pull_stream, receive_path):
    socket, stream = pull_stream
    calls = []
    compiled = stream._speedups

    class Counting:
        def __getattr__(self, name):
            return getattr(compiled, name)

        def receive_message(self, *args):
            calls.append(args)
            return compiled.receive_message(*args)

    if compiled is not None:
        stream._speedups = Counting()
    stream.handlers["custom-1.0"] = lambda receiver: {"custom": receiver.rest()}
    socket.send_multipart(array_frames(frame=1))
    socket.send_multipart([b'{"htype": "custom-1.0"}', b"x"])
    assert stream.receive().data["header"]["frame"] == 1
    assert stream.receive().data == {"custom": [b'{"htype": "custom-1.0"}', b"x"]}
    assert len(calls) == (2 if receive_path == "compiled" else 0)


def test_forward_honours_the_streams_handlers(stream_pair):
    sender, receiver = stream_pair()

    class Tagged:
        @staticmethod
        def send(message, send, block=True):
            send(json.dumps({**message["header"], "tagged": True}).encode())

    sender.handlers["array-1.0"] = Tagged
    sender.forward({"header": {"htype": "array-1.0", "type": "int32", "shape": [1]}, "data": []})
    assert receiver.receive().data["header"]["tagged"] is True


def test_twenty_thousand_unknown_htypes_log_and_remember_a_bounded_number(pull_stream, caplog):
    socket, stream = pull_stream
    with caplog.at_level(logging.WARNING, logger="mflow"):
        for number in range(20_000):
            socket.send(json.dumps({"htype": f"bad-{number}"}).encode())
            assert stream.receive() is None
    cap = mflow.stream.MAX_REPORTED_SKIP_KINDS
    assert len(stream._reported) == cap
    assert len(caplog.records) == cap + 1
    assert stream.unlogged_skip_kinds == 20_000 - cap
    assert stream.statistics.skipped["unknown_htype"] == 20_000


@pytest.mark.parametrize("receiver_binds", [False, True])
def test_disconnect_counts_the_received_messages_it_discards(context, caplog, receiver_binds):
    # inproc: a message sent is in the receiver's queue when send returns.
    address = f"inproc://discard-{receiver_binds}"
    receiver_side, sender_side = (
        (mflow.BIND, mflow.CONNECT) if receiver_binds else (mflow.CONNECT, mflow.BIND)
    )
    streams = [("receiver", receiver_side, mflow.PULL), ("sender", sender_side, mflow.PUSH)]
    if not receiver_binds:
        streams.reverse()  # inproc: bind first
    made = {
        name: mflow.connect(
            address,
            conn_type=side,
            mode=mode,
            context=context,
            receive_timeout=TIMEOUT_MS,
            send_timeout=TIMEOUT_MS,
        )
        for name, side, mode in streams
    }
    receiver, sender = made["receiver"], made["sender"]
    with sender:
        for n in range(5):
            sender.send_multipart(array_frames(frame=n))
        assert receiver.receive().data["header"]["frame"] == 0
        with caplog.at_level(logging.INFO, logger="mflow"):
            receiver.disconnect()
    assert receiver.statistics.skipped["discarded_at_close"] == 4
    assert "discarded 4 received messages" in caplog.text


@pytest.fixture
def queued(context):
    """A bound PUSH stream and a PULL stream with three messages from it in its queue."""
    with mflow.connect(
        "inproc://queued",
        conn_type=mflow.BIND,
        mode=mflow.PUSH,
        context=context,
        send_timeout=TIMEOUT_MS,
    ) as sender:
        receiver = mflow.connect("inproc://queued", context=context, receive_timeout=TIMEOUT_MS)
        for n in range(3):  # inproc: each send is in the receiver's queue when it returns
            sender.send_multipart(array_frames(frame=n))
        yield sender, receiver
        receiver.disconnect()


def test_drain_gives_what_was_received_so_nothing_is_discarded(queued):
    _, receiver = queued
    drained = receiver.drain()
    assert [json.loads(frames[0].bytes)["frame"] for frames in drained] == [0, 1, 2]
    assert receiver.drain() == []
    receiver.disconnect()
    assert "discarded_at_close" not in receiver.statistics.skipped


def test_discard_received_drops_and_counts_what_is_queued(queued):
    sender, receiver = queued
    assert sender.discard_received() == 0  # a sending stream has nothing received
    assert receiver.discard_received() == 3
    assert receiver.discard_received() == 0
    assert receiver.statistics.skipped["discarded_at_close"] == 3
    receiver.disconnect()
    assert receiver.statistics.skipped["discarded_at_close"] == 3
    assert receiver.discard_received() == 0  # closed


DEEP = "[" * 1000 + "]" * 1000


@pytest.mark.parametrize(
    "header",
    [
        '{"htype": "array-1.0", "type": "int32", "shape": [2], "frame": 1, "source": %s}' % DEEP,
        '{"htype": "raw-1.0", "frame": 1, "source": %s}' % DEEP,
    ],
)
def test_a_deeply_nested_source_is_counted_as_unusable_not_an_exception(
    pull_stream, header, caplog
):
    socket, stream = pull_stream
    socket.send_multipart([header.encode(), np.arange(2, dtype="int32").tobytes()])
    socket.send_multipart(array_frames(frame=7))
    with caplog.at_level(logging.DEBUG, logger="mflow"):
        assert stream.receive().data["header"]["frame"] == 1  # delivered, source ignored
    assert stream.statistics.unusable_source == 1 and not stream.statistics.skipped
    assert stream.receive().data["header"]["frame"] == 7
    assert all(len(record.getMessage()) < 1000 for record in caplog.records)


def test_log_lines_of_skips_are_bounded_whatever_the_wire_holds(pull_stream, caplog):
    socket, stream = pull_stream
    huge = "x" * 100_000

    def quoting(receiver):
        raise ValueError(f"bad value {receiver.next(as_json=True)['value']}")

    socket.send_multipart([json.dumps({"htype": "h" * 100_000, "value": huge}).encode()])
    socket.send_multipart([json.dumps({"htype": "raw-1.0", "value": huge}).encode()])
    with caplog.at_level(logging.DEBUG, logger="mflow"):
        assert stream.receive() is None
        assert stream.receive(handler=quoting) is None
    assert stream.statistics.skipped == {"unknown_htype": 1, "decode_error": 1}
    assert caplog.records and all(len(r.getMessage()) < 1000 for r in caplog.records)


def test_forward_of_an_unknown_htype_logs_it_bounded(stream_pair, caplog):
    sender, _ = stream_pair()
    with caplog.at_level(logging.WARNING, logger="mflow"):
        sender.forward({"header": {"htype": "u" * 100_000}, "data": []})
    assert "not supported" in caplog.text and len(caplog.text) < 1000


def test_strict_stream_raises_a_decode_error_for_what_a_handler_raised(stream_factory, push):
    socket, endpoint = push
    stream = stream_factory(endpoint, strict=True, receive_timeout=TIMEOUT_MS)
    socket.send_multipart([b'{"htype": "raw-1.0", "frame": 1}'])

    def too_deep(receiver):
        raise RecursionError("maximum recursion depth exceeded")

    with pytest.raises(mflow.DecodeError, match="RecursionError"):
        stream.receive(handler=too_deep)
