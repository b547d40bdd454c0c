"""Helpers for the command-line tests: tools as child processes, sockets, messages.

Every tool runs as a real process (``python -m mflow ...`` or a console script) talking to
sockets on 127.0.0.1 with random ports. Nothing waits by sleeping: tests wait for a line
of output, a message or an exit, each with a deadline, and every process still running at
the end of a test is killed.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import zmq

#: Seconds a test waits for any one thing (a line, an exit) before it fails.
DEADLINE = 30.0
#: Milliseconds a test socket waits to send or receive before the test fails.
SOCKET_TIMEOUT_MS = 10_000

BIN = Path(sys.executable).parent


def command_line(args: list[str], script: str | None) -> list[str]:
    """``python -m mflow ARGS``, or the console script ``script`` with ARGS."""
    if script is None:
        return [sys.executable, "-m", "mflow", *args]
    return [str(BIN / script), *args]


class Tool:
    """A command-line tool running as a child process; stdout is read line by line."""

    def __init__(
        self,
        args: list[str],
        script: str | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.args = args
        self.process = subprocess.Popen(
            command_line(args, script),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            preexec_fn=preexec_fn,
            env={**os.environ, "COLUMNS": "200"},
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.stdout_lines: list[str] = []
        self.stderr_text: list[str] = []
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            self.stdout_lines.append(line.rstrip("\n"))
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _read_stderr(self) -> None:
        self.stderr_text.append(self.process.stderr.read())

    def line(
        self, predicate: Callable[[str], bool] = lambda line: True, timeout: float = DEADLINE
    ) -> str:
        """The next stdout line for which ``predicate`` holds (earlier lines are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(0.0, left))
            except queue.Empty:
                pytest.fail(
                    f"no matching line from {self.args} within {timeout} s; "
                    f"stdout so far: {self.stdout_lines}"
                )
            if line is None:
                self.wait(timeout=5)
                pytest.fail(
                    f"{self.args} ended (status {self.process.returncode}) without "
                    f"the line; stdout: {self.stdout_lines}; stderr: {self.stderr}"
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
        """The endpoint a ``--json`` tool announced, made connectable (``*`` → 127.0.0.1)."""
        endpoint = self.event(kind)["endpoint"]
        return endpoint.replace("0.0.0.0", "127.0.0.1")

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

    @property
    def stdout(self) -> str:
        return "\n".join(self.stdout_lines)

    def json_events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout_lines if line.startswith("{")]

    def summary(self) -> dict[str, Any]:
        """The ``--json`` summary of an ended tool."""
        events = [e for e in self.json_events() if e["event"] == "summary"]
        assert events, f"no summary; stdout: {self.stdout}; stderr: {self.stderr}"
        return events[-1]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        if not self.process.stdout.closed:
            self._close_pipes()


@pytest.fixture
def tools() -> Iterator[Callable[..., Tool]]:
    """Starts tools; kills whatever still runs at the end of the test."""
    started: list[Tool] = []

    def start(*args: str, script: str | None = None, **kwargs: Any) -> Tool:
        tool = Tool(list(args), script=script, **kwargs)
        started.append(tool)
        return tool

    yield start
    for tool in started:
        tool.kill()


def run_tool(
    *args: str, script: str | None = None, timeout: float = DEADLINE
) -> subprocess.CompletedProcess:
    """Run a tool to its end; its status, stdout and stderr."""
    return subprocess.run(
        command_line(list(args), script),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


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
def zmq_context() -> Iterator[zmq.Context]:
    context = _Context()
    yield context
    context.destroy_all()


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
    socket.sndtimeo = SOCKET_TIMEOUT_MS
    socket.rcvtimeo = SOCKET_TIMEOUT_MS
    socket.set_hwm(hwm)
    if kind == zmq.SUB:
        socket.subscribe(b"")
    if bind:
        socket.bind(address)
        return socket, socket.last_endpoint.decode()
    socket.connect(address)
    return socket, address


def receive_messages(socket: zmq.Socket, count: int) -> list[list[bytes]]:
    """``count`` whole messages (each a list of parts); fails on a receive timeout."""
    messages = []
    for _ in range(count):
        try:
            messages.append(socket.recv_multipart())
        except zmq.Again:
            pytest.fail(f"only {len(messages)} of {count} messages arrived")
    return messages


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
            pytest.fail("a tool did not take a message in time")


def wait_for(
    condition: Callable[[], bool], timeout: float = DEADLINE, what: str = "condition"
) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not met within {timeout} s")
        time.sleep(0.01)
