"""Merge: fair, blocking, quiet, one strategy per instance, summed statistics (bug B5)."""

from __future__ import annotations

import json
import threading
import time

import pytest

import mflow
from mflow.merge import Aligner, ArrivalMerge, Merge, RoundRobinStrategy

pytestmark = pytest.mark.usefixtures("receive_path")


def raw(n: int, source: str) -> list[bytes]:
    return [json.dumps({"htype": "raw-1.0", "frame": n, "source": source}).encode(), b"x"]


def make_inputs(stream_factory, count=2, **options):
    senders, receivers = [], []
    for _ in range(count):
        sender = stream_factory("tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUSH)
        senders.append(sender)
        receivers.append(stream_factory(sender.endpoint, **options))
    return senders, receivers


def test_round_robin_strategy():
    strategy = RoundRobinStrategy()
    assert [strategy.next([1, 2, 3]) for _ in range(5)] == [0, 1, 2, 0, 1]


def test_each_merge_has_its_own_strategy(stream_factory):
    _, receivers = make_inputs(stream_factory)
    assert Merge(*receivers).receive_strategy is not Merge(*receivers).receive_strategy


def test_merge_receives_from_all_streams_fairly(stream_factory, capsys):
    senders, receivers = make_inputs(stream_factory)
    for n in range(3):
        for index, sender in enumerate(senders):
            sender.send_multipart(raw(n, f"s{index}"))
    for receiver in receivers:  # both have messages waiting before the merge starts
        assert receiver.socket.poll(5000)
    merge = Merge(*receivers)
    sources = []
    for _ in range(6):
        sources.append(merge.receive().data["header"]["source"])
    assert sorted(sources) == ["s0"] * 3 + ["s1"] * 3
    assert sources[:2] in (["s0", "s1"], ["s1", "s0"])
    assert capsys.readouterr().out == ""  # 1.0 printed the polled index every time
    stats = merge.statistics
    assert stats.messages_received == 6 and stats.missed == 0
    merge.disconnect()
    assert all(r.closed for r in receivers)


def test_merge_blocks_until_a_message_arrives(stream_factory):
    senders, receivers = make_inputs(stream_factory)
    merge = Merge(*receivers)
    assert merge.receive(block=False) is None
    sent = threading.Timer(0.05, lambda: senders[1].send_multipart(raw(0, "late")))
    sent.start()
    try:
        message = merge.receive()
    finally:
        sent.join()
    assert message.data["header"]["source"] == "late"


def test_merge_blocking_receive_honours_timeouts(stream_factory):
    _, receivers = make_inputs(stream_factory, receive_timeout=30)
    assert Merge(*receivers).receive() is None


def frame_header(**fields) -> bytes:
    return json.dumps({"htype": "raw-1.0", **fields}).encode()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_aligner_releases_everything_at_the_end():
    aligner = Aligner("frame", 2, max_wait=60)
    assert aligner.add(0, [frame_header(frame=2)]) == []
    assert aligner.add(0, [frame_header(frame=1)]) == []
    assert list(aligner.expired()) == []
    assert list(aligner.expired(everything=True)) == [
        [frame_header(frame=1)],
        [frame_header(frame=2)],
    ]
    assert aligner.counts["incomplete"] == 2 and not aligner.pending


def test_aligner_sends_complete_groups_in_input_order_and_late_ones_at_once():
    aligner = Aligner("frame", 2, max_wait=60)
    assert aligner.add(1, [frame_header(frame=5, source="b")]) == []
    assert aligner.add(0, [frame_header(frame=5, source="a")]) == [
        [frame_header(frame=5, source="a")],
        [frame_header(frame=5, source="b")],
    ]
    assert aligner.add(1, [frame_header(frame=5)]) == [[frame_header(frame=5)]]
    assert aligner.add(0, [b"not json"]) == [[b"not json"]]
    assert aligner.counts == {"complete": 1, "incomplete": 0, "late": 1, "unaligned": 1}


def test_aligner_expires_groups_after_max_wait_in_the_order_they_began():
    clock = FakeClock()
    aligner = Aligner("frame", 2, max_wait=1.0, clock=clock)
    aligner.add(0, [frame_header(frame=9)])
    clock.now = 0.5
    aligner.add(0, [frame_header(frame=3)])
    aligner.add(0, [frame_header(frame=4)])
    aligner.add(1, [frame_header(frame=4)])  # complete: its deadline entry is skipped later
    clock.now = 1.0
    assert list(aligner.expired()) == [[frame_header(frame=9)]]
    clock.now = 1.6
    assert list(aligner.expired()) == [[frame_header(frame=3)]]
    assert aligner.counts["incomplete"] == 2 and not aligner.pending


def test_aligner_cost_does_not_grow_with_the_waiting_groups():
    """One silent input: every group waits; a round must not look at all of them."""
    clock = FakeClock()
    aligner = Aligner("frame", 2, max_wait=10.0, clock=clock)
    for frame in range(20_000):
        aligner.add(0, [frame_header(frame=frame)])
    comparisons = 0

    class CountingDeadline(float):
        def __le__(self, other):
            nonlocal comparisons
            comparisons += 1
            return float.__le__(self, other)

    aligner._deadlines[0] = (CountingDeadline(aligner._deadlines[0][0]), *aligner._deadlines[0][1:])
    for _ in range(100):  # 100 rounds with nothing due
        assert list(aligner.expired()) == []
    assert comparisons == 100  # one look at the earliest deadline per round


def test_aligner_ignores_a_header_that_is_too_deep_to_parse():
    aligner = Aligner("frame", 2, max_wait=60)
    deep = b"[" * 3000
    assert aligner.add(0, [deep]) == [[deep]]
    assert aligner.counts["unaligned"] == 1


def test_arrival_merge_takes_one_message_from_every_ready_stream(stream_factory):
    senders = [
        stream_factory("tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUSH) for _ in range(3)
    ]
    receivers = [stream_factory(sender.endpoint, mode=mflow.PULL) for sender in senders]
    for number in range(2):
        senders[0].send_multipart([b"a%d" % number])
    senders[2].send_multipart([b"c0"])
    merge = ArrivalMerge(receivers)
    taken: list = []
    deadline = time.monotonic() + 5
    while len(taken) < 3 and time.monotonic() < deadline:
        taken += [(index, [bytes(f) for f in frames]) for index, frames in merge.receive_round(100)]
    assert sorted(taken) == [(0, [b"a0"]), (0, [b"a1"]), (2, [b"c0"])]
    assert merge.received == [2, 0, 1]
    assert merge.receive_round(0, limit=1) == []
