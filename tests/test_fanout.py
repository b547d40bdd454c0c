"""mflow.fanout: headers and ends to every output, images divided, series kept whole; real
sockets on 127.0.0.1."""

from __future__ import annotations

import json
from typing import Any, Callable, Iterator

import cbor2
import pytest
import zmq

import mflow
from mflow.fanout import (
    END,
    HEADER,
    IMAGE,
    OTHER,
    Classified,
    FanOut,
    FanOutput,
    cbor_peek,
    classify,
)

from .conftest import TIMEOUT_MS, wait_until

pytestmark = pytest.mark.usefixtures("receive_path")


def v1_header(series: int) -> list[bytes]:
    return [
        json.dumps({"htype": "dheader-1.0", "series": series, "header_detail": "none"}).encode()
    ]


def v1_image(series: int, frame: int, size: int = 8) -> list[bytes]:
    return [
        json.dumps({"htype": "dimage-1.0", "series": series, "frame": frame, "hash": ""}).encode(),
        b'{"htype": "dimage_d-1.0", "shape": [2, 2], "type": "uint16", "encoding": "<", "size": 8}',
        bytes([frame % 256]) * size,
        b'{"htype": "dconfig-1.0", "start_time": 0, "stop_time": 1, "real_time": 1}',
    ]


def v1_end(series: int) -> list[bytes]:
    return [json.dumps({"htype": "dseries_end-1.0", "series": series}).encode()]


def v2(message: dict[str, Any], self_described: bool = True) -> list[bytes]:
    encoded = cbor2.dumps(message)
    return [b"\xd9\xd9\xf7" + encoded if self_described else encoded]


def test_classify_knows_every_kind_of_message() -> None:
    assert classify(v1_header(3)) == Classified(HEADER, 3, None)
    assert classify(v1_image(3, 7)) == Classified(IMAGE, 3, 7)
    assert classify(v1_end(3)) == Classified(END, 3, None)
    assert classify(v2({"type": "start", "series_id": 5})) == Classified(HEADER, 5, None)
    image = {"type": "image", "series_id": 5, "data": {"t1": b"\0" * 100_000}, "image_id": 9}
    assert classify(v2(image)) == Classified(IMAGE, 5, 9)  # found past the blob
    assert classify(v2({"type": "end", "series_id": 5}, False)) == Classified(END, 5, None)
    assert classify([b'{"htype": "bsr_m-1.1", "pulse_id": 42}', b"{}"]) == Classified(
        IMAGE, None, 42
    )
    assert classify(
        [b'{"htype": "array-1.0", "frame": 4, "type": "uint8", "shape": [1]}', b"x"]
    ) == Classified(IMAGE, None, 4)
    assert classify([b'{"jsonversion": 5, "frameIndex": 8, "data": 1}\n', b""]) == Classified(
        IMAGE, None, 8
    )
    assert classify([b'{"jsonversion": 5, "frameIndex": 0, "data": 0}\n']) == Classified(END)
    assert classify([b'{"htype": "raw-1.0"}']) == Classified(OTHER)
    assert classify([b"\xff\x00garbage"]) == Classified(OTHER)
    assert classify([]) == Classified(OTHER)


@pytest.mark.parametrize(
    "data",
    [
        b"\xa1" + b"\x81" * 10_000,  # nested far too deep
        b"\xbf\x64type\x65image\x6a",  # truncated inside a key
        b"\xa2\x64type\x65image\x68image_id\x1b\xff",  # truncated integer
        b"\xd9\xd9\xf7\xa1\x1c\x00",  # reserved additional information
    ],
)
def test_cbor_peek_survives_hostile_input(data: bytes) -> None:
    assert cbor_peek(memoryview(data), ("type", "image_id")).get("image_id") is None


def test_cbor_peek_ignores_unbounded_and_unhashable_values() -> None:
    message = cbor2.dumps({"type": "image", "series_id": [1, 2], "image_id": "x" * 1000})
    assert classify([message]) == Classified(IMAGE, None, None)


