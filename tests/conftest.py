"""The test helpers, all in one place: sockets, messages, waits and the commands.

Sockets are real ZeroMQ sockets on 127.0.0.1 with random ports and bounded timeouts. Nothing
waits by sleeping: tests wait for a message, a line of output or an exit, each with a
deadline. Commands run in-process through click's `CliRunner` (`invoke`, `commands`) unless
the process itself is under test (signals, kill, resource limits, entry points): then as a
child process (`run_tool`, `tools`), killed if it still runs at the end of the test.
"""

from __future__ import annotations

import abc
import contextvars
import importlib
import json
import logging
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import click
import pytest
import zmq
from click.testing import CliRunner, Result
from hypothesis import settings

import mflow
from mflow import _fastpath
from mflow.cli import _main

#: Milliseconds any test socket or stream may wait to send or receive before the test fails.
TIMEOUT_MS = 10_000
#: Seconds a test waits for any one thing (a condition, a line, an exit) before it fails.
DEADLINE = 30.0

#: The installation's scripts (``mflow``, ``m_stats``, ...).
BIN = Path(sys.executable).parent

# Property tests take their example count from the profile: a fast default, sized for a
# loaded 2-core machine, and "long" on request (``pytest --hypothesis-profile=long``).
settings.register_profile("default", max_examples=60, deadline=None)
settings.register_profile("long", max_examples=20_000, deadline=None)
settings.load_profile("default")


class _PathProbe:
    """Whether the running test let anything choose a receive path: a stream or a command
    in this process (they ask `mflow._fastpath.speedups`), or a child process (it reads the
    environment)."""

    def __init__(self) -> None:
        self.chosen = False

    def watch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.chosen = False
        choose = _fastpath.speedups

        def watched() -> Any:
            self.chosen = True
            return choose()

        monkeypatch.setattr(_fastpath, "speedups", watched)


_path_probe = _PathProbe()

#: The node ids of the compiled runs that let nothing choose a receive path: their pure
#: Python twins would repeat them, so those are skipped.
_PATHLESS: set[str] = set()


def _compiled_twin(item: pytest.Item) -> str | None:
    """The node id of the compiled run of ``item`` if it is a pure Python run, else None."""
    callspec = getattr(item, "callspec", None)
    if callspec is None or callspec.params.get("receive_path") != "python":
        return None
    return re.sub(r"(?<=[\[-])python(?=[-\]])", "compiled", item.nodeid, count=1)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip the pure Python run of a test whose compiled run chose no receive path."""
    if _compiled_twin(item) in _PATHLESS:
        pytest.skip("nothing in the test chose a receive path: its compiled run covers both")


@pytest.fixture(params=["compiled", "python"])
def receive_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Runs a test on the compiled receive path and again on the pure Python one.

    Modules that receive or forward messages use it for all their tests
    (``pytestmark = pytest.mark.usefixtures("receive_path")``); it reaches the commands'
    child processes through the environment. A test whose compiled run let nothing choose
    a receive path (no stream, no command that opens one, no child process) behaves the
    same on both: its pure Python run is skipped.
    """
    if request.param == "python":
        monkeypatch.setenv("MFLOW_PURE_PYTHON", "1")
    else:
        monkeypatch.delenv("MFLOW_PURE_PYTHON", raising=False)
        if _fastpath.speedups() is None:
            pytest.skip("the compiled receive path is not built (see test_fastpath)")
    _path_probe.watch(monkeypatch)
    yield request.param
    if request.param == "compiled" and not _path_probe.chosen:
        _PATHLESS.add(request.node.nodeid)


# -- sockets --------------------------------------------------------------------------------


class _Context(zmq.Context):
    """A context that keeps its sockets until it is destroyed (no ResourceWarning)."""

    def socket(self, *args: Any, **kwargs: Any) -> zmq.Socket:
        socket = super().socket(*args, **kwargs)
        self.__dict__.setdefault("_kept", []).append(socket)
        return socket

    def destroy_all(self) -> None:
        for socket in self.__dict__.get("_kept", []):
            socket.close(linger=0)
        self.term()


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    """A ZeroMQ context whose sockets are all closed at the end of the test."""
    ctx = _Context()
    yield ctx
    ctx.destroy_all()


@pytest.fixture
def zmq_context(context: zmq.Context) -> zmq.Context:
    """`context`, under the name the command tests use."""
    return context


