"""CURVE, address lists and size caps: authorised peers get everything, refused ones nothing,
and every refusal is counted. Real sockets on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest
import zmq

import mflow
from mflow.errors import ConfigurationError
from mflow.security import Curve, create_keys, load_public_key, load_secret_key

from .conftest import TIMEOUT_MS, wait_until

#: Milliseconds a refused peer's receiver waits to show that nothing arrived.
NOTHING_MS = 300


@pytest.fixture
def keys(tmp_path: Path) -> Callable[[str], tuple[Path, Path]]:
    """Makes key pairs in tmp_path: name → (public file, secret file)."""
    return lambda name: create_keys(tmp_path / "keys", name)


@pytest.fixture
def streams() -> Iterator[Callable[..., mflow.Stream]]:
    opened: list[mflow.Stream] = []

    def make(*args, **kwargs) -> mflow.Stream:
        stream = mflow.connect(*args, **kwargs)
        opened.append(stream)
        return stream

    yield make
    for stream in opened:
        stream.disconnect()


def server(streams, **kwargs) -> mflow.Stream:
    """A CURVE-capable PULL stream bound on 127.0.0.1 (the receiving server)."""
    return streams(
        "tcp://127.0.0.1:*",
        conn_type=mflow.BIND,
        mode=mflow.PULL,
        receive_timeout=TIMEOUT_MS,
        **kwargs,
    )


def client(streams, address: str, **kwargs) -> mflow.Stream:
    return streams(address, mode=mflow.PUSH, send_timeout=TIMEOUT_MS, linger=0, **kwargs)


def send_frames(sender: mflow.Stream, count: int) -> None:
    for frame in range(count):
        sender.forward({"header": {"htype": "raw-1.0", "frame": frame}, "data": [b"x"]})


def test_key_files_round_trip_and_are_never_overwritten(keys, tmp_path: Path) -> None:
    public_file, secret_file = keys("split")
    public, secret = load_secret_key(secret_file)
    assert load_public_key(public_file) == public
    assert len(public) == len(secret) == 40
    assert secret_file.stat().st_mode & 0o077 == 0
    with pytest.raises(ConfigurationError, match="already exists"):
        keys("split")
    with pytest.raises(ConfigurationError, match="no secret key"):
        load_secret_key(public_file)


def test_an_allowed_client_gets_through_and_an_unknown_key_is_refused(keys, streams) -> None:
    server_public, server_secret = keys("server")
    _, good_secret = keys("good")
    _, bad_secret = keys("bad")
    good_public, _ = keys("good-public-only")  # a key pair whose secret the client lacks
    receiver = server(
        streams, curve=Curve.server(server_secret, [load_secret_key(good_secret)[0], good_public])
    )

    good = client(streams, receiver.endpoint, curve=Curve.client(server_public, good_secret))
    send_frames(good, 5)
    frames = [receiver.receive().data["header"]["frame"] for _ in range(5)]
    assert frames == list(range(5))

    bad = client(streams, receiver.endpoint, curve=Curve.client(server_public, bad_secret))
    bad.send_multipart([b'{"htype": "raw-1.0"}'], block=False)
    wait_until(lambda: receiver.statistics.refused["key"] >= 1)
    receiver.socket.rcvtimeo = NOTHING_MS
    assert receiver.receive() is None
    assert receiver.statistics.messages_received == 5
    assert receiver.statistics.refused["address"] == 0


def test_a_plain_peer_of_a_curve_socket_is_refused_and_counted(keys, streams) -> None:
    _, server_secret = keys("server")
    receiver = server(streams, curve=Curve.server(server_secret))
    plain = client(streams, receiver.endpoint)
    plain.send_multipart([b'{"htype": "raw-1.0"}'], block=False)
    wait_until(lambda: receiver.statistics.refused["handshake"] >= 1)
    receiver.socket.rcvtimeo = NOTHING_MS
    assert receiver.receive() is None


def test_a_client_with_the_wrong_server_key_gets_nothing_through(keys, streams) -> None:
    _, server_secret = keys("server")
    impostor_public, _ = keys("impostor")
    receiver = server(streams, curve=Curve.server(server_secret))
    wrong = client(streams, receiver.endpoint, curve=Curve.client(impostor_public))
    wrong.send_multipart([b'{"htype": "raw-1.0"}'], block=False)
    wait_until(lambda: receiver.statistics.refused["handshake"] >= 1)
    receiver.socket.rcvtimeo = NOTHING_MS
    assert receiver.receive() is None


def test_curve_without_an_allow_list_admits_any_client_that_knows_the_key(keys, streams) -> None:
    server_public, server_secret = keys("server")
    receiver = server(streams, curve=Curve.server(server_secret))
    anyone = client(streams, receiver.endpoint, curve=Curve.client(server_public))
    send_frames(anyone, 3)
    assert [receiver.receive().data["header"]["frame"] for _ in range(3)] == [0, 1, 2]
    assert not receiver.statistics.refused


def test_address_lists_admit_and_refuse_plain_peers(streams) -> None:
    allowed = server(streams, allow=["127.0.0.1"])
    send_frames(client(streams, allowed.endpoint), 2)
    assert [allowed.receive().data["header"]["frame"] for _ in range(2)] == [0, 1]

    denied = server(streams, deny=["127.0.0.1"])
    client(streams, denied.endpoint).send_multipart([b'{"htype": "raw-1.0"}'], block=False)
    wait_until(lambda: denied.statistics.refused["address"] >= 1)
    denied.socket.rcvtimeo = NOTHING_MS
    assert denied.receive() is None


def test_allow_and_deny_together_are_a_configuration_error(streams) -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        server(streams, allow=["127.0.0.1"], deny=["127.0.0.2"])


def test_a_message_over_the_size_cap_closes_its_connection_and_is_counted(streams) -> None:
    receiver = server(streams, max_message_size=1000)
    sender = client(streams, receiver.endpoint)
    sender.send_multipart([b"small"])
    assert receiver.receive_parts()[0].bytes == b"small"
    sender.send_multipart([b"x" * 5000])
    wait_until(lambda: receiver.statistics.refused["connection_closed"] >= 1)
    receiver.socket.rcvtimeo = NOTHING_MS
    assert receiver.receive_parts() is None


def test_refusals_are_logged_at_info(keys, streams, caplog) -> None:
    _, server_secret = keys("server")
    receiver = server(streams, curve=Curve.server(server_secret))
    with caplog.at_level("INFO", logger="mflow.security"):
        client(streams, receiver.endpoint).send_multipart([b"x"], block=False)
        wait_until(lambda: receiver.statistics.refused["handshake"] >= 1)
    assert any("refused a peer (handshake)" in r.getMessage() for r in caplog.records)


def test_a_zap_authenticator_is_shared_per_context_and_stopped_with_the_last_stream(
    keys, context: zmq.Context
) -> None:
    _, secret = keys("server")
    first = mflow.connect(
        "tcp://127.0.0.1:*", conn_type=mflow.BIND, context=context, curve=Curve.server(secret)
    )
    second = mflow.connect(
        "tcp://127.0.0.1:*", conn_type=mflow.BIND, context=context, allow=["127.0.0.1"]
    )
    first.disconnect()
    second.disconnect()
    # A third one binds the ZAP endpoint again: the shared authenticator was stopped.
    third = mflow.connect(
        "tcp://127.0.0.1:*", conn_type=mflow.BIND, context=context, curve=Curve.server(secret)
    )
    third.disconnect()
