"""Fixtures: real ZeroMQ sockets on 127.0.0.1 with random ports and bounded timeouts."""

from __future__ import annotations

import time
from typing import Callable, Iterator

import pytest
import zmq
from hypothesis import settings

import mflow
from mflow import _fastpath

from .cli_support import tools, zmq_context  # noqa: F401  (fixtures of the command tests)

#: Milliseconds any test receive may wait before the test fails instead of hanging.
TIMEOUT_MS = 5000

# Property tests take their example count from the profile: a fast default, sized for a
# loaded 2-core machine, and "long" on request (``pytest --hypothesis-profile=long``).
settings.register_profile("default", max_examples=60, deadline=None)
settings.register_profile("long", max_examples=20_000, deadline=None)
settings.load_profile("default")


@pytest.fixture(params=["compiled", "python"])
def receive_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test on the compiled receive path and again on the pure Python one.

    Modules that receive or forward messages use it for all their tests
    (``pytestmark = pytest.mark.usefixtures("receive_path")``); it reaches the command
    line tools' processes through the environment.
    """
    if request.param == "python":
        monkeypatch.setenv("MFLOW_PURE_PYTHON", "1")
    else:
        monkeypatch.delenv("MFLOW_PURE_PYTHON", raising=False)
        if _fastpath.speedups() is None:
            pytest.skip("the compiled receive path is not built (see test_fastpath)")
    return request.param


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def bind_random(socket: zmq.Socket) -> str:
    """Bind ``socket`` to a random port on 127.0.0.1; the endpoint to connect to."""
    socket.bind("tcp://127.0.0.1:*")
    return socket.last_endpoint.decode()


@pytest.fixture
def push(context: zmq.Context) -> Iterator[tuple[zmq.Socket, str]]:
    """A raw PUSH socket bound to a random port, and its endpoint."""
    socket = context.socket(zmq.PUSH)
    socket.linger = 0
    socket.sndtimeo = TIMEOUT_MS
    yield socket, bind_random(socket)
    socket.close(linger=0)


@pytest.fixture
def pull_stream(push: tuple[zmq.Socket, str]) -> Iterator[tuple[zmq.Socket, mflow.Stream]]:
    """A raw PUSH socket and an mflow PULL stream connected to it."""
    socket, endpoint = push
    stream = mflow.connect(endpoint, receive_timeout=TIMEOUT_MS)
    yield socket, stream
    stream.disconnect()


@pytest.fixture
def stream_factory() -> Iterator[Callable[..., mflow.Stream]]:
    """Makes streams that are disconnected at the end of the test."""
    streams: list[mflow.Stream] = []

    def make(*args, **kwargs) -> mflow.Stream:
        kwargs.setdefault("receive_timeout", TIMEOUT_MS)
        stream = mflow.connect(*args, **kwargs)
        streams.append(stream)
        return stream

    yield make
    for stream in streams:
        stream.disconnect()


@pytest.fixture
def stream_pair(stream_factory) -> Callable[..., tuple[mflow.Stream, mflow.Stream]]:
    """Makes a bound PUSH stream and a PULL stream connected to it (extra options to both)."""

    def make(**kwargs) -> tuple[mflow.Stream, mflow.Stream]:
        sender = stream_factory(
            "tcp://127.0.0.1:*",
            conn_type=mflow.BIND,
            mode=mflow.PUSH,
            send_timeout=TIMEOUT_MS,
            **kwargs,
        )
        receiver = stream_factory(sender.endpoint, mode=mflow.PULL, **kwargs)
        return sender, receiver

    return make


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.005)


def wait_subscribed(
    publish: Callable[[], None], receive: Callable[[], object], timeout: float = 5.0
) -> None:
    """Publish probes until the subscriber gets one (PUB/SUB has no delivery before that)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        publish()
        if receive() is not None:
            return
    pytest.fail("subscriber never received a probe")
