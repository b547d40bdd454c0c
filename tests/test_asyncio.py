"""mflow.asyncio: the same messages as the synchronous API, awaited, on real sockets."""

from __future__ import annotations

import asyncio
import select
import textwrap
from typing import Any, Awaitable, Callable, Iterator, cast

import numpy as np
import pytest
import zmq

import mflow
import mflow.asyncio as amflow
from mflow.errors import ConfigurationError

from .conformance import assert_same, load_golden
from .conftest import TIMEOUT_MS, bind_random, run_python
from .fixtures.cases import CASES

pytestmark = pytest.mark.usefixtures("receive_path")

#: Seconds any awaited step of a test may take before the test fails instead of hanging.
DEADLINE = 10.0


#: How `run` runs a coroutine in a new event loop: set for each test by `event_loop_kind`.
_run_in_new_loop: Callable[[Awaitable[Any]], Any] = asyncio.run

#: The statement that runs ``main()`` in a child process, for each kind of event loop.
_RUN_MAIN = {"asyncio": "asyncio.run(main())", "uvloop": "import uvloop; uvloop.run(main())"}


@pytest.fixture(autouse=True, params=sorted(_RUN_MAIN))
def event_loop_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs every test on asyncio's own event loop and again on uvloop's, which many
    asyncio servers run on (uvicorn, and so FastAPI, takes it when it is installed)."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip(
            "uvloop", reason="uvloop is not installed (mflow[test] has it)"
        )
        monkeypatch.setattr(f"{__name__}._run_in_new_loop", uvloop.run)
    return cast(str, request.param)


def run(awaitable: Awaitable[Any]) -> Any:
    """Run ``awaitable`` in a new event loop, failing after `DEADLINE` seconds."""
    return _run_in_new_loop(asyncio.wait_for(awaitable, DEADLINE))


def test_the_tests_run_on_the_event_loop_they_name(event_loop_kind: str) -> None:
    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert run(loop_module()).split(".")[0] == event_loop_kind


@pytest.fixture
def new_push(context: zmq.Context) -> Iterator[Callable[[], zmq.Socket]]:
    """Makes bound PUSH sockets, closed at the end of the test."""
    sockets: list[zmq.Socket] = []

    def make() -> zmq.Socket:
        socket = context.socket(zmq.PUSH)
        socket.linger = 0
        socket.sndtimeo = TIMEOUT_MS
        bind_random(socket)
        sockets.append(socket)
        return socket

    yield make
    for socket in sockets:
        socket.close(linger=0)


@pytest.fixture
def push(new_push: Callable[[], zmq.Socket]) -> zmq.Socket:
    """A bound PUSH socket."""
    return new_push()


def endpoint(socket: zmq.Socket) -> str:
    return socket.last_endpoint.decode()


def array_message(frame: int) -> dict[str, Any]:
    return {
        "header": {"htype": "array-1.0", "frame": frame},
        "data": [np.full((2, 3), frame, dtype="uint16")],
    }


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_conformance_message_decodes_as_in_the_sync_api(name: str, new_push) -> None:
    parts = load_golden(name)
    # One sender each: a PUSH may still hand a message to a peer that just left.
    sync_push, async_push = new_push(), new_push()
    with mflow.connect(endpoint(sync_push), receive_timeout=TIMEOUT_MS) as sync_stream:
        sync_push.send_multipart(parts)
        expected = sync_stream.receive()
    assert expected is not None

    async def receive() -> Any:
        async with amflow.connect(endpoint(async_push), receive_timeout=TIMEOUT_MS) as stream:
            async_push.send_multipart(parts)
            message = await stream.receive()
            return message, stream.statistics.messages_by_htype

    message, by_htype = run(receive())
    assert message is not None
    assert_same(message.data, expected.data)
    assert by_htype == sync_stream.statistics.messages_by_htype


def test_a_receive_timeout_returns_none_and_is_counted(push) -> None:
    async def receive() -> Any:
        async with amflow.connect(endpoint(push), receive_timeout=20) as stream:
            return await stream.receive(), stream.statistics.skipped["timeout"]

    assert run(receive()) == (None, 1)