def bind_random(socket: zmq.Socket, address: str = "tcp://127.0.0.1:*") -> str:
    """Bind ``socket`` to ``address`` (a random port on 127.0.0.1); the endpoint to connect to."""
    socket.bind(address)
    return socket.last_endpoint.decode()


def make_socket(
    context: zmq.Context,
    kind: int,
    bind: bool = True,
    address: str = "tcp://127.0.0.1:*",
    hwm: int = 1000,
) -> tuple[zmq.Socket, str]:
    """A test socket with bounded timeouts, bound to a random port (or connected); its endpoint."""
    socket = context.socket(kind)
    socket.linger = 0
    socket.sndtimeo = TIMEOUT_MS
    socket.rcvtimeo = TIMEOUT_MS
    socket.set_hwm(hwm)
    if kind == zmq.SUB:
        socket.subscribe(b"")
    if bind:
        return socket, bind_random(socket, address)
    socket.connect(address)
    return socket, address


@pytest.fixture
def push(context: zmq.Context) -> tuple[zmq.Socket, str]:
    """A raw PUSH socket bound to a random port, and its endpoint."""
    return make_socket(context, zmq.PUSH)


@pytest.fixture
def pull_stream(push: tuple[zmq.Socket, str]) -> Iterator[tuple[zmq.Socket, mflow.Stream]]:
    """A raw PUSH socket and an mflow PULL stream connected to it."""
    socket, endpoint = push
    stream = mflow.connect(endpoint, receive_timeout=TIMEOUT_MS)
    yield socket, stream
    stream.disconnect()


@pytest.fixture
def stream_factory() -> Iterator[Callable[..., mflow.Stream]]:
    """Makes streams that are disconnected at the end of the test."""
    streams: list[mflow.Stream] = []

    def make(*args, **kwargs) -> mflow.Stream:
        kwargs.setdefault("receive_timeout", TIMEOUT_MS)
        stream = mflow.connect(*args, **kwargs)
        streams.append(stream)
        return stream

    yield make
    for stream in streams:
        stream.disconnect()


@pytest.fixture
def stream_pair(stream_factory) -> Callable[..., tuple[mflow.Stream, mflow.Stream]]:
    """Makes a bound PUSH stream and a PULL stream connected to it (extra options to both)."""

    def make(**kwargs) -> tuple[mflow.Stream, mflow.Stream]:
        sender = stream_factory(
            "tcp://127.0.0.1:*",
            conn_type=mflow.BIND,
            mode=mflow.PUSH,
            send_timeout=TIMEOUT_MS,
            **kwargs,
        )
        receiver = stream_factory(sender.endpoint, mode=mflow.PULL, **kwargs)
        return sender, receiver

    return make


# -- messages -------------------------------------------------------------------------------


def header(htype: str = "raw-1.0", **fields: Any) -> bytes:
    return json.dumps({"htype": htype, **fields}).encode()


def mixed_messages(count: int, seed: int = 0, max_parts: int = 6) -> list[list[bytes]]:
    """Messages of every shape a recording must keep: 1 to ``max_parts`` parts, empty parts,
    binary parts, JSON headers and non-JSON first parts."""
    rng = random.Random(seed)
    messages = []
    for index in range(count):
        first = header(frame=index) if rng.random() < 0.8 else rng.randbytes(rng.randrange(0, 40))
        parts = [first]
        for _ in range(rng.randrange(0, max_parts)):
            size = rng.choice((0, 0, 1, 7, 64, rng.randrange(0, 300)))
            parts.append(rng.randbytes(size))
        messages.append(parts)
    return messages


def send_messages(socket: zmq.Socket, messages: list[list[bytes]]) -> None:
    for parts in messages:
        try:
            socket.send_multipart(parts)
        except zmq.Again:
            pytest.fail("a peer did not take a message in time")


def receive_messages(socket: zmq.Socket, count: int) -> list[list[bytes]]:
    """``count`` whole messages (each a list of parts); fails on a receive timeout."""
    messages = []
    for _ in range(count):
        try:
            messages.append(socket.recv_multipart())
        except zmq.Again:
            pytest.fail(f"only {len(messages)} of {count} messages arrived")
    return messages


# -- waiting --------------------------------------------------------------------------------


