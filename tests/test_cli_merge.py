"""``mflow merge``: fair merging, alignment on a header key, bounded waits.

In-process, but for a run that only a signal ends.
"""

from __future__ import annotations

import itertools
import json

import zmq

from .conftest import header, make_socket, receive_messages, send_messages


def start_merge(start, zmq_context, inputs, *args):
    """Start a merge (``start``: `commands` or `tools`) and connect a PULL socket to it."""
    tool = start("merge", *inputs, "-o", "tcp://127.0.0.1:*", "--json", *args)
    pull, _ = make_socket(zmq_context, zmq.PULL, bind=False, address=tool.endpoint())
    return tool, pull


def test_every_message_of_every_input_arrives_whole(commands, zmq_context):
    sources = [make_socket(zmq_context, zmq.PUSH) for _ in range(3)]
    tool, pull = start_merge(
        commands, zmq_context, [endpoint for _, endpoint in sources], "-n", "150"
    )
    for index, (push, _) in enumerate(sources):
        send_messages(
            push, [[header(source=index, frame=n), b"", bytes([index])] for n in range(50)]
        )
    received = receive_messages(pull, 150)
    assert tool.wait() == 0
    for index in range(3):
        mine = [m for m in received if json.loads(m[0])["source"] == index]
        assert [json.loads(m[0])["frame"] for m in mine] == list(range(50))
        assert all(m[1:] == [b"", bytes([index])] for m in mine)
    summary = tool.summary()
    assert [i["received"] for i in summary["inputs"]] == [50, 50, 50]
    assert summary["sent"] == 150


def _fill_in_turns(pushes: list[zmq.Socket]) -> None:
    """Send on every input in turns until each one's way to the merge is full (a send times
    out): a merge that reads nothing yet then has a full queue on every input, whenever
    the messages on their way arrive."""
    full: set[int] = set()
    for frame in itertools.count():
        for index, push in enumerate(pushes):
            if index not in full:
                try:
                    push.send_multipart([header(source=index, frame=frame), bytes(1024)])
                except zmq.Again:
                    full.add(index)
            push.sndtimeo = 500  # once connected: a send waits only while the way is full
        if len(full) == len(pushes):
            return


def test_inputs_are_served_fairly(commands, zmq_context):
    sources = [make_socket(zmq_context, zmq.PUSH) for _ in range(2)]
    tool = commands(
        "merge",
        *(e for _, e in sources),
        "-o",
        "tcp://127.0.0.1:*",
        "--json",
        "--wait-for-peer",
        "-n",
        "200",
        "--queue-size",
        "1000",
    )
    # Both inputs fill before anyone reads (the merge waits for its peer), each beyond the
    # 100 messages the merge could take from it first.
    _fill_in_turns([push for push, _ in sources])
    pull, _ = make_socket(zmq_context, zmq.PULL, bind=False, address=tool.endpoint())
    order = [json.loads(m[0])["source"] for m in receive_messages(pull, 200)]
    assert tool.wait() == 0
    assert abs(order[:100].count(0) - order[:100].count(1)) <= 20


def test_align_sends_groups_together_in_input_order(commands, zmq_context):
    (a, a_end), (b, b_end) = [make_socket(zmq_context, zmq.PUSH) for _ in range(2)]
    tool, pull = start_merge(commands, zmq_context, [a_end, b_end], "--align", "frame", "-n", "10")
    send_messages(b, [[header(input="b", frame=n)] for n in range(5)])
    send_messages(a, [[header(input="a", frame=n)] for n in range(5)])
    received = [json.loads(m[0]) for m in receive_messages(pull, 10)]
    assert tool.wait() == 0
    for n in range(5):
        pair = [m for m in received if m["frame"] == n]
        assert [m["input"] for m in pair] == ["a", "b"]
        assert received.index(pair[1]) == received.index(pair[0]) + 1
    assert tool.summary()["groups"]["complete"] == 5


def test_align_waits_a_bounded_time_for_missing_messages(tools, zmq_context):
    (a, a_end), (b, b_end) = [make_socket(zmq_context, zmq.PUSH) for _ in range(2)]
    tool, pull = start_merge(
        tools, zmq_context, [a_end, b_end], "--align", "pulse_id", "--max-wait", "0.2"
    )
    send_messages(a, [[header(pulse_id=7)], [header(pulse_id=8)], [b"no header"]])
    send_messages(b, [[header(pulse_id=8)]])
    received = receive_messages(pull, 4)
    assert [b"no header"] in received  # unaligned: forwarded as it came
    aligned = [m for m in received if m != [b"no header"]]
    assert aligned == [[header(pulse_id=8)]] * 2 + [[header(pulse_id=7)]]  # 7: after 0.2 s
    send_messages(b, [[header(pulse_id=7)]])  # after its group left: late, forwarded
    assert receive_messages(pull, 1) == [[header(pulse_id=7)]]
    tool.signal()
    assert tool.wait() == 130
    assert tool.summary()["groups"] == {"complete": 1, "incomplete": 1, "late": 1, "unaligned": 1}


def test_align_forwards_a_header_too_deep_to_parse_and_keeps_what_it_held(commands, zmq_context):
    (a, a_end), (b, b_end) = [make_socket(zmq_context, zmq.PUSH) for _ in range(2)]
    tool, pull = start_merge(commands, zmq_context, [a_end, b_end], "--align", "frame", "-n", "3")
    send_messages(a, [[header(frame=1)], [b"[" * 3000]])
    assert receive_messages(pull, 1) == [[b"[" * 3000]]  # unaligned: forwarded at once
    send_messages(b, [[header(frame=1)]])
    assert receive_messages(pull, 2) == [[header(frame=1)]] * 2
    assert tool.wait() == 0
    assert tool.summary()["groups"] == {"complete": 1, "incomplete": 0, "late": 0, "unaligned": 1}
