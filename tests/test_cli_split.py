"""``mflow split`` and ``m_split``: whole messages to every output, modulo, drops, config.

In-process, but for a run that only a signal ends.
"""

from __future__ import annotations

import json

import pytest
import zmq

from .conftest import (
    header,
    invoke,
    make_socket,
    mixed_messages,
    receive_messages,
    send_messages,
    wait_until,
)

pytestmark = pytest.mark.usefixtures("receive_path")


def consumers(zmq_context, count, kind=zmq.PULL, hwm=1000):
    """``count`` bound test sockets for split outputs to connect to."""
    return [make_socket(zmq_context, kind, hwm=hwm) for _ in range(count)]


def test_every_output_gets_every_message_whole(commands, zmq_context):
    push, source = make_socket(zmq_context, zmq.PUSH)
    outputs = consumers(zmq_context, 2)
    split = commands("split", source, *(endpoint for _, endpoint in outputs), "--json", "-n", "200")
    split.event("start")
    messages = mixed_messages(200, seed=5)
    send_messages(push, messages)
    for pull, _ in outputs:
        assert receive_messages(pull, 200) == messages
    assert split.wait() == 0
    summary = split.summary()
    assert summary["messages"] == 200
    assert [o["sent"] for o in summary["outputs"]] == [200, 200]


def write_config(path, source, streams, **source_fields):
    path.write_text(
        json.dumps({"source": {"address": source, **source_fields}, "streams": streams})
    )
    return str(path)


def test_modulo_sends_every_nth_message_with_all_its_parts(commands, zmq_context, tmp_path):
    push, source = make_socket(zmq_context, zmq.PUSH)
    (all_pull, all_end), (half, half_end), (third, third_end) = consumers(zmq_context, 3)
    config = write_config(
        tmp_path / "split.json",
        source,
        [
            {"address": all_end},
            {"address": half_end, "mode": "push", "modulo": 2},
            {"address": third_end, "mode": "PUSH", "modulo": 3},
        ],
    )
    split = commands("split", "-c", config, "--json", "-n", "12")
    split.event("start")
    messages = [[header(frame=n), b"a" * n, b""] for n in range(12)]  # three parts each (B8)
    send_messages(push, messages)
    assert receive_messages(all_pull, 12) == messages
    assert receive_messages(half, 6) == messages[1::2]  # the 2nd, 4th, ... message
    assert receive_messages(third, 4) == messages[2::3]
    assert split.wait() == 0
    assert [o["sent"] for o in split.summary()["outputs"]] == [12, 6, 4]


def test_a_slow_non_blocking_output_drops_instead_of_stalling(commands, zmq_context, tmp_path):
    push, source = make_socket(zmq_context, zmq.PUSH)
    fast, fast_end = make_socket(zmq_context, zmq.PULL)
    slow, slow_end = make_socket(zmq_context, zmq.PULL, hwm=1)  # never read
    config = write_config(
        tmp_path / "split.json",
        source,
        [{"address": fast_end}, {"address": slow_end, "block": False, "queue_size": 1}],
    )
    split = commands("split", "-c", config, "--json", "-n", "2000")
    split.event("start")
    messages = [[header(frame=n), bytes(10_000)] for n in range(2000)]
    send_messages(push, messages)
    assert receive_messages(fast, 2000) == messages
    assert split.wait() == 0
    fast_counts, slow_counts = split.summary()["outputs"]
    assert (fast_counts["sent"], fast_counts["dropped"]) == (2000, 0)
    assert slow_counts["dropped"] > 0
    assert slow_counts["sent"] + slow_counts["dropped"] == 2000


def test_no_block_applies_to_every_output(commands, zmq_context):
    push, source = make_socket(zmq_context, zmq.PUSH)
    slow, slow_end = make_socket(zmq_context, zmq.PULL, hwm=1)  # never read
    split = commands(
        "split", source, slow_end, "--no-block", "--queue-size", "1", "--json", "-n", "2000"
    )
    split.event("start")
    send_messages(push, [[header(frame=n), bytes(10_000)] for n in range(2000)])
    assert split.wait() == 0
    assert split.summary()["outputs"][0]["dropped"] > 0