def wait_until(
    condition: Callable[[], object], timeout: float = DEADLINE, what: str = "condition"
) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not met within {timeout} s")
        time.sleep(0.005)


def wait_subscribed(
    publish: Callable[[], None], receive: Callable[[], object], timeout: float = DEADLINE
) -> None:
    """Publish probes until the subscriber gets one (PUB/SUB has no delivery before that)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        publish()
        if receive() is not None:
            return
    pytest.fail("subscriber never received a probe")


# -- commands -------------------------------------------------------------------------------


class _Lines(abc.ABC):
    """The stdout of a running command, line by line: what `Command` and `Tool` share."""

    def __init__(self, args: Sequence[str]) -> None:
        self.args = list(args)
        self.stdout_lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()

    def _put(self, line: str | None) -> None:
        if line is not None:
            self.stdout_lines.append(line)
        self._lines.put(line)

    @property
    def stdout(self) -> str:
        return "\n".join(self.stdout_lines)

    @property
    @abc.abstractmethod
    def stderr(self) -> str:
        """All the command wrote to stderr (once it has ended)."""

    @abc.abstractmethod
    def wait(self, timeout: float = DEADLINE) -> int:
        """The exit status; fails the test if the command does not end within ``timeout``."""

    def line(
        self, predicate: Callable[[str], bool] = lambda line: True, timeout: float = DEADLINE
    ) -> str:
        """The next stdout line for which ``predicate`` holds (earlier lines are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(
                    f"no matching line from {self.args} within {timeout} s; "
                    f"stdout so far: {self.stdout_lines}"
                )
            if line is None:
                code = self.wait(timeout=5)
                pytest.fail(
                    f"{self.args} ended (status {code}) without the line; "
                    f"stdout: {self.stdout_lines}; stderr: {self.stderr}"
                )
            if predicate(line):
                return line

    def event(self, kind: str, timeout: float = DEADLINE) -> dict[str, Any]:
        """The next ``--json`` object whose ``event`` is ``kind``."""
        line = self.line(
            lambda text: text.startswith("{") and json.loads(text).get("event") == kind, timeout
        )
        return json.loads(line)

    def endpoint(self, kind: str = "start") -> str:
        """The endpoint a ``--json`` command announced, made connectable (``*`` → 127.0.0.1)."""
        endpoint = self.event(kind)["endpoint"]
        return endpoint.replace("0.0.0.0", "127.0.0.1")

    def json_events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout_lines if line.startswith("{")]

    def summary(self) -> dict[str, Any]:
        """The ``--json`` summary of an ended command."""
        events = [e for e in self.json_events() if e["event"] == "summary"]
        assert events, f"no summary; stdout: {self.stdout}; stderr: {self.stderr}"
        return events[-1]


