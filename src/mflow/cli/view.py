"""``mflow view``: a live web page with the stream's latest image and its health.

The page is served as `mflow.cli._viewing.serve` says (``mflow demo --view`` shares it).
Needs the ``view`` extra (``pip install 'mflow[view]'``).
"""

from __future__ import annotations

from typing import Any

import click

import mflow

from ._main import CONTEXT_SETTINGS
from ._options import SocketOptions, Tool, socket_options, tool_options
from ._sockets import open_stream
from ._viewing import serve

__all__ = ["command"]

HELP = """Show the stream at SOURCE live in a web browser.

One page (open it in any number of browsers) shows the latest image of EIGER Stream V1/V2
(each threshold selectable), SLS, 2-D array-1.0 and bsread image channels: binned to the
screen (max or mean), colour map, linear or log scale, automatic or fixed contrast, masked
pixels in magenta, zoom and pan, the full-resolution value under the cursor, its histogram;
the stream's health (messages/s and MB/s over the last minutes, counts by type, sequence
gaps, decode errors, time since the last message); for bsread, the channels with their
latest values and plots of picked scalar channels against pulse id.

At most --max-fps images per second are decoded, and only when a browser can draw one: each
browser has one image in flight at a time and is sent the newest when it has drawn the last
(the images in between are counted as skipped), so neither a fast detector nor a slow
browser makes the page fall behind. The page is served on 127.0.0.1 (--port, default a free
port) and needs no internet. Stops after --duration seconds or Ctrl-C.

\b
Examples:
  mflow view tcp://detector:9999 --open
  mflow view tcp://localhost:9999 --mode sub --port 5006
"""


def _view(
    source: str, socket: SocketOptions, tool: Tool, port: int, max_fps: float, open_browser: bool
) -> int:
    endpoint = socket.endpoint(source, mflow.CONNECT)
    with open_stream(endpoint) as stream, tool.run() as run:
        endpoint.announce(tool.out, stream)
        return serve(stream, run, tool, source, port, max_fps, open_browser)


@click.command(
    "view",
    help=HELP,
    short_help="A live web page of a stream's images and health.",
    context_settings=CONTEXT_SETTINGS,
)
@click.argument("source")
@socket_options(("pull", "sub"), "the source", "connect; tcp://*:PORT binds")
@tool_options()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port of the page on 127.0.0.1 (0: a free one).",
)
@click.option(
    "--max-fps",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="Images decoded per second at most (others counted).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the browser.")
def command(source: str, **options: Any) -> int:
    return _view(source, **options)
