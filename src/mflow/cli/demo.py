"""``mflow demo``: a local EIGER-like stream and its live statistics, nothing else needed.

A generator thread sends DECTRIS Stream V1 series (dheader-1.0, dimage-1.0 compressed
with bitshuffle-LZ4, dseries_end-1.0) from 127.0.0.1 on a random port; the main thread
receives them as ``mflow stats --decode`` would, decompressing every image. Both ends are
in one process, so what was sent and not received is known exactly and reported.
"""

from __future__ import annotations

import threading
from typing import Any, cast

import click

import mflow
from mflow import synthetic

from ._inspect import Inspector
from ._main import CONTEXT_SETTINGS
from ._options import SenderOptions, Tool, parse_shape, tool_options
from ._output import Report
from ._runtime import EXIT_ERROR, EXIT_OK, Limits, Pacer, Run
from ._sending import Sender
from ._sockets import Endpoint, open_stream
from ._viewing import serve

__all__ = ["command"]

#: How long the receiver waits for the last messages the generator sent (ms).
_DRAIN_MS = 2000

HELP = """Show the live statistics of a simulated EIGER on this computer.

A generator sends DECTRIS Stream V1 series (dheader-1.0, --images dimage-1.0 of --shape
compressed with bitshuffle-LZ4, dseries_end-1.0) at --rate messages per second to a random
port on 127.0.0.1; a receiver decodes every message and shows what `mflow stats` shows.
No detector and no network are needed. Stops after --duration seconds or Ctrl-C.

\b
Examples:
  mflow demo
  mflow demo -d 30 --rate 500 --shape 1062x1028
  mflow demo --json -d 2
"""


def _generate(sender: Sender, source: Any, rate: float, run: Run) -> None:
    pacer = Pacer(rate)
    for parts in source:
        if run.stopped(sender.meter.messages) or not pacer.wait(run) or not sender.send(parts, run):
            return


def _receive(inspector: Inspector, run: Run, tool: Tool) -> None:
    while not run.stopped(inspector.meter.messages):
        inspector.receive(run.poll_ms())
        if run.report_due():
            tool.out.progress(inspector.report())


def _receive_rest(inspector: Inspector, sender: Sender) -> None:
    """Take what the generator sent and the receiver did not take yet."""
    while inspector.meter.messages < sender.meter.messages and inspector.receive(_DRAIN_MS):
        pass


def _report(inspector: Inspector, sender: Sender) -> Report:
    report = inspector.report(final=True)
    sent = sender.meter.messages
    undelivered = sent - inspector.meter.messages
    return Report(
        {**report.data, "sent": sent, "undelivered": undelivered, "undelivered_max": undelivered},
        report.fields + [("sent", str(sent)), ("undelivered", str(undelivered))],
    )


def _demo(rate: float, shape: str, images: int, tool: Tool, view: bool) -> int:
    spec = synthetic.Spec(shape=parse_shape(shape), images=images, compression="bslz4")
    first, source = synthetic.make_source("dectris", spec)
    endpoint = Endpoint("tcp://127.0.0.1:*", "push", mflow.BIND)
    with (
        Sender(endpoint, SenderOptions(False, None, 0.0), tool, announce=False) as sender,
        open_stream(
            Endpoint(
                cast(str, sender.stream.endpoint),  # bound: has one
                "pull",
                mflow.CONNECT,
            )
        ) as stream,
        tool.run() as run,
    ):
        tool.out.event(
            "start",
            f"Demo: a simulated EIGER sends {images}-image series "
            f"({shape} uint16, bitshuffle-LZ4) at {rate:g} messages/s to "
            f"{sender.stream.endpoint}; receiving and decoding them",
            endpoint=sender.stream.endpoint,
            rate=rate,
            shape=shape,
        )
        generator = threading.Thread(
            target=_generate,
            args=(sender, source, rate, run),
            name="mflow-demo-generator",
            daemon=True,
        )
        generator.start()
        if view:
            try:
                return serve(stream, run, tool, "simulated EIGER", open_browser=True)
            finally:
                run.stop()
                generator.join()
        inspector = Inspector(stream, decode=True)
        try:
            _receive(inspector, run, tool)
        finally:
            run.stop()
            generator.join()
            _receive_rest(inspector, sender)
            report = _report(inspector, sender)
            tool.out.summary(report)
        return run.exit_code or (EXIT_ERROR if report.data["undelivered"] else EXIT_OK)


@click.command(
    "demo",
    help=HELP,
    context_settings=CONTEXT_SETTINGS,
    short_help="Live statistics of a simulated EIGER (no hardware needed).",
)
@click.option(
    "-r",
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=100.0,
    show_default=True,
    help="Messages per second.",
)
@click.option(
    "--shape",
    default="514x1030",
    show_default=True,
    help="Image shape, rows first (514x1030 is an EIGER2 500K).",
)
@click.option(
    "--images",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Images per series.",
)
@click.option(
    "--view",
    is_flag=True,
    help="Show the stream in the web viewer (mflow view) instead, until Ctrl-C or --duration.",
)
@tool_options(duration=5.0, security=False)
def command(**options: Any) -> int:
    tool = options["tool"]
    duration = click.get_current_context().get_parameter_source("duration")
    if options["view"] and duration is click.core.ParameterSource.DEFAULT:
        tool.limits = Limits(tool.limits.count, None)  # the viewer runs until Ctrl-C
    return _demo(**options)
