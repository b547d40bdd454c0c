"""``mflow generate`` and ``m_generate``: every message type, decoded by the library.

In-process, but for signals and the end of the process (which must not drop messages).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings

import numpy as np
import pytest
import zmq

import mflow
from mflow import synthetic

from .conftest import invoke, make_socket, receive_messages


def decoded(endpoint: str, count: int) -> list[dict]:
    """``count`` messages from ``endpoint``, decoded by mflow (fails on a bad one)."""
    with mflow.connect(endpoint, receive_timeout=10_000, strict=True) as stream:
        messages = [stream.receive() for _ in range(count)]
    assert all(message is not None for message in messages)
    return [message.data for message in messages]


def start(commands, *args: str):
    tool = commands("generate", *args, "-a", "tcp://127.0.0.1:*", "--json")
    return tool, tool.endpoint()


def test_raw_with_a_size_and_count(commands):
    tool, endpoint = start(commands, "raw", "-s", "100B", "-n", "3")
    data = decoded(endpoint, 3)
    assert tool.wait() == 0
    assert [d["header"] for d in data] == [{"htype": "raw-1.0", "frame": n} for n in range(3)]
    assert all(len(d["data"]) == 1 and len(d["data"][0]) == 100 for d in data)
    summary = tool.summary()
    assert summary["messages"] == 3 and summary["bytes"] == 3 * 100 + sum(
        len(json.dumps(d["header"])) for d in data
    )


def test_array_dtype_and_shape(commands):
    tool, endpoint = start(commands, "array", "--dtype", "float32", "--shape", "3x5", "-n", "2")
    data = decoded(endpoint, 2)
    assert tool.wait() == 0
    for frame, message in enumerate(data):
        assert message["header"] == {
            "htype": "array-1.0",
            "type": "float32",
            "shape": [3, 5],
            "frame": frame,
        }
        assert message["data"][0].shape == (3, 5) and message["data"][0].dtype == np.float32


@pytest.mark.parametrize(
    "compression, encoding", [("none", "<"), ("lz4", "lz4<"), ("bslz4", "bs16-lz4<")]
)
def test_dectris_series(commands, compression, encoding):
    tool, endpoint = start(
        commands,
        "dectris",
        "--images",
        "3",
        "--shape",
        "40x30",
        "--compression",
        compression,
        "--header-detail",
        "all",
        "-n",
        "6",
    )
    data = decoded(endpoint, 6)
    assert tool.wait() == 0
    htypes = [d["header"]["htype"] for d in data]
    assert htypes == ["dheader-1.0"] + ["dimage-1.0"] * 3 + ["dseries_end-1.0", "dheader-1.0"]
    assert data[0]["flatfield"].shape == (40, 30)
    assert data[0]["part_2"]["nimages"] == 3
    for frame, image in enumerate(data[1:4]):
        assert image["header"]["frame"] == frame and image["header"]["series"] == 1
        assert image["part_2"]["encoding"] == encoding
        assert image["image"].shape == (40, 30) and image["image"].dtype == np.uint16
    assert data[5]["header"]["series"] == 2


@pytest.mark.parametrize("compression", ["none", "lz4", "bslz4"])
def test_stream2_series(commands, compression):
    tool, endpoint = start(
        commands,
        "stream2",
        "--images",
        "2",
        "--shape",
        "16x24",
        "--compression",
        compression,
        "-n",
        "4",
    )
    data = decoded(endpoint, 4)
    assert tool.wait() == 0
    assert [d["type"] for d in data] == ["start", "image", "image", "end"]
    assert data[0]["image_size_x"] == 24 and data[0]["image_size_y"] == 16
    assert [d["image_id"] for d in data[1:3]] == [0, 1]
    assert data[1]["data"]["threshold_1"].shape == (16, 24)


@pytest.mark.parametrize("compression", ["none", "lz4", "bslz4"])
def test_bsread_channels(commands, compression):
    tool, endpoint = start(
        commands,
        "bsread",
        "--channel",
        "A:float64",
        "--channel",
        "IMG:uint16:4x8",
        "--channel",
        "S:string",
        "--compression",
        compression,
        "-n",
        "2",
    )
    data = decoded(endpoint, 2)
    assert tool.wait() == 0
    assert [d["pulse_id"] for d in data] == [0, 1]
    assert list(data[0]["data"]) == ["A", "IMG", "S"]
    assert data[1]["data"]["IMG"].shape == (4, 8)
    assert data[1]["data"]["S"] == "OK pulse 1"
    channels = {c["name"]: c for c in data[0]["data_header"]["channels"]}
    expected = {"none": "none", "lz4": "lz4", "bslz4": "bitshuffle_lz4"}[compression]
    assert channels["IMG"]["compression"] == expected


def test_bsread_default_channels(commands):
    tool, endpoint = start(commands, "bsread", "-n", "1")
    data = decoded(endpoint, 1)
    assert tool.wait() == 0
    assert len(data[0]["data"]) == 6


def test_sls_frames_and_end_of_acquisition(commands):
    tool, endpoint = start(commands, "sls", "--images", "2", "--shape", "8x16", "-n", "3")
    data = decoded(endpoint, 3)
    assert tool.wait() == 0
    assert [d["header"]["frameIndex"] for d in data[:2]] == [0, 1]
    assert data[0]["image"].shape == (8, 16) and data[0]["header"]["bitmode"] == 16
    assert data[2]["image"] is None and data[2]["header"]["data"] == 0


def test_bad_spec_is_one_line_and_exit_1():
    tool = invoke("generate", "dectris", "--shape", "2x3x4", "-a", "tcp://127.0.0.1:*")
    assert tool.exit_code == 1
    assert tool.stderr.startswith("Error: ") and "two dimensions" in tool.stderr


def test_rate_paces_messages(commands):
    tool, endpoint = start(commands, "raw", "-s", "10B", "-n", "11", "--rate", "50")
    decoded(endpoint, 11)
    assert tool.wait() == 0
    assert tool.summary()["elapsed"] >= 0.19  # 10 intervals of 20 ms


def test_pub_with_wait_for_peer_loses_nothing(commands, zmq_context):
    tool = commands(
        "generate",
        "raw",
        "-s",
        "10B",
        "-n",
        "20",
        "-m",
        "pub",
        "--wait-for-peer",
        "-a",
        "tcp://127.0.0.1:*",
        "--json",
    )
    sub, _ = make_socket(zmq_context, zmq.SUB, bind=False, address=tool.endpoint())
    messages = receive_messages(sub, 20)
    assert tool.wait() == 0
    assert [json.loads(m[0])["frame"] for m in messages] == list(range(20))


def test_peer_timeout_is_an_error():
    tool = invoke(
        "generate", "-n", "1", "--wait-for-peer", "--peer-timeout", "0.2", "-a", "tcp://127.0.0.1:*"
    )
    assert tool.exit_code == 1
    assert "Error: no peer connected to tcp://127.0.0.1:" in tool.stderr


def test_interrupt_while_blocked_without_peer(tools):
    tool = tools("generate", "-a", "tcp://127.0.0.1:*", "--json")
    tool.event("generate")
    tool.signal()
    assert tool.wait() == 130
    assert tool.summary()["messages"] == 0


def test_m_generate_keeps_the_1_0_stream_with_an_integer_shape(tools):
    tool = tools("-a", "tcp://127.0.0.1:*", "-s", "0.001", script="m_generate")
    line = tool.line()
    assert line.startswith("Sending messages of size 0.000999 MiB (1048 bytes) on tcp://")
    endpoint = line.rsplit(" ", 1)[1]
    with mflow.connect(endpoint, receive_timeout=10_000) as stream:
        message = stream.receive()
    assert message.data["header"] == {
        "htype": "array-1.0",
        "type": "int32",
        "shape": [1, 262],
        "frame": 0,
    }
    assert message.data["data"][0].tobytes() == bytes(1048)
    tool.signal()
    assert tool.wait() == 130
    assert "Terminated by user." in tool.stdout_lines
    assert tool.stdout_lines[-1] == "_" * 60


def test_generate_runs_until_duration():
    start_time = time.monotonic()
    tool = invoke("generate", "-a", "tcp://127.0.0.1:*", "-d", "0.3", "--json")
    assert tool.exit_code == 0
    assert time.monotonic() - start_time >= 0.3


def test_nothing_queued_is_lost_when_the_generator_ends(tools, zmq_context):
    # Unbinding before closing made libzmq drop what a fresh connection still held (about
    # one run in three); closing with LINGER delivers it.
    for _ in range(8):
        tool = tools(
            "generate",
            "dectris",
            "--header-detail",
            "all",
            "--shape",
            "40x30",
            "-n",
            "6",
            "-a",
            "tcp://127.0.0.1:*",
            "--json",
        )
        pull, _ = make_socket(zmq_context, zmq.PULL, bind=False, address=tool.endpoint())
        assert len(receive_messages(pull, 6)) == 6
        assert tool.wait() == 0


# -- a real Stream V1 consumer ------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32"])
@pytest.mark.parametrize("compression", ["none", "lz4", "bslz4"])
def test_libertem_dectris_decodes_every_pixel(commands, compression, dtype):
    """libertem-dectris (a real consumer) takes the series and decodes every pixel exactly.

    libertem-dectris 0.3 does not decode the uncompressed encoding ``<``, so for ``none``
    it checks that the series is accepted with the right frames, shape, type and encoding.
    """
    libertem_dectris = pytest.importorskip("libertem_dectris")
    images, shape = 6, (24, 40)
    tool, endpoint = start(
        commands,
        "dectris",
        "--images",
        str(images),
        "-n",
        str(images + 2),
        "--shape",
        "24x40",
        "--dtype",
        dtype,
        "--compression",
        compression,
    )
    with tempfile.TemporaryDirectory(prefix="mflow-") as folder:
        connection = libertem_dectris.DectrisConnection(
            uri=endpoint,
            handle_path=os.path.join(folder, "shm"),
            frame_stack_size=4,
            num_slots=8,
            bytes_per_frame=shape[0] * shape[1] * 4,
            huge=False,
        )
        try:
            connection.start_passive(timeout=10)
            armed = connection.wait_for_arm(timeout=10)
            assert armed is not None, "libertem-dectris saw no dheader-1.0"
            config, series = armed
            assert series == 1 and config.get_num_frames() == images
            assert str(config.get_trigger_mode()).upper().endswith("INTS")
            client = libertem_dectris.CamClient(connection.get_socket_path())
            received: list[np.ndarray] = []
            try:
                while (stack := connection.get_next_stack(max_size=4)) is not None:
                    assert tuple(reversed(stack.get_shape())) == shape
                    assert np.dtype(stack.get_dtype_string()) == np.dtype(dtype)
                    with warnings.catch_warnings():  # deprecated, without a replacement
                        warnings.simplefilter("ignore", DeprecationWarning)
                        encoding = stack.get_encoding()
                    assert encoding == {"none": "<", "lz4": "lz4<"}.get(
                        compression, f"bs{8 * np.dtype(dtype).itemsize}-lz4<"
                    )
                    frames = np.zeros((len(stack), *shape), dtype)
                    if compression != "none":
                        client.decode_range_into_buffer(stack, frames, 0, len(stack))
                    received.extend(frames)
                    client.done(stack)
            finally:
                client.close()
        finally:
            connection.close()
    assert tool.wait() == 0
    assert len(received) == images
    if compression != "none":
        expected = synthetic.detector_images(shape, dtype)
        for index, frame in enumerate(received):
            np.testing.assert_array_equal(frame, expected[index % len(expected)])


def test_m_generate_help_says_what_it_does():
    result = invoke("--help", script="m_generate")
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: m_generate [OPTIONS] [TYPE]")
    text = " ".join(result.stdout.split())
    assert "until Ctrl-C (or --count / --duration)" in text
    assert "TYPE and every other option are those of `mflow generate`" in text


def test_m_generate_sends_any_type_as_its_help_says(commands):
    tool = commands(
        "dectris",
        "--images",
        "2",
        "-n",
        "4",
        "--shape",
        "8x6",
        "-a",
        "tcp://127.0.0.1:*",
        script="m_generate",
    )
    line = tool.line()
    assert line.startswith("Sending messages of size ")
    endpoint = line.rsplit(" ", 1)[1]
    with mflow.connect(endpoint, receive_timeout=10_000, strict=True) as stream:
        htypes = [stream.receive().data["header"]["htype"] for _ in range(4)]
    assert htypes == ["dheader-1.0", "dimage-1.0", "dimage-1.0", "dseries_end-1.0"]
    assert tool.wait() == 0