def test_async_for_yields_every_message_in_order_and_ends_at_a_timeout(push) -> None:
    async def receive() -> list[int]:
        async with amflow.connect(endpoint(push), receive_timeout=200) as stream:
            for frame in range(50):
                push.send_multipart(_array_parts(frame))
            return [message.data["header"]["frame"] async for message in stream]

    assert run(receive()) == list(range(50))


def _array_parts(frame: int) -> list[bytes]:
    data = np.full((2, 3), frame, dtype="uint16")
    header = b'{"htype": "array-1.0", "type": "uint16", "shape": [2, 3], "frame": %d}' % frame
    return [header, data.tobytes()]


def test_a_bad_message_is_none_and_iteration_goes_on(push) -> None:
    async def receive() -> Any:
        async with amflow.connect(endpoint(push), receive_timeout=200) as stream:
            push.send_multipart([b'{"htype": "no-such-type-1.0"}'])
            push.send_multipart(_array_parts(7))
            first = await stream.receive()
            push.send_multipart([b'{"htype": "no-such-type-1.0"}'])
            push.send_multipart(_array_parts(8))
            rest = [message.data["header"]["frame"] async for message in stream]
            return first, rest, dict(stream.statistics.skipped)

    first, rest, skipped = run(receive())
    assert first is None
    assert rest == [7, 8]
    assert skipped["unknown_htype"] == 2


def test_cancelled_receives_never_lose_or_split_a_message(push) -> None:
    count = 300

    async def receive() -> list[int]:
        received: list[int] = []
        async with amflow.connect(endpoint(push), receive_timeout=TIMEOUT_MS) as stream:
            sent = 0
            while len(received) < count:
                if sent < count and len(received) == sent:
                    push.send_multipart(_array_parts(sent))
                    sent += 1
                task = asyncio.ensure_future(stream.receive())
                # Let the receive start (and usually wait), then cancel every other one.
                await asyncio.sleep(0)
                if len(received) % 2 == 0 and not task.done():
                    task.cancel()
                try:
                    message = await task
                except asyncio.CancelledError:
                    continue
                assert message is not None
                received.append(message.data["header"]["frame"])
        return received

    assert run(receive()) == list(range(count))


def test_a_wait_started_after_the_events_were_read_still_wakes(push) -> None:
    """pyzmq pitfall: reading ZMQ_EVENTS consumes the edge of the descriptor."""

    async def receive() -> Any:
        async with amflow.connect(endpoint(push), receive_timeout=TIMEOUT_MS) as stream:
            push.send_multipart(_array_parts(1))
            assert stream.sync.socket.poll(TIMEOUT_MS)  # reads the events: edge gone
            stream.sync.socket.getsockopt(zmq.EVENTS)
            return await stream.receive()

    assert run(receive()).data["header"]["frame"] == 1


def test_a_receive_by_one_task_does_not_swallow_another_tasks_wake_up(push) -> None:
    """pyzmq pitfall: an operation on the socket drains the descriptor others wait on."""

    async def receive() -> Any:
        async with amflow.connect(endpoint(push), receive_timeout=TIMEOUT_MS) as stream:
            waiting = asyncio.ensure_future(stream.receive())
            await asyncio.sleep(0)  # the first task now waits on the descriptor
            push.send_multipart(_array_parts(1))
            push.send_multipart(_array_parts(2))
            select.select([stream.sync.socket.FD], [], [], DEADLINE)
            # Before the loop wakes the waiting task, this one takes the first message
            # and, doing so, drains the descriptor although the second one is there.
            first = await stream.receive()
            second = await waiting
            return first.data["header"]["frame"], second and second.data["header"]["frame"]

    assert run(receive()) == (1, 2)