@pytest.fixture
def consumers(zmq_context: zmq.Context) -> Callable[[int], list[tuple[zmq.Socket, str]]]:
    """Bound PULL sockets for the fan-out's outputs to connect to."""

    def make(count: int, hwm: int = 1000) -> list[tuple[zmq.Socket, str]]:
        made = []
        for _ in range(count):
            socket = zmq_context.socket(zmq.PULL)
            socket.rcvhwm = hwm  # before binding: connections take it from the listener
            socket.linger = 0
            socket.rcvtimeo = TIMEOUT_MS
            socket.bind("tcp://127.0.0.1:*")
            made.append((socket, socket.last_endpoint.decode()))
        return made

    return make


@pytest.fixture
def outputs() -> Iterator[Callable[..., list[FanOutput]]]:
    opened: list[FanOutput] = []

    def make(addresses: list[str], queue_size: int = 100) -> list[FanOutput]:
        for address in addresses:
            stream = mflow.connect(
                address, mode=mflow.PUSH, queue_size=queue_size, linger=0, watch_peers=True
            )
            opened.append(FanOutput(stream, address))
        return opened[-len(addresses) :]

    yield make
    for output in opened:
        output.stream.disconnect()


def connected(*fan_outputs: FanOutput) -> None:
    wait_until(lambda: all(output.connected for output in fan_outputs))


def frames_of(socket: zmq.Socket, count: int) -> list[list[bytes]]:
    return [socket.recv_multipart() for _ in range(count)]


