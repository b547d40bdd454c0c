"""``mflow dump`` and the 1.0 ``m_dump``: record a stream, or list its messages.

Messages are taken off the socket whole and written as they came, part by part (nothing
is decoded), to a single-file recording or to the 1.0 folder layout (`mflow.recording`).
Each message is handed to the operating system as soon as it is written, so everything
recorded survives ``kill -9``; a write error (e.g. a full disk) stops the dump with an
error, and the messages before it stay readable. A dump that fails before it recorded a
message deletes the empty recording, so that trying again is not refused.
"""

from __future__ import annotations

import json
import time
from typing import Any, NoReturn

import click

import mflow
from mflow.jsonparse import parse_json
from mflow.errors import ConfigurationError
from mflow.recording import FolderWriter, RecordingError, RecordingWriter

from ._legacy import legacy_command
from ._main import CONTEXT_SETTINGS, run
from ._options import SocketOptions, Tool, socket_options, tool_options
from ._output import Output, Report, traffic_fields
from ._runtime import Meter
from ._sockets import message_size, open_stream

__all__ = ["command", "legacy", "main"]

HELP = """Record the stream at SOURCE to PATH, or list its messages if PATH is not given.

Every message is recorded whole and byte for byte: all parts, empty parts and part
boundaries. --format file (default) writes one append-only file that also keeps each
message's receive time (for replay --realtime); --format folder writes the psi-mflow 1.0
layout, one file per part named MESSAGE_PART.raw (000012_003.raw), which the 1.0 m_replay
reads. Messages already recorded survive a kill -9 or a full disk.

\b
Examples:
  mflow dump tcp://detector:9999 run.mflow -n 1000
  mflow dump tcp://detector:9999 run/ --format folder -d 60
  mflow dump tcp://localhost:9999              # list messages: sizes and headers
  mflow dump tcp://*:9999 run.mflow --mode sub -s 2   # keep only the first part
"""

LEGACY_HELP = """Stream dump utility (psi-mflow 1.0 compatible: same arguments).

Writes each part of each message to FOLDER/MESSAGE_PART.raw (e.g. 000012_003.raw), or
prints each part if no folder is given. Messages are numbered as received (0, 1, 2, ...).

\b
Example:
  m_dump tcp://detector:9999 /data/dump -m sub -s 3
"""


def _kept(parts: list[Any], skip: int) -> list[Any]:
    """The parts ``-s`` keeps: those numbered (from 1) below ``skip``; 0 keeps all (as 1.0)."""
    return parts if not skip else parts[: skip - 1]


class _Recorder:
    """Writes each message to a recording and hands it to the OS at once."""

    def __init__(self, path: str, file_format: str, overwrite: bool, sync: bool, skip: int) -> None:
        if skip == 1:
            raise ConfigurationError("--skip 1 keeps no part of any message: nothing to record")
        self.path = path
        self.file_format = file_format
        self.skip = skip
        try:
            if file_format == "folder":
                self.writer: Any = FolderWriter(path, overwrite=overwrite)
            else:
                self.writer = RecordingWriter(path, overwrite=overwrite, sync=sync)
        except RecordingError as error:  # say it in command-line words
            raise RecordingError(
                str(error).replace("pass overwrite=True", "use --overwrite")
            ) from error

    def __call__(self, index: int, parts: list[Any]) -> None:
        # Every message before this one was flushed: those are the ones surely recorded.
        recorded = self.writer.messages_written
        try:
            self.writer.write(_kept(parts, self.skip), receive_time=time.time())
            self.writer.flush()
        except OSError as error:
            if not recorded:
                self.writer.discard()  # an empty recording would block the next attempt
                raise RecordingError(
                    f"cannot write to '{self.path}': "
                    f"{error.strerror or error}; nothing was recorded"
                ) from error
            raise RecordingError(
                f"cannot write to '{self.path}': {error.strerror or error}; "
                f"the {recorded} messages before are recorded"
            ) from error

    def close(self) -> None:
        try:
            self.writer.close()
        except OSError:
            pass  # the write that failed was reported already

    def fail(self) -> None:
        """The dump failed: a recording it left empty goes, so a retry is not refused."""
        if not self.writer.messages_written:
            self.writer.discard()

    def describe(self) -> str:
        return f"Recording to {self.path} ({self.file_format} format)"