def test_a_wake_up_read_for_a_task_cancelled_before_it_ran_is_not_lost(push) -> None:
    """A receive that finds nothing reads the events to wake the other waiters; when that
    read consumed the descriptor's edge, the receive must not then sleep on it."""

    async def receive() -> Any:
        async with amflow.connect(endpoint(push), receive_timeout=TIMEOUT_MS) as stream:
            other = asyncio.ensure_future(stream.receive())
            await asyncio.sleep(0)  # the other task now waits on the descriptor
            push.send_multipart(_array_parts(1))
            assert stream.sync.socket.poll(TIMEOUT_MS)
            first = await stream.receive()  # a message was waiting: this one did not wait
            await asyncio.sleep(0)  # the other task, woken for it too, waits again
            receive_once = stream.sync._receive
            loop = asyncio.get_running_loop()

            def a_message_lands_just_after_finding_nothing(*args: Any) -> Any:
                stream.sync._receive = receive_once
                try:
                    return receive_once(*args)
                finally:
                    push.send_multipart(_array_parts(2))
                    assert stream.sync.socket.poll(TIMEOUT_MS)  # reads the events: edge gone
                    loop.call_soon(other.cancel)  # before the task woken for it runs

            stream.sync._receive = a_message_lands_just_after_finding_nothing
            second = await stream.receive()
            await asyncio.gather(other, return_exceptions=True)
            return first.data["header"]["frame"], second and second.data["header"]["frame"]

    assert run(receive()) == (1, 2)


def test_a_stream_that_found_nothing_takes_every_message_that_comes_next(push) -> None:
    """After an empty receive the events are looked at first: nothing may be skipped."""

    async def receive() -> Any:
        async with amflow.connect(endpoint(push), receive_timeout=100) as stream:
            assert await stream.receive() is None  # found nothing, waited, timed out
            for frame in range(3):
                push.send_multipart(_array_parts(frame))
            assert stream.sync.socket.poll(TIMEOUT_MS)
            stream.sync.socket.rcvtimeo = TIMEOUT_MS
            return [(await stream.receive()).data["header"]["frame"] for _ in range(3)]

    assert run(receive()) == [0, 1, 2]


def test_a_merge_of_a_closed_or_a_send_only_stream_says_so(push) -> None:
    async def receive(stream: amflow.Stream) -> Any:
        async with amflow.Merge(stream) as merged:
            return await merged.receive()

    closed = amflow.connect(endpoint(push), receive_timeout=TIMEOUT_MS)
    closed.disconnect()
    with pytest.raises(amflow.StreamClosedError):
        run(receive(closed))
    sender = amflow.connect(endpoint(push), mode=mflow.PUSH, receive_timeout=TIMEOUT_MS)
    with pytest.raises(ConfigurationError):
        run(receive(sender))


def test_a_shorter_timeout_ends_on_time_and_leaves_a_longer_wait_waiting(push) -> None:
    """One timer serves the waits of a stream: it is moved earlier for a shorter one."""

    async def receive() -> Any:
        async with amflow.connect(endpoint(push), receive_timeout=TIMEOUT_MS) as stream:
            long_wait = asyncio.ensure_future(stream.receive())
            await asyncio.sleep(0)  # waits, its deadline TIMEOUT_MS away
            stream.sync.socket.rcvtimeo = 20
            loop = asyncio.get_running_loop()
            began = loop.time()
            short = await stream.receive()
            took = loop.time() - began
            for _ in range(3):
                await asyncio.sleep(0)  # the timer woke the long wait too: it waits on
            still_waiting = not long_wait.done()
            push.send_multipart(_array_parts(5))
            message = await long_wait
            return short, took, still_waiting, message.data["header"]["frame"]

    short, took, still_waiting, frame = run(receive())
    assert short is None
    assert took < TIMEOUT_MS / 1000 / 2
    assert still_waiting
    assert frame == 5


