"""What ``mflow view`` and ``mflow demo --view`` share: serving a stream's viewer page.

The stream is received in a thread (`mflow.view.feed.Feed`), the page is served by a Bokeh
server on 127.0.0.1 (`mflow.view.server.ViewServer`) from the main thread. Needs the
``view`` extra.
"""

from __future__ import annotations

import webbrowser
from typing import Any

import mflow
from mflow.errors import ConfigurationError

from ._options import Tool
from ._output import Report, format_counts
from ._runtime import Run

__all__ = ["serve"]


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