def _header_text(part: Any) -> str:
    try:
        return json.dumps(parse_json(bytes(part)), separators=(",", ":"))[:200]
    except ValueError:
        return f"({len(part)} bytes, not JSON)"


class _Lister:
    """Prints each message: sizes and header (1.0: the repr of every part)."""

    def __init__(self, out: Output, skip: int, legacy: bool) -> None:
        self.out = out
        self.skip = skip
        self.legacy = legacy

    def __call__(self, index: int, parts: list[Any]) -> None:
        kept = _kept(parts, self.skip)
        if self.legacy:
            for part in kept:
                print(bytes(part), flush=True)
            return
        sizes = [len(part) for part in parts]
        header = _header_text(parts[0])
        noun = "part" if len(parts) == 1 else "parts"
        self.out.line(
            f"#{index}  {len(parts)} {noun}  {' + '.join(map(str, sizes))} bytes  {header}",
            index=index,
            sizes=sizes,
            header=header,
        )

    def close(self) -> None:
        pass

    def fail(self) -> None:
        pass

    def describe(self) -> str:
        return "Listing messages"


def _report(meter: Meter, final: bool, path: str | None) -> Report:
    sample = meter.sample()
    fields = traffic_fields(sample, final, verb="messages")
    if final and path is not None:
        fields.append(("recorded to", path))
    return Report({**sample, "path": path}, fields)


def _dump(
    source: str,
    path: str | None,
    file_format: str,
    skip: int,
    overwrite: bool,
    sync: bool,
    socket: SocketOptions,
    tool: Tool,
    legacy: bool = False,
) -> int:
    endpoint = socket.endpoint(source, mflow.CONNECT)
    legacy = tool.legacy_output(legacy)
    out = tool.out
    sink: Any = (
        _Recorder(path, file_format, overwrite, sync, skip)
        if path is not None
        else _Lister(out, skip, legacy)
    )
    meter = Meter()
    try:
        with open_stream(endpoint) as stream, tool.run() as run:
            endpoint.announce(out, stream, sink.describe(), path=path, format=file_format)
            try:
                while not run.stopped(meter.messages):
                    parts = stream.receive_parts()
                    if parts is not None:
                        sink(meter.messages, parts)
                        meter.add(message_size(parts))
                    if run.report_due() and path is not None:
                        out.progress(_report(meter, False, path))
            finally:
                out.summary(_report(meter, True, path))
            return run.exit_code
    except Exception:
        sink.fail()
        raise
    finally:
        sink.close()


@click.command(
    "dump",
    help=HELP,
    short_help="Record a stream to a file or folder, or list it.",
    context_settings=CONTEXT_SETTINGS,
)
@click.argument("source")
@click.argument("path", required=False, type=click.Path(dir_okay=True, allow_dash=False))
@click.option(
    "--format",
    "file_format",
    type=click.Choice(("file", "folder")),
    default="file",
    show_default=True,
    help="file: one append-only file; folder: the 1.0 layout, one file per part.",
)
@click.option(
    "-s",
    "--skip",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Record (m_dump: also print) only the parts numbered (from 1) below "
    "this; 0 keeps every part.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an existing recording at PATH (a folder's part files are deleted).",
)
@click.option(
    "--sync",
    is_flag=True,
    help="file format: also fsync every message (survives a power cut; slow).",
)
@socket_options(("pull", "sub"), "the source", "connect; tcp://*:PORT binds")
@tool_options()
def command(**options: Any) -> int:
    return _dump(**options)


legacy = legacy_command(command, "m_dump", LEGACY_HELP, {"file_format": "folder"})


def main() -> NoReturn:
    """The 1.0 ``m_dump`` entry point."""
    run(legacy, prog_name="m_dump")


if __name__ == "__main__":
    main()
