"""Property tests: random and mutated multipart messages never break the receive path."""

from __future__ import annotations

import json

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mflow

from .conftest import TIMEOUT_MS
from .fixtures.cases import CASES
from .conformance import load_golden

GOLDEN = [load_golden(name) for name in sorted(CASES)]
SENTINEL = [json.dumps({"htype": "raw-1.0", "sentinel": True}).encode(), b"end"]


@pytest.fixture(scope="module", params=[True, False], ids=["copy", "zero-copy"])
def link(request):
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.linger = 0
    push.sndtimeo = TIMEOUT_MS
    push.bind("tcp://127.0.0.1:*")
    stream = mflow.connect(push.last_endpoint.decode(), receive_timeout=TIMEOUT_MS,
                           context=context, copy=request.param)
    yield push, stream
    stream.disconnect()
    push.close(linger=0)
    context.term()


def mutate(data: st.DataObject, parts: list[bytes]) -> list[bytes]:
    """Flip, cut, extend, drop or duplicate parts of a valid message."""
    parts = list(parts)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(parts) - 1))
        part = parts[index]
        action = data.draw(st.sampled_from(["flip", "cut", "extend", "drop", "dup", "empty"]))
        if action == "flip" and part:
            at = data.draw(st.integers(0, len(part) - 1))
            part = part[:at] + bytes([part[at] ^ data.draw(st.integers(1, 255))]) + part[at + 1:]
        elif action == "cut":
            part = part[:data.draw(st.integers(0, len(part)))]
        elif action == "extend":
            part = part + data.draw(st.binary(max_size=16))
        elif action == "drop" and len(parts) > 1:
            del parts[index]
            continue
        elif action == "dup":
            parts.insert(index, part)
        elif action == "empty":
            part = b""
        parts[index] = part
    return parts


def assert_survives(link, parts: list[bytes]) -> None:
    push, stream = link
    push.send_multipart(parts)
    push.send_multipart(SENTINEL)
    stream.receive()  # anything but an exception is fine
    message = stream.receive()
    assert message is not None and message.data["header"].get("sentinel") is True
    assert stream.statistics.bytes_received == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_valid_messages(link, data):
    assert_survives(link, mutate(data, data.draw(st.sampled_from(GOLDEN))))


headers = st.fixed_dictionaries(
    {"htype": st.sampled_from(sorted(mflow.receive_handlers) + ["x", ""])},
    optional={"type": st.sampled_from(["int32", "uint8", "float64", "object", "V0", "S3", 5]),
              "shape": st.one_of(st.lists(st.integers(-2, 10**12), max_size=3), st.text()),
              "header_detail": st.sampled_from(["none", "basic", "all", "bogus"]),
              "frame": st.integers()})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=headers, rest=st.lists(st.binary(max_size=64), max_size=10))
def test_random_headers_and_parts(link, header, rest):
    assert_survives(link, [json.dumps(header).encode(), *rest])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.binary(max_size=64), min_size=1, max_size=8))
def test_random_bytes(link, parts):
    assert_survives(link, parts)


def test_bad_messages_do_not_grow_memory(link):
    import tracemalloc

    push, stream = link
    bad = [[b'{"htype": "array-1.0", "type": "int32", "shape": [%d]}' % n, b"xx"]
           for n in range(50)] + [[b"\xff"], [b'{"htype": "nope-%d"}' % 1]]

    def churn(rounds: int) -> None:
        for _ in range(rounds):
            for parts in bad:
                push.send_multipart(parts)
                assert stream.receive() is None

    churn(5)
    tracemalloc.start()
    try:
        churn(5)
        first, _ = tracemalloc.get_traced_memory()
        churn(20)
        second, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert second - first < 64 * 1024
