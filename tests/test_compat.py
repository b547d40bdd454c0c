"""The 1.0 namespace: names, module paths, the deprecated mflow.tools alias."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
import zmq

import mflow

pytestmark = pytest.mark.usefixtures("receive_path")

ONE_O_NAMES = [
    "CONNECT",
    "BIND",
    "PUB",
    "SUB",
    "PUSH",
    "PULL",
    "Stream",
    "ReceiveHandler",
    "Statistics",
    "Message",
    "connect",
    "disconnect",
    "main",
    "handler_modules",
    "handlers",
    "receive_handlers",
    "send_handlers",
    "array_1_0",
    "raw_1_0",
    "dheader_1_0",
    "dimage_1_0",
    "dseries_end_1_0",
    "ConnectionCountMonitor",
    "SocketEventListener",
    "no_clients_timeout_notifier",
    "zmq",
    "json",
    "logging",
    "logger",
    "mflow",
    "utils",
]


@pytest.mark.parametrize("name", ONE_O_NAMES)
def test_every_1_0_name_exists(name):
    assert hasattr(mflow, name)


def test_all_is_complete_and_importable():
    for name in mflow.__all__:
        assert hasattr(mflow, name), name
    public = {n for n in vars(mflow) if not n.startswith("_")}
    # Submodules become attributes once imported (by whichever test imported them).
    modules = {module.name for module in pkgutil.iter_modules(mflow.__path__)}
    assert public - set(mflow.__all__) <= modules


def test_constants():
    assert (mflow.CONNECT, mflow.BIND) == ("connect", "bind")
    assert (mflow.PUB, mflow.SUB, mflow.PUSH, mflow.PULL) == (zmq.PUB, zmq.SUB, zmq.PUSH, zmq.PULL)


def test_one_socket_event_listener_class():
    assert mflow.SocketEventListener is mflow.utils.SocketEventListener
    assert mflow.SocketEventListener.DEFAULT_SOCKET_RECEIVE_TIMEOUT == 0.1


def test_mflow_mflow_module_path():
    from mflow.mflow import Stream, connect, receive_handlers

    assert Stream is mflow.Stream and connect is mflow.connect
    assert receive_handlers is mflow.receive_handlers


def test_utils_names():
    for name in (
        "Merge",
        "RoundRobinStrategy",
        "ThroughputStatistics",
        "ThroughputStatisticsPrinter",
        "SocketEventListener",
        "ConnectionCountMonitor",
        "no_clients_timeout_notifier",
    ):
        assert hasattr(mflow.utils, name)


def test_tools_alias_warns_and_forwards():
    with pytest.warns(DeprecationWarning, match="use `mflow.utils` instead"):
        assert mflow.tools.Merge is mflow.utils.Merge
    tools = importlib.import_module("mflow.tools")  # bug B21: 1.0 could not import it
    with pytest.warns(DeprecationWarning):
        from mflow.tools import ThroughputStatistics  # noqa: F401
    assert "Merge" in dir(tools)


def test_stream_has_the_1_0_attributes():
    stream = mflow.Stream()
    for name, value in (
        ("context", None),
        ("_context_is_owned", False),
        ("socket", None),
        ("address", None),
        ("zmq_copy", True),
        ("zmq_track", False),
        ("receiver", None),
        ("_socket_monitors", []),
    ):
        assert getattr(stream, name) == value
    assert stream._socket_event_listener.callbacks is stream._socket_monitors
