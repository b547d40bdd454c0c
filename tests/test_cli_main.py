"""The command line as a whole: entry points, help, errors, signals, shared parsing.

In-process through click's runner, except what needs a real process: the installed
scripts, ``python -m``, and signals.
"""

from __future__ import annotations

import signal

import click
import pytest
import zmq

import mflow
from mflow import _fastpath
from mflow.cli import _sockets
from mflow.cli._legacy import legacy_command
from mflow.cli._main import COMMANDS
from mflow.cli._options import parse_shape
from mflow.cli.generate import parse_size
from mflow.errors import ConfigurationError

from .conftest import BIN, invoke, make_socket, run_tool, summary_of

LEGACY_SCRIPTS = ("m_stats", "m_generate", "m_dump", "m_replay", "m_split")


def test_mflow_lists_every_command():
    result = invoke("--help")
    assert result.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in result.stdout


#: Commands that open no stream, so have no progress, summary or --json.
NO_STREAM_COMMANDS = {"keys"}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_with_examples(name):
    result = invoke(name, "--help")
    assert result.exit_code == 0, result.stderr
    assert "Examples:" in result.stdout
    if name not in NO_STREAM_COMMANDS:
        assert "--json" in result.stdout and "--quiet" in result.stdout


@pytest.mark.parametrize("script", ("mflow", *LEGACY_SCRIPTS))
def test_console_scripts_are_installed(script):
    assert (BIN / script).exists(), f"{script} is not installed (pip install -e .)"
    result = run_tool("--help", script=script)
    assert result.returncode == 0, result.stderr
    assert "Example" in result.stdout


@pytest.mark.parametrize("module", ("stats", "generate", "dump", "replay", "split"))
def test_1_0_modules_run_with_python_m(module):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", f"mflow.cli.{module}", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert result.stdout.startswith(f"Usage: m_{module} ")
    assert result.stderr == ""  # no RuntimeWarning about the module being imported twice


def test_version_says_which_receive_path_is_active(monkeypatch):
    monkeypatch.delenv("MFLOW_PURE_PYTHON", raising=False)
    compiled = _fastpath.speedups() is not None
    result = invoke("-V")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"mflow, version {mflow.__version__}",
        "receive path: "
        + (
            "compiled (active)"
            if compiled
            else "pure Python (the compiled receive path is not built or cannot load here)"
        ),
    ]
    monkeypatch.setenv("MFLOW_PURE_PYTHON", "1")
    assert (
        invoke("--version").stdout.splitlines()[1]
        == "receive path: pure Python (MFLOW_PURE_PYTHON is set)"
    )


def test_usage_error_exits_2():
    result = invoke("stats")
    assert result.exit_code == 2
    assert "Missing argument 'SOURCE'" in result.stderr


@pytest.mark.parametrize(
    "address, problem",
    [
        ("localhost:9999", "is not a ZeroMQ address"),
        ("tcp://localhost", "has no port"),
        ("tcp://localhost:99999", "invalid port"),
    ],
)
def test_bad_address_is_one_line_and_exit_1(address, problem):
    result = invoke("stats", address, "-d", "1")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and problem in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_busy_port_is_one_line_and_exit_1(zmq_context):
    _, endpoint = make_socket(zmq_context, zmq.PULL)
    result = invoke("generate", "-a", endpoint, "-n", "1")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: Unable to bind to {endpoint}: Address already in use")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("signum", (signal.SIGINT, signal.SIGTERM))
def test_signal_prints_summary_and_exits_130(tools, zmq_context, signum):
    _, endpoint = make_socket(zmq_context, zmq.PUSH)
    stats = tools("stats", endpoint, "--json")
    stats.event("start")
    stats.signal(signum)
    assert stats.wait() == 130
    assert stats.summary()["messages"] == 0
    assert "Traceback" not in stats.stderr


def test_duration_ends_with_exit_0(zmq_context):
    _, endpoint = make_socket(zmq_context, zmq.PUSH)
    result = invoke("stats", endpoint, "-d", "0.3", "--json")
    assert result.exit_code == 0
    assert summary_of(result)["elapsed"] >= 0.25


def test_quiet_prints_only_the_summary(zmq_context):
    _, endpoint = make_socket(zmq_context, zmq.PUSH)
    result = invoke("stats", endpoint, "-d", "0.3", "-i", "0.05", "-q")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[1] == "Summary:"  # the start line, no progress lines


# -- shared parsing --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, size",
    [
        ("1", 1024**2),
        ("0.5", 512 * 1024),
        ("100B", 100),
        ("4KiB", 4096),
        ("2MB", 2_000_000),
        ("1.5 kB", 1500),
        ("3G", 3 * 1024**3),
    ],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "1XB", "-1"])
def test_parse_size_rejects(text):
    with pytest.raises(click.BadParameter):
        parse_size(text)


def test_parse_shape():
    assert parse_shape("512x1024") == (512, 1024)
    assert parse_shape("2,3,4") == (2, 3, 4)
    assert parse_shape("7") == (7,)
    for bad in ("0x3", "ax2", ""):
        with pytest.raises(click.BadParameter):
            parse_shape(bad)


@pytest.mark.parametrize(
    "address",
    ["tcp://*:9999", "tcp://host:1", "tcp://127.0.0.1:*", "ipc:///tmp/x", "inproc://name"],
)
def test_check_address_accepts(address):
    _sockets.check_address(address)


def test_wildcard_binds_and_host_names_connect():
    choose = _sockets.Endpoint.choose
    assert choose("tcp://*:9000", "push", None, "connect", 10).conn_type == "bind"
    assert choose("tcp://host:9000", "push", None, "bind", 10).conn_type == "bind"
    assert choose("tcp://host:9000", "push", None, "connect", 10).conn_type == "connect"
    assert choose("tcp://*:9000", "push", "connect", "bind", 10).conn_type == "connect"


def test_check_address_rejects():
    with pytest.raises(ConfigurationError, match="not a ZeroMQ address"):
        _sockets.check_address("http://x:1")


def test_legacy_commands_take_argparse_abbreviations_and_1_0_spellings():
    seen = {}

    @click.command()
    @click.option("--interval", type=float, default=1.0)
    @click.option("--mode", default="pull")
    def command(interval, mode, legacy=False):
        seen.update(interval=interval, mode=mode, legacy=legacy)

    legacy = legacy_command(
        command, "m_x", "help", {"interval": 0.5}, aliases={"--sampling_interval": "--interval"}
    )
    legacy.main(["--sampling_interval", "2", "--mo=sub"], standalone_mode=False)
    assert seen == {"interval": 2.0, "mode": "sub", "legacy": True}
    legacy.main(["--samp", "3"], standalone_mode=False)
    assert seen["interval"] == 3.0
    legacy.main([], standalone_mode=False)
    assert seen["interval"] == 0.5
