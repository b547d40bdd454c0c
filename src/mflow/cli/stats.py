"""``mflow stats`` and the 1.0 ``m_stats``: statistics of a live stream.

Every message is received whole and counted (messages, bytes, rates, per type), then
decoded by its registered handler: failures are counted by reason, sequence gaps in
``frame`` / ``pulse_id`` / ``image_id`` are counted per source. Images are only
decompressed with ``--decode``, so a fast detector does not outrun the tool;
``--decode-workers N`` decompresses on N threads while receiving (`mflow.decoding`).
"""

from __future__ import annotations

from typing import Any, NoReturn

import click

import mflow
from mflow.errors import ConfigurationError

from ._inspect import Inspector
from ._legacy import ThroughputLines, legacy_command
from ._main import CONTEXT_SETTINGS, run
from ._options import SocketOptions, Tool, socket_options, tool_options
from ._sockets import PeerHints, open_stream

__all__ = ["command", "legacy", "main"]

HELP = """Show live statistics of the stream at SOURCE.

Messages, rate, bytes and MB/s; counts per message type; sequence gaps (missed,
duplicated or reverted frame / pulse_id / image_id numbers); messages that failed to
decode, by reason; time since the last message. The start line says "Connecting to"
until a peer is there; after a few seconds without a peer or a message a warning says
what the socket events tell (nobody listening, a socket type that does not fit). Stops
after --count messages, --duration seconds or Ctrl-C, then prints a summary (exit status
130 after Ctrl-C).

\b
Examples:
  mflow stats tcp://detector:9999
  mflow stats tcp://localhost:9999 -n 1000 --json
  mflow stats tcp://*:9999 --mode sub --decode -d 60
  mflow stats tcp://detector:9999 --decode --decode-workers 2
"""

LEGACY_HELP = """Stream statistic utility (psi-mflow 1.0 compatible: same arguments, same output).

\b
Example:
  m_stats tcp://detector:9999 -m sub -i 1
"""


def _legacy_start(interval: float) -> ThroughputLines:
    print(f"mflow stats started. Sampling interval is {interval:.2f} seconds.")
    print("_" * 60, flush=True)
    return ThroughputLines(interval)


def _stats(
    source: str,
    socket: SocketOptions,
    tool: Tool,
    decode: bool,
    decode_workers: int = 0,
    legacy: bool = False,
) -> int:
    if decode_workers and not decode:
        raise ConfigurationError("--decode-workers needs --decode")
    endpoint = socket.endpoint(source, mflow.CONNECT)
    legacy = tool.legacy_output(legacy)
    out = tool.out
    # Images are dropped once counted: a frame for each one in flight, and one being checked.
    pool = 2 * decode_workers + 2 if decode else None
    with (
        open_stream(endpoint, decode_workers=decode_workers, decode_pool=pool) as stream,
        tool.run() as run,
    ):
        endpoint.announce(out, stream)
        inspector = Inspector(stream, decode)
        hints = PeerHints(stream, endpoint, out)
        printer = _legacy_start(tool.interval) if legacy else None
        try:
            while not run.stopped(inspector.meter.messages):
                got = inspector.receive(run.poll_ms())
                hints.check(inspector.meter.messages)
                if printer is not None:
                    if got:
                        printer.update(inspector.meter)
                elif run.report_due():
                    out.progress(inspector.report())
        finally:
            while stream.in_flight:  # taken and counted already: decode them too
                stream.receive_in_flight()
            if printer is not None:
                printer.close(inspector.meter)
            out.summary(inspector.report(final=True))
        return run.exit_code


_decode_option = click.option(
    "--decode/--no-decode",
    default=False,
    show_default=True,
    help="Also decompress images and compressed values (checks them, costs CPU).",
)


_decode_workers_option = click.option(
    "--decode-workers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="N",
    help="With --decode: decompress on N threads in parallel with receiving (0: in the "
    "receiving thread). One per core the stream needs; see the README.",
)


@click.command(
    "stats", help=HELP, short_help="Live statistics of a stream.", context_settings=CONTEXT_SETTINGS
)
@click.argument("source")
@socket_options(("pull", "sub"), "the source", "connect; tcp://*:PORT binds")
@tool_options()
@_decode_option
@_decode_workers_option
def command(source: str, **options: Any) -> int:
    return _stats(source, **options)


legacy = legacy_command(
    command,
    "m_stats",
    LEGACY_HELP,
    {"interval": 0.5},
    aliases={"--sampling_interval": "--interval"},
)


def main() -> NoReturn:
    """The 1.0 ``m_stats`` entry point."""
    run(legacy, prog_name="m_stats")


if __name__ == "__main__":
    main()