def test_pub_outputs(tools, zmq_context):
    push, source = make_socket(zmq_context, zmq.PUSH)
    sub, sub_end = make_socket(zmq_context, zmq.SUB)
    split = tools("split", source, sub_end, "--output-mode", "pub", "--json")
    split.event("start")

    def publish() -> bool:  # a PUB drops what it sends before the subscription arrives
        send_messages(push, [[b"probe"]])
        return sub.poll(10)

    wait_until(publish, what="the subscription")
    while sub.poll(100):
        sub.recv_multipart()
    send_messages(push, [[b"a", b""], [b"b"]])
    assert receive_messages(sub, 2) == [[b"a", b""], [b"b"]]
    split.signal()
    assert split.wait() == 130


def test_m_split_binds_its_outputs_as_1_0(commands, zmq_context):
    push, source = make_socket(zmq_context, zmq.PUSH)
    split = commands(source, "tcp://127.0.0.1:*", "--json", "-n", "1", script="m_split")
    output = split.endpoint("output")
    pull, _ = make_socket(zmq_context, zmq.PULL, bind=False, address=output)
    split.event("start")
    wait_until(lambda: pull.poll(0) or push.poll(10, zmq.POLLOUT), what="connections")
    send_messages(push, [[b"x", b"y"]])
    assert receive_messages(pull, 1) == [[b"x", b"y"]]
    assert split.wait() == 0


def test_m_split_prints_config_as_1_0(commands, zmq_context, tmp_path):
    push, source = make_socket(zmq_context, zmq.PUSH)
    pull, pull_end = make_socket(zmq_context, zmq.PULL)
    config = write_config(tmp_path / "c.json", source, [{"address": pull_end}])
    split = commands("-c", config, "-n", "1", script="m_split")
    assert split.line() == "config"
    send_messages(push, [[b"x"]])
    assert receive_messages(pull, 1) == [[b"x"]]
    assert split.wait() == 0
    assert split.stdout_lines == ["config"]


def test_m_split_without_arguments_is_a_usage_error():
    split = invoke(script="m_split")
    assert split.exit_code == 2
    assert "give SOURCE and at least one OUTPUT, or --config FILE" in split.stderr


@pytest.mark.parametrize(
    "content, problem",
    [
        ("{not json", "not valid JSON"),
        ('{"source": {"address": "tcp://h:1"}}', '"streams" list'),
        (
            '{"source": {"address": "tcp://h:1"}, "streams": [{"address": "tcp://*:2", '
            '"mode": "PULL"}]}',
            "streams[0].mode 'PULL' is not PUSH or PUB",
        ),
        (
            '{"source": {"address": "tcp://h:1", "mode": "push"}, "streams": [{"address": '
            '"tcp://*:2"}]}',
            "source.mode 'push' is not PULL or SUB",
        ),
        (
            '{"source": {"address": "tcp://h:1"}, "streams": [{"address": "tcp://*:2", '
            '"modulo": -1}]}',
            "streams[0].modulo -1",
        ),
        ('{"source": {}, "streams": []}', 'source needs an "address"'),
        (
            '{"source": {"address": "tcp://h:1"}, "streams": [{"address": "tcp://*:2", '
            '"modulo": 0}]}',
            "streams[0].modulo 0 is not a whole number >= 1",
        ),
        (
            '{"source": {"address": "tcp://h:1"}, "streams": [{"address": "tcp://*:2", '
            '"moduloo": 2}]}',
            "streams[0] has unknown key(s) 'moduloo'",
        ),
        (
            '{"source": {"address": "tcp://h:1", "hwm": 5}, "streams": [{"address": "tcp://*:2"}]}',
            "source has unknown key(s) 'hwm'",
        ),
        (
            '{"source": {"address": "tcp://h:1"}, "streams": [{"address": "tcp://*:2"}], "x": 1}',
            "the config has unknown key(s) 'x'",
        ),
    ],
)
def test_malformed_config_is_one_line_and_exit_1(tmp_path, content, problem):
    path = tmp_path / "split.json"
    path.write_text(content)
    split = invoke("split", "-c", str(path))
    assert split.exit_code == 1
    assert split.stderr.startswith(f"Error: config '{path}': ")
    assert problem in split.stderr and split.stderr.count("\n") == 1


def test_missing_config_is_an_error(tmp_path):
    split = invoke("split", "-c", str(tmp_path / "none.json"))
    assert split.exit_code == 1
    assert "No such file or directory" in split.stderr
