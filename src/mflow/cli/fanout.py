"""``mflow fanout``: one detector stream spread over several outputs, series kept whole."""

from __future__ import annotations

from typing import Any

import click

import mflow
from mflow.fanout import FanOut, FanOutput

from ._main import CONTEXT_SETTINGS
from ._options import SocketOptions, Tool, linger_option, socket_options, tool_options
from ._output import Report, format_counts, traffic_fields
from ._forwarding import forward, open_outputs
from ._runtime import EXIT_ERROR, Meter, Run
from ._sockets import Endpoint, open_stream

__all__ = ["command"]

HELP = """Divide the images of SOURCE among the OUTPUTs; headers and ends go to all.

Each series header (EIGER dheader / Stream V2 start) and end goes to every OUTPUT, and
again to a consumer that connects mid-series, before its first image; the images are
divided: --block N sends images [kN, (k+1)N) to output k mod OUTPUTs, so that each
writer gets whole data files (N as the writers' --frames-per-file); --by load sends each
image to the next output with room (a small --output-queue-size spreads best), for
consumers that take any image: 'mflow write --part' writes only its own blocks. bsread
is divided by pulse_id, array-1.0 and SLS by frame number, other messages go to every
output. Messages are forwarded byte for byte. One consumer per OUTPUT.

An output without a consumer gets nothing until one connects: its images go to the next
output (counted as rerouted; a writer part leaves another part's images unwritten, so
they are missing in the master file); a consumer that leaves in the middle of a series
makes the exit status 1, and what was queued for it is counted as possibly undelivered.
A new header while a series is open, and images of another series than the open one,
are counted (aborted, restarted, stray).

\b
Examples:
  mflow fanout tcp://detector:9999 tcp://*:9001 tcp://*:9002 tcp://*:9003 --block 1000
  mflow fanout tcp://detector:9999 tcp://*:9001 tcp://*:9002 --by load --output-queue-size 2
"""


def _report(meter: Meter, fanout: FanOut, final: bool) -> Report:
    sample = meter.sample()
    counts = fanout.counts()
    fields = traffic_fields(sample, final, verb="received")
    fields.append(
        (
            "series",
            format_counts(
                {
                    key: counts[key]
                    for key in ("series_started", "aborted", "restarted", "stray", "dropped")
                }
            ),
        )
    )
    for output in counts["outputs"]:
        text = (
            f"images={output['images']} rerouted={output['rerouted']} "
            f"headers={output['headers']} ends={output['ends']} "
            f"missed={output['missed']} left_mid_series={output['left_mid_series']} "
            f"{'connected' if output['connected'] else 'no consumer'}"
        )
        if "undelivered_max" in output and (final or output["undelivered_max"]):
            text += f" undelivered={output['undelivered']}..{output['undelivered_max']}"
        fields.append((f"→ {output['name']}", text))
    return Report({**sample, **counts}, fields)


def _open_output(address: str, queue_size: int, linger: float, tool: Tool) -> FanOutput:
    endpoint = Endpoint.choose(address, "push", None, mflow.CONNECT, queue_size)
    stream = open_stream(endpoint, linger=linger)
    tool.out.event("output", endpoint.describe(stream), address=address, endpoint=stream.endpoint)
    return FanOutput(stream, address)


def _fanout(
    source: str,
    outputs: tuple[str, ...],
    block: int,
    by: str,
    output_queue_size: int,
    linger: float,
    socket: SocketOptions,
    tool: Tool,
) -> int:
    endpoint = socket.endpoint(source, mflow.CONNECT)
    meter = Meter()
    with tool.run() as run:
        streams = open_outputs(
            outputs, lambda address: _open_output(address, output_queue_size, linger, tool)
        )
        fanout = FanOut(streams, block=block if by == "block" else None, stopped=run.stopped)
        forward(
            endpoint,
            streams,
            lambda frames, nbytes: fanout.forward(frames),
            lambda final: _report(meter, fanout, final),
            run,
            tool,
            meter,
        )
        return _exit_code(run, fanout)


def _exit_code(run: Run, fanout: FanOut) -> int:
    """The run's status, or 1 if a message was dropped, was certainly not delivered, or may
    have been lost with a consumer that left in the middle of a series."""
    lost = any(
        output.left_mid_series
        or (output.stream.delivery is not None and output.stream.delivery.undelivered)
        for output in fanout.outputs
    )
    return run.exit_code or (EXIT_ERROR if fanout.dropped or lost else 0)


@click.command(
    "fanout",
    help=HELP,
    short_help="Divide a series over several outputs.",
    context_settings=CONTEXT_SETTINGS,
)
@click.argument("source")
@click.argument("outputs", nargs=-1, required=True, metavar="OUTPUT...")
@click.option(
    "--block",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Images per block: images [kN, (k+1)N) go to output k mod OUTPUTs.",
)
@click.option(
    "--by",
    type=click.Choice(["block", "load"]),
    default="block",
    show_default=True,
    help="Divide the images by block, or by the outputs' load.",
)
@click.option(
    "--output-queue-size",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Messages queued per output (by load: its credit).",
)
@linger_option
@socket_options(("pull", "sub"), "the source", "connect; tcp://*:PORT binds")
@tool_options()
def command(**options: Any) -> int:
    return _fanout(**options)