def test_a_timeout_in_a_second_loop_does_not_count_on_the_first_loops_timer(push) -> None:
    stream = amflow.connect(endpoint(push), receive_timeout=300)

    async def receive_after_waiting() -> Any:
        waiting = asyncio.ensure_future(stream.receive())
        await asyncio.sleep(0)  # waits: the stream's timer is set on this loop
        push.send_multipart(_array_parts(1))
        return await waiting

    try:
        assert run(receive_after_waiting()).data["header"]["frame"] == 1
        assert run(stream.receive()) is None  # would hang on the closed loop's timer
        assert stream.statistics.skipped["timeout"] == 1
    finally:
        stream.disconnect()


def test_a_stream_made_outside_any_loop_serves_two_loops_in_turn(push) -> None:
    stream = amflow.connect(endpoint(push), receive_timeout=TIMEOUT_MS)
    try:
        for frame in (1, 2):
            push.send_multipart(_array_parts(frame))
            assert run(stream.receive()).data["header"]["frame"] == frame
    finally:
        stream.disconnect()


def test_awaited_sends_have_left_when_they_return() -> None:
    async def send() -> int:
        async with amflow.connect(
            "tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUSH, send_timeout=TIMEOUT_MS
        ) as sender:
            with mflow.connect(sender.endpoint, receive_timeout=TIMEOUT_MS) as receiver:
                for frame in range(100):
                    await sender.forward(array_message(frame))
                frames = []
                for _ in range(100):
                    message = receiver.receive()
                    assert message is not None
                    frames.append(message.data["header"]["frame"])
                return frames == list(range(100))

    assert run(send())


def test_a_send_with_no_peer_times_out_like_a_blocking_send() -> None:
    async def send() -> None:
        async with amflow.connect(
            "tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUSH, send_timeout=30
        ) as sender:
            await sender.send_multipart([b"x"])

    with pytest.raises(mflow.SendTimeoutError):
        run(send())


def test_disconnect_wakes_a_waiting_receive_with_stream_closed(push) -> None:
    async def receive() -> None:
        stream = amflow.connect(endpoint(push))
        waiting = asyncio.ensure_future(stream.receive())
        await asyncio.sleep(0)
        stream.disconnect()
        await waiting

    with pytest.raises(mflow.StreamClosedError):
        run(receive())


def test_several_streams_and_a_merge_share_one_loop(new_push) -> None:
    pushes = [new_push() for _ in range(3)]

    async def receive() -> Any:
        single = amflow.connect(endpoint(pushes[0]), receive_timeout=TIMEOUT_MS)
        merged = amflow.Merge(
            *(amflow.connect(endpoint(p), receive_timeout=200) for p in pushes[1:])
        )
        async with single, merged:

            async def from_merge() -> list[int]:
                return sorted([m.data["header"]["frame"] async for m in merged])

            merging = asyncio.ensure_future(from_merge())
            for frame in range(20):
                pushes[1 + frame % 2].send_multipart(_array_parts(frame))
            pushes[0].send_multipart(_array_parts(99))
            one = await single.receive()
            return one.data["header"]["frame"], await merging, merged.statistics

    single_frame, merged_frames, statistics = run(receive())
    assert single_frame == 99
    assert merged_frames == list(range(20))
    assert statistics.messages_received == 20


def test_an_unclosed_stream_does_not_hang_interpreter_exit(push, event_loop_kind: str) -> None:
    script = textwrap.dedent(f"""
        import asyncio, mflow, mflow.asyncio as amflow
        async def main():
            global stream, sender
            stream = amflow.connect({endpoint(push)!r}, receive_timeout=10)
            sender = amflow.connect("tcp://127.0.0.1:*", conn_type=mflow.BIND,
                                    mode=mflow.PUSH, send_timeout=10)
            await stream.receive()
            asyncio.ensure_future(stream.receive())  # still pending when the loop ends
        {_RUN_MAIN[event_loop_kind]}
        print("done")
        """)
    result = run_python(script, timeout=DEADLINE * 2)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"


def test_decode_workers_are_refused_on_asyncio_streams():
    with pytest.raises(ConfigurationError, match="decode_workers"):
        amflow.connect("tcp://127.0.0.1:5", decode_workers=2)
