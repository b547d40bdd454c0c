"""``mflow view``: a live web page with the stream's latest image and its health.

The stream is received in a thread (`mflow.view.feed.Feed`), the page is served by a Bokeh
server on 127.0.0.1 (`mflow.view.server.ViewServer`) from the main thread. Needs the
``view`` extra (``pip install 'mflow[view]'``).
"""

from __future__ import annotations

import webbrowser
from typing import Any

import click

import mflow
from mflow.errors import ConfigurationError

from ._main import CONTEXT_SETTINGS
from ._options import SocketOptions, Tool, socket_options, tool_options
from ._output import Report, format_counts
from ._runtime import Run
from ._sockets import open_stream

__all__ = ["command", "serve"]

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


def _missing_extra() -> ConfigurationError:
    return ConfigurationError("mflow view needs the view extra: pip install 'mflow[view]'")


def _summary(feed: Any) -> Report:
    health = feed.health
    if health is None:
        return Report({"messages": 0}, [("messages", "0")])
    data = {
        "messages": health.messages,
        "bytes": health.bytes,
        "by_type": health.by_type,
        "images": health.images,
        "images_decoded": health.images_decoded,
        "missed": health.missed,
        "duplicated": health.duplicated,
        "reverted": health.reverted,
        "decode_errors": health.errors,
    }
    return Report(
        data,
        [
            ("messages", f"{health.messages:,} ({health.bytes / 1e6:,.1f} MB)"),
            ("by type", format_counts(health.by_type)),
            ("images", f"{health.images:,} ({health.images_decoded:,} decoded)"),
            (
                "gaps",
                f"missed={health.missed} duplicated={health.duplicated} reverted={health.reverted}",
            ),
            ("decode errors", format_counts(health.errors) if health.errors else "0"),
        ],
    )


def serve(
    stream: mflow.Stream,
    run: Run,
    tool: Tool,
    title: str,
    port: int = 0,
    max_fps: float = 5.0,
    open_browser: bool = False,
) -> int:
    """Receive ``stream`` into a viewer page until ``run`` stops; the run's exit code.

    Prints the page's URL as the ``serving`` event (with ``url`` in JSON output).
    """
    try:
        from tornado.ioloop import PeriodicCallback

        from mflow.view.feed import Feed
        from mflow.view.server import ViewServer
    except ImportError:
        raise _missing_extra() from None
    feed = Feed(stream, max_fps)
    server = ViewServer(feed, title, port)
    server.start()
    tool.out.event("serving", f"Viewer at {server.url}", url=server.url)
    if open_browser:
        webbrowser.open(server.url)
    feed.start()

    def check() -> None:
        if run.stopped():
            server.stop()

    watch = PeriodicCallback(check, 100)
    watch.start()
    try:
        server.io_loop.start()
    finally:
        watch.stop()
        feed.stop()
        server.stop()
        tool.out.summary(_summary(feed))
    return run.exit_code


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