def test_block_division_sends_headers_and_ends_to_all_and_whole_blocks(consumers, outputs) -> None:
    sockets = consumers(3)
    fan_outputs = outputs([address for _, address in sockets])
    connected(*fan_outputs)
    fanout = FanOut(fan_outputs, block=2)
    fanout.forward(v1_header(1))
    for frame in range(12):
        fanout.forward(v1_image(1, frame))
    fanout.forward(v1_end(1))
    for index, (socket, _) in enumerate(sockets):
        mine = [frame for frame in range(12) if frame // 2 % 3 == index]
        assert frames_of(socket, 6) == [v1_header(1), *(v1_image(1, f) for f in mine), v1_end(1)]
    assert [o.images for o in fan_outputs] == [4, 4, 4]
    assert fanout.counts()["series_started"] == 1 and fanout.dropped == 0


def test_stream2_and_bsread_are_divided_alike(consumers, outputs) -> None:
    sockets = consumers(2)
    fan_outputs = outputs([address for _, address in sockets])
    connected(*fan_outputs)
    fanout = FanOut(fan_outputs, block=1)
    fanout.forward(v2({"type": "start", "series_id": 2}))
    for image in range(4):
        fanout.forward(v2({"type": "image", "series_id": 2, "image_id": image}))
    for pulse in (100, 101):
        fanout.forward([json.dumps({"htype": "bsr_m-1.1", "pulse_id": pulse}).encode()])
    first = frames_of(sockets[0][0], 4)
    second = frames_of(sockets[1][0], 4)
    assert [classify(m).number for m in first] == [None, 0, 2, 100]
    assert [classify(m).number for m in second] == [None, 1, 3, 101]


def test_a_consumer_that_joins_mid_series_gets_the_header_first(
    consumers, outputs, zmq_context
) -> None:
    ((early, early_address),) = consumers(1)
    late = zmq_context.socket(zmq.PULL)
    late.linger = 0
    late.rcvtimeo = TIMEOUT_MS
    late_port = late.bind_to_random_port("tcp://127.0.0.1")
    late.unbind(late.last_endpoint)  # nobody there at first
    first, second = outputs([early_address, f"tcp://127.0.0.1:{late_port}"])
    connected(first)
    fanout = FanOut([first, second], block=1)
    fanout.forward(v1_header(7))
    fanout.forward(v1_image(7, 1))  # output 1 has no consumer: rerouted to output 0
    assert second.missed == 1 and first.images == 1
    late.bind(f"tcp://127.0.0.1:{late_port}")
    connected(second)
    fanout.forward(v1_image(7, 3))
    assert frames_of(late, 2) == [v1_header(7), v1_image(7, 3)]
    assert frames_of(early, 2) == [v1_header(7), v1_image(7, 1)]
    assert first.rerouted == 1 and second.headers == 1


def test_a_consumer_that_leaves_gets_nothing_more_and_its_queue_is_counted(
    consumers, outputs
) -> None:
    (keeper, keeper_address), (leaver, leaver_address) = consumers(2)
    fan_outputs = outputs([keeper_address, leaver_address])
    connected(*fan_outputs)
    fanout = FanOut(fan_outputs, block=1)
    fanout.forward(v1_header(1))
    fanout.forward(v1_image(1, 0))
    fanout.forward(v1_image(1, 1))
    assert frames_of(leaver, 2) == [v1_header(1), v1_image(1, 1)]
    leaver.close(linger=0)
    wait_until(lambda: not fan_outputs[1].connected)
    for frame in range(2, 6):
        fanout.forward(v1_image(1, frame))
    fanout.forward(v1_end(1))
    assert [classify(m).number for m in frames_of(keeper, 7)] == [None, 0, 2, 3, 4, 5, None]
    assert fan_outputs[0].rerouted == 2 and fan_outputs[1].missed == 1
    assert fan_outputs[1].left_mid_series == 1 and fan_outputs[0].left_mid_series == 0
    # ZeroMQ cannot tell whether the two messages sent to it arrived: both are named.
    delivery = fan_outputs[1].stream.delivery
    wait_until(lambda: delivery.undelivered_max == 2)
    assert delivery.undelivered == 0
    assert fanout.dropped == 0


def test_by_load_passes_a_slow_consumer_by(consumers, outputs) -> None:
    (slow, slow_address), (fast, fast_address) = consumers(2, hwm=1)
    fan_outputs = outputs([slow_address, fast_address], queue_size=1)
    connected(*fan_outputs)
    fanout = FanOut(fan_outputs, block=None)
    fanout.forward(v1_header(1))
    # Images large enough that the operating system's socket buffers hold only a few.
    image = v1_image(1, 0, size=4 << 20)
    received = 0  # by the fast consumer: the header, then every image it was given
    for _ in range(40):
        fanout.forward(image)
        # The fast consumer keeps up: it takes each image before the next is forwarded (a
        # forward waits while no output has room, and this test is the fast consumer).
        while received < 1 + fan_outputs[1].images:
            fast.recv_multipart()
            received += 1
    # The slow one never reads: it takes what fits in its queues, the fast one the rest.
    assert fan_outputs[0].images + fan_outputs[1].images == 40
    assert fan_outputs[0].images <= 10 < fan_outputs[1].images


def test_aborted_restarted_and_stray_series_are_counted(consumers, outputs) -> None:
    ((socket, address),) = consumers(1)
    fan_outputs = outputs([address])
    connected(*fan_outputs)
    fanout = FanOut(fan_outputs, block=10)
    fanout.forward(v1_header(1))
    fanout.forward(v1_image(1, 0))
    fanout.forward(v1_header(2))  # series 1 never ended
    fanout.forward(v1_image(1, 1))  # a late image of series 1
    fanout.forward(v1_header(2))  # the same series number again
    fanout.forward(v1_image(2, 0))
    fanout.forward(v1_end(1))  # a late end of series 1
    fanout.forward(v1_end(2))
    counts = fanout.counts()
    assert (counts["aborted"], counts["restarted"], counts["stray"]) == (1, 1, 2)
    assert counts["series_started"] == 3
    assert frames_of(socket, 6) == [
        v1_header(1),
        v1_image(1, 0),
        v1_header(2),
        v1_header(2),
        v1_image(2, 0),
        v1_end(2),
    ]


def test_a_fanout_needs_an_output_and_a_positive_block() -> None:
    with pytest.raises(ValueError):
        FanOut([])
