"""``mflow replay`` and the 1.0 ``m_replay``: send a recording again.

Both recording formats are detected (`mflow.recording.open_recording`). Each recorded
message goes out as one multipart message with exactly its parts; at the end the stream
is disconnected with ``--linger`` seconds for queued messages to leave (1.0 decided
"send more" from directory entries and never disconnected: bug B7).
"""

from __future__ import annotations

import threading
from typing import Any, NoReturn

import click

import mflow
from mflow.errors import ConfigurationError
from mflow.recording import FolderReader, RecordedMessage, RecordingError, open_recording

from ._legacy import legacy_command
from ._main import CONTEXT_SETTINGS, run
from ._options import (
    SenderOptions,
    SocketOptions,
    Tool,
    sender_options,
    socket_options,
    tool_options,
)
from ._runtime import Pacer, Run
from ._sending import Sender

__all__ = ["command", "legacy", "main"]

HELP = """Send the messages recorded at PATH (a recording file or folder) from ADDRESS.

Either format of `mflow dump` is detected, and so are folders of the psi-mflow 1.0
m_dump. Messages go out as fast as the peers take them, at --rate, or with the
recorded timing (--realtime, file format only; --speed scales it). --loop starts over
at the end; --count stops after that many messages. With --wait-for-peer nothing is
sent before a peer is connected (on PUB: subscribed), so the first messages are not
lost. Messages that did not reach a peer (nobody connected, or still queued when the
--linger ran out) are reported as undelivered and make the exit status 1. A recording
that is corrupt, or ends in an incomplete message, is replayed up to the damage and then
reported as an error.

\b
Examples:
  mflow replay run.mflow                          # to tcp://*:9999, PUSH
  mflow replay run.mflow -a tcp://*:9000 --realtime --wait-for-peer
  mflow replay dump_folder/ -m pub --rate 50 --loop
"""

LEGACY_HELP = """Stream replay utility (psi-mflow 1.0 compatible: same arguments).

Sends the messages of a recording (a 1.0 m_dump folder of MESSAGE_PART.raw files, or
any mflow recording), printing "Sending FILE [SEND_MORE]" for each part.

\b
Example:
  m_replay /data/dump -a tcp://*:9999 -m pub
"""


class _Timing:
    """When each message is due: at once, at a fixed rate, or as recorded."""

    def __init__(self, rate: float | None, realtime: bool, speed: float) -> None:
        self.pacer = Pacer(rate)
        self.realtime = realtime
        self.speed = speed
        self.origin: float | None = None

    def start_pass(self) -> None:
        self.pacer.restart()
        self.origin = None

    def wait(self, message: RecordedMessage, run: Run) -> bool:
        """Wait until ``message`` is due; False if the run was stopped meanwhile."""
        if not self.realtime:
            return self.pacer.wait(run)
        receive_time = message.receive_time
        assert receive_time is not None  # --realtime refuses folders, which store no times
        if self.origin is None:
            self.origin = receive_time
        offset = (receive_time - self.origin) / self.speed
        # A tiny --speed stretches a gap beyond what a wait can be given (OverflowError).
        return self.pacer.wait_until(run, min(offset, threading.TIMEOUT_MAX / 2))


def _legacy_lines(message: RecordedMessage) -> None:
    last = len(message.parts) - 1
    for part in range(last + 1):
        print(f"Sending {message.number:06d}_{part:03d}.raw [{part < last}]", flush=True)


def _check_complete(reader: Any, path: str) -> None:
    """Raise the damage a pass stopped at, if any."""
    if reader.corruption is not None:
        raise reader.corruption
    if reader.truncated:
        raise RecordingError(
            f"'{path}' ends in an incomplete message (its writer was "
            "interrupted); the complete messages before it were sent"
        )


def _nothing_to_send(reader: Any, path: str) -> str:
    if isinstance(reader, FolderReader):
        return (
            f"folder '{path}' holds no recording: no MESSAGE_PART.raw files "
            "(000000_000.raw ...); nothing to send"
        )
    return f"recording '{path}' holds no messages; nothing to send"


