"""Merge: fair, blocking, quiet, one strategy per instance, summed statistics (bug B5)."""

from __future__ import annotations

import json
import threading

import pytest

import mflow
from mflow.merge import Merge, RoundRobinStrategy

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