def summary_of(result: Result | subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The ``--json`` summary of a command run to its end."""
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    summaries = [event for event in events if event["event"] == "summary"]
    assert summaries, f"no summary; stdout: {result.stdout}; stderr: {result.stderr}"
    return summaries[-1]


def _entry_point(script: str | None) -> tuple[click.Command, str]:
    """The click command behind ``mflow`` (None) or a 1.0 script (``m_stats``, ...)."""
    if script is None:
        return _main.cli, "mflow"
    return importlib.import_module(f"mflow.cli.{script.removeprefix('m_')}").legacy, script


class _EntryPoint:
    """What `CliRunner.invoke` calls: a command under `mflow.cli._main.run`, the error
    boundary every entry point runs under, in a context of its own (a command keeps its
    settings in context variables) and with the logging set-up restored afterwards."""

    def __init__(self, script: str | None, on_line: Callable[[str], None] | None) -> None:
        self.command, self.name = _entry_point(script)
        self.on_line = on_line

    def main(self, args: Sequence[str], prog_name: str, **_: Any) -> None:
        if self.on_line is not None:
            sys.stdout = _LineTee(sys.stdout, self.on_line)  # CliRunner restores it
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        try:
            contextvars.Context().run(_main.run, self.command, list(args), self.name)
        finally:
            root.handlers[:], root.level = handlers, level


class _LineTee:
    """A text stream that writes through to ``stream`` and hands on every whole line."""

    def __init__(self, stream: Any, on_line: Callable[[str], None]) -> None:
        self._stream = stream
        self._on_line = on_line
        self._partial = ""

    def write(self, text: str) -> int:
        written = self._stream.write(text)  # raises for bytes, as a text stream must
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._on_line(line)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def invoke(*args: str, script: str | None = None) -> Result:
    """Run a command in this process to its end (``mflow ARGS``, or the 1.0 ``script``)."""
    return CliRunner().invoke(_EntryPoint(script, None), args)  # type: ignore[arg-type]


class Command(_Lines):
    """A command running in this process (in a thread), its stdout read line by line.

    Outside the main thread a command installs no signal handlers: it ends by its limits
    (``-n``, ``-d``) or an error; tests of signals run the command as a `Tool`.
    """

    def __init__(self, args: Sequence[str], script: str | None = None) -> None:
        super().__init__(args)
        self.result: Result | None = None
        self._thread = threading.Thread(
            target=self._run, args=(script,), name=f"command {self.args}", daemon=True
        )
        self._thread.start()

    def _run(self, script: str | None) -> None:
        try:
            runner = CliRunner()
            self.result = runner.invoke(_EntryPoint(script, self._put), self.args)  # type: ignore[arg-type]
        finally:
            self._put(None)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float = DEADLINE) -> int:
        """The exit status; fails the test if the command does not end within ``timeout``."""
        self._thread.join(timeout)
        if self._thread.is_alive() or self.result is None:
            pytest.fail(f"{self.args} did not end within {timeout} s; stdout: {self.stdout}")
        return self.result.exit_code

    @property
    def stderr(self) -> str:
        return "" if self.result is None else self.result.stderr


@pytest.fixture
def commands() -> Iterator[Callable[..., Command]]:
    """Starts commands in this process, one at a time (the output capture is global)."""
    started: list[Command] = []

    def start(*args: str, script: str | None = None) -> Command:
        assert not any(command.running for command in started), "one command at a time"
        command = Command(args, script)
        started.append(command)
        return command

    yield start
    for command in started:
        command.wait()


def command_line(args: Sequence[str], script: str | None) -> list[str]:
    """``python -m mflow ARGS``, or the console script ``script`` with ARGS."""
    if script is None:
        return [sys.executable, "-m", "mflow", *args]
    return [str(BIN / script), *args]


class Tool(_Lines):
    """A command running as a child process; stdout is read line by line."""

    def __init__(
        self,
        args: Sequence[str],
        script: str | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(args)
        _path_probe.chosen = True  # the process takes its receive path from the environment
        self.process = subprocess.Popen(
            command_line(args, script),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            preexec_fn=preexec_fn,
            env={**os.environ, "COLUMNS": "200"},
        )
        self.stderr_text: list[str] = []
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            self._put(line.rstrip("\n"))
        self._put(None)

    def _read_stderr(self) -> None:
        self.stderr_text.append(self.process.stderr.read())

    def signal(self, signum: int = signal.SIGINT) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = DEADLINE) -> int:
        """The exit status; fails the test if the tool does not end within ``timeout``."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(
                f"{self.args} did not end within {timeout} s; "
                f"stdout: {self.stdout_lines}; stderr: {self.stderr}"
            )
        self._close_pipes()
        return code

    def _close_pipes(self) -> None:
        for reader in self._readers:
            reader.join(timeout=5)
        self.process.stdout.close()
        self.process.stderr.close()

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_text)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        if not self.process.stdout.closed:
            self._close_pipes()


@pytest.fixture
def tools() -> Iterator[Callable[..., Tool]]:
    """Starts tools as child processes; kills whatever still runs at the end of the test."""
    started: list[Tool] = []

    def start(*args: str, script: str | None = None, **kwargs: Any) -> Tool:
        tool = Tool(args, script=script, **kwargs)
        started.append(tool)
        return tool

    yield start
    for tool in started:
        tool.kill()


def run_tool(
    *args: str, script: str | None = None, timeout: float = DEADLINE
) -> subprocess.CompletedProcess[str]:
    """Run a tool as a child process to its end; its status, stdout and stderr."""
    return _run_child(command_line(args, script), timeout)


def run_python(code: str, timeout: float = DEADLINE) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a child interpreter, warnings off, to its end; its status, stdout
    and stderr."""
    return _run_child([sys.executable, "-W", "ignore", "-c", code], timeout)


def _run_child(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    _path_probe.chosen = True  # the process takes its receive path from the environment
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