def _replay_pass(
    reader: Any, sender: Sender, timing: _Timing, run: Run, tool: Tool, legacy: bool
) -> int | None:
    """Send the recording once; how many messages went, or None if the run stopped."""
    timing.start_pass()
    sent = 0
    for message in reader:
        if (
            run.stopped(sender.meter.messages)
            or not timing.wait(message, run)
            or not sender.send(message.parts, run)
        ):
            return None
        sent += 1
        if legacy:
            _legacy_lines(message)
        elif run.report_due():
            tool.out.progress(sender.report())
    return sent


def _replay_passes(
    reader: Any,
    path: str,
    sender: Sender,
    timing: _Timing,
    loop: bool,
    run: Run,
    tool: Tool,
    legacy_lines: bool,
) -> None:
    """Send the recording once, or again and again with ``loop``."""
    while True:
        sent = _replay_pass(reader, sender, timing, run, tool, legacy_lines)
        if sent is not None:
            _check_complete(reader, path)
            if not sender.meter.messages:
                raise RecordingError(_nothing_to_send(reader, path))
        if not loop or not sent or run.stopped(sender.meter.messages):
            return


def _replay(
    path: str,
    address: str,
    rate: float | None,
    realtime: bool,
    speed: float | None,
    loop: bool,
    socket: SocketOptions,
    sender: SenderOptions,
    tool: Tool,
    legacy: bool = False,
) -> int:
    if rate is not None and realtime:
        raise ConfigurationError("--rate and --realtime exclude each other")
    if speed is not None and not realtime:
        raise ConfigurationError("--speed scales the recorded timing: it needs --realtime")
    timing = _Timing(rate, realtime, 1.0 if speed is None else speed)
    legacy_lines = tool.legacy_output(legacy)
    with open_recording(path, on_corruption="stop") as reader:
        if realtime and isinstance(reader, FolderReader):
            raise ConfigurationError(
                "--realtime needs recorded receive times; folder recordings have none (use --rate)"
            )
        return _replay_recording(
            reader, path, address, timing, loop, socket, sender, tool, legacy_lines
        )


def _replay_recording(
    reader: Any,
    path: str,
    address: str,
    timing: _Timing,
    loop: bool,
    socket: SocketOptions,
    sender: SenderOptions,
    tool: Tool,
    legacy_lines: bool,
) -> int:
    with (
        tool.run() as run,
        Sender(socket.endpoint(address, mflow.BIND), sender, tool, zero_copy=True) as out,
    ):
        try:
            if out.wait_for_peer(run):
                _replay_passes(reader, path, out, timing, loop, run, tool, legacy_lines)
        finally:
            out.close()
            tool.out.summary(out.report(final=True))
        return out.exit_code(run)


@click.command(
    "replay", help=HELP, short_help="Send a recording again.", context_settings=CONTEXT_SETTINGS
)
@click.argument("path", type=click.Path())
@click.option(
    "-a",
    "--address",
    default="tcp://*:9999",
    show_default=True,
    help="Where to send: tcp://*:PORT binds, tcp://HOST:PORT with --connect.",
)
@click.option(
    "-r",
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Messages per second [default: as fast as possible].",
)
@click.option("--realtime", is_flag=True, help="Keep the recorded time between messages.")
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="With --realtime: play this many times faster [default: 1].",
)
@click.option(
    "--loop", is_flag=True, help="Start over at the end (until --count, --duration or Ctrl-C)."
)
@socket_options(("push", "pub"), "the output", "bind")
@sender_options
@tool_options()
def command(**options: Any) -> int:
    return _replay(**options)


legacy = legacy_command(command, "m_replay", LEGACY_HELP)


def main() -> NoReturn:
    """The 1.0 ``m_replay`` entry point."""
    run(legacy, prog_name="m_replay")


if __name__ == "__main__":
    main()
