"""``mflow demo``: a local EIGER-like stream and its live statistics, nothing else needed.

A generator thread sends DECTRIS Stream V1 series (dheader-1.0, dimage-1.0 compressed
with bitshuffle-LZ4, dseries_end-1.0) from 127.0.0.1 on a random port; the main thread
receives them as ``mflow stats --decode`` would, decompressing every image.
"""

from __future__ import annotations

import threading
from typing import Any

import click

import mflow

from . import _synthetic
from ._main import CONTEXT_SETTINGS
from ._options import SenderOptions, Tool, tool_options
from ._runtime import Limits, Pacer, Run
from ._sending import Sender
from ._sockets import Endpoint, open_stream
from .generate import parse_shape
from .stats import Inspector
from .view import serve

__all__ = ["command"]

HELP = """Show the live statistics of a simulated EIGER on this computer.

A generator sends DECTRIS Stream V1 series (dheader-1.0, --images dimage-1.0 of --shape
compressed with bitshuffle-LZ4, dseries_end-1.0) at --rate messages per second to a random
port on 127.0.0.1; a receiver decodes every message and shows what `mflow stats` shows.
No detector and no network are needed. Stops after --duration seconds or Ctrl-C.
With --view the stream goes to the web viewer instead (needs the view extra), opened in
the browser, until Ctrl-C unless --duration is given.

\b
Examples:
  mflow demo
  mflow demo -d 30 --rate 500 --shape 1062x1028
  mflow demo --json -d 2
  mflow demo --view
"""


def _generate(sender: Sender, source: Any, rate: float, run: Run) -> None:
    pacer = Pacer(rate)
    for parts in source:
        if run.stopped() or not pacer.wait(run) or not sender.send(parts, run):
            return


def _receive(inspector: Inspector, run: Run, tool: Tool) -> None:
    while not run.stopped(inspector.meter.messages):
        inspector.receive(run)
        if run.report_due():
            tool.out.progress(inspector.report())


def _demo(rate: float, shape: str, images: int, tool: Tool, view: bool) -> int:
    spec = _synthetic.Spec(shape=parse_shape(shape), images=images, compression="bslz4")
    first, source = _synthetic.make_source("dectris", spec)
    endpoint = Endpoint("tcp://127.0.0.1:*", "push", mflow.BIND)
    with Sender(endpoint, SenderOptions(False, None, 0.0), tool, announce=False) as sender, \
            open_stream(Endpoint(sender.stream.endpoint, "pull", mflow.CONNECT)) as stream, \
            tool.run() as run:
        tool.out.event("start", f"Demo: a simulated EIGER sends {images}-image series "
                                f"({shape} uint16, bitshuffle-LZ4) at {rate:g} messages/s to "
                                f"{sender.stream.endpoint}; receiving and decoding them",
                       endpoint=sender.stream.endpoint, rate=rate, shape=shape)
        generator = threading.Thread(target=_generate, args=(sender, source, rate, run),
                                     name="mflow-demo-generator", daemon=True)
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
            tool.out.summary(inspector.report(final=True))
        return run.exit_code


@click.command("demo", help=HELP, context_settings=CONTEXT_SETTINGS,
               short_help="Live statistics of a simulated EIGER (no hardware needed).")
@click.option("-r", "--rate", type=click.FloatRange(min=0, min_open=True), default=100.0,
              show_default=True, help="Messages per second.")
@click.option("--shape", default="514x1030", show_default=True,
              help="Image shape, rows first (514x1030 is an EIGER2 500K).")
@click.option("--images", type=click.IntRange(min=1), default=100, show_default=True,
              help="Images per series.")
@click.option("--view", is_flag=True,
              help="Show the stream in the web viewer (mflow view) instead, until Ctrl-C or "
                   "--duration.")
@tool_options(duration=5.0)
def command(**options: Any) -> int:
    tool = options["tool"]
    duration = click.get_current_context().get_parameter_source("duration")
    if options["view"] and duration is click.core.ParameterSource.DEFAULT:
        tool.limits = Limits(tool.limits.count, None)  # the viewer runs until Ctrl-C
    return _demo(**options)
