"""The conformance kit every message-type test reuses.

- `round_trip`: send a message with its handler through real sockets and receive it back;
- `encode` / `decode`: a handler's wire parts for a message and back, without sockets;
- `load_golden` / `save_golden`: committed multipart fixtures (``tests/fixtures/*.json``,
  parts base64-encoded) that pin the exact bytes on the wire;
- `assert_same`: deep equality that understands numpy arrays and buffers.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import zmq

import mflow
from mflow.receiver import ReceiveHandler

FIXTURES = Path(__file__).parent / "fixtures"


def encode(handler: Any, message: Any) -> list[bytes]:
    """The parts ``handler.send`` emits for ``message``, checking SNDMORE is never left set."""
    parts: list[bytes] = []
    more: list[bool] = []

    def send(part: Any, send_more: bool = False, block: bool = True, as_json: bool = False):
        parts.append(json.dumps(part).encode() if as_json else bytes(memoryview(part)))
        more.append(send_more)

    handler.send(message, send, block=True)
    assert more == [True] * (len(more) - 1) + [False], f"bad SNDMORE sequence {more}"
    return parts


def decode(handler: Any, parts: list[bytes], copy: bool = True, decode: bool = True) -> Any:
    """``handler.receive`` applied to ``parts`` loaded into a socket-less receiver."""
    receiver = ReceiveHandler(None, copy=copy)
    receiver.decode = decode
    receiver.load(parts if copy else [zmq.Frame(p) for p in parts])
    receiver._in_receive = True
    return handler.receive(receiver)


def round_trip(
    sender: mflow.Stream, receiver: mflow.Stream, message: Any, htype: str | None = None
) -> Any:
    """Forward ``message`` through ``sender`` and return what ``receiver`` decodes."""
    handler = mflow.get_handler(htype) if htype else None
    if handler is None:
        sender.forward(message)
    else:
        handler.send(message, sender.send)
    received = receiver.receive()
    assert received is not None, (
        f"round trip lost the message; skipped={receiver.statistics.skipped}"
    )
    return received.data


def assert_same(actual: Any, expected: Any, path: str = "message") -> None:
    """Deep equality of decoded messages (arrays by dtype, shape and value)."""
    if isinstance(expected, np.ndarray) or isinstance(actual, np.ndarray):
        assert isinstance(actual, np.ndarray), f"{path}: {type(actual).__name__} is no array"
        expected = np.asarray(expected)
        assert actual.dtype == expected.dtype, f"{path}: dtype {actual.dtype} != {expected.dtype}"
        assert actual.shape == expected.shape, f"{path}: shape {actual.shape} != {expected.shape}"
        np.testing.assert_array_equal(actual, expected, err_msg=path)
    elif isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: {type(actual).__name__} is no dict"
        assert actual.keys() == expected.keys(), (
            f"{path}: keys {actual.keys()} != {expected.keys()}"
        )
        for key in expected:
            assert_same(actual[key], expected[key], f"{path}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), f"{path}: length {len(actual)} != {len(expected)}"
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{path}[{index}]")
    elif isinstance(expected, (bytes, bytearray, memoryview)):
        assert bytes(actual) == bytes(expected), f"{path}: bytes differ"
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def save_golden(name: str, parts: list[bytes], force: bool = False) -> bool:
    """Write ``parts`` as the fixture ``name`` if it is missing (or ``force``); True if written.

    A committed fixture pins the bytes on the wire: it is rewritten only on purpose.
    """
    path = FIXTURES / f"{name}.json"
    if path.exists() and not force:
        return False
    encoded = [base64.b64encode(bytes(p)).decode("ascii") for p in parts]
    path.write_text(json.dumps({"parts": encoded}, indent=1) + "\n")
    return True


def load_golden(name: str) -> list[bytes]:
    """The parts of the committed fixture ``name``."""
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    return [base64.b64decode(p) for p in data["parts"]]
