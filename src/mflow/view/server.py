"""The Bokeh server of ``mflow view``: one page per browser, on 127.0.0.1 by default.

Bokeh serves its own JavaScript and CSS from the package (``/static/``), so the page works
without internet. Besides the page, ``/frame.npy?number=N&channel=NAME`` downloads a
recently shown frame at full resolution.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from bokeh.application import Application
from bokeh.application.handlers.function import FunctionHandler
from bokeh.document import Document
from bokeh.server.server import Server
from tornado.web import HTTPError, RequestHandler

from .feed import Feed
from .page import Page, RenderCache

__all__ = ["ViewServer"]


class _FrameHandler(RequestHandler):
    """``GET /frame.npy?number=N&channel=NAME``: a recent frame as a ``.npy`` file."""

    def initialize(self, feed: Feed) -> None:
        self.feed = feed

    def get(self) -> None:
        try:
            number = int(self.get_argument("number"))
        except ValueError:
            raise HTTPError(400, "number must be an integer") from None
        frame = self.feed.find_frame(number)
        channel = self.get_argument("channel", "")
        if frame is None or channel not in frame.channels:
            raise HTTPError(404, "that frame is no longer kept")
        buffer = io.BytesIO()
        np.save(buffer, frame.channels[channel], allow_pickle=False)
        name = f"mflow-{frame.kind}-{frame.series}-{frame.image}-{channel}.npy".replace(" ", "_")
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Disposition", f'attachment; filename="{name}"')
        self.write(buffer.getvalue())


class ViewServer:
    """Serves pages of ``feed`` at ``http://address:port/`` (port 0: a free one).

    `start` binds and returns at once; the pages are served while the caller runs
    ``io_loop`` (or `run`).
    """

    def __init__(self, feed: Feed, title: str, port: int = 0,
                 address: str = "127.0.0.1") -> None:
        self.feed = feed
        self.title = title
        cache = RenderCache()

        def make_page(doc: Document) -> None:
            Page(doc, feed, title, cache)

        origins = ["127.0.0.1", "localhost"] if address in ("127.0.0.1", "localhost") else ["*"]
        self.server = Server({"/": Application(FunctionHandler(make_page))}, port=port,
                             address=address, allow_websocket_origin=origins,
                             extra_patterns=[(r"/frame\.npy", _FrameHandler, {"feed": feed})],
                             check_unused_sessions_milliseconds=5000,
                             unused_session_lifetime_milliseconds=10000)
        self.address = address
        self._stopped = False

    @property
    def url(self) -> str:
        """The page's address."""
        host = "127.0.0.1" if self.address in ("0.0.0.0", "") else self.address
        return f"http://{host}:{self.server.port}/"

    @property
    def io_loop(self) -> Any:
        """The Tornado loop the server runs on."""
        return self.server.io_loop

    def start(self) -> None:
        """Start accepting browsers (run the `io_loop` to serve them)."""
        self.server.start()

    def stop(self) -> None:
        """Stop serving (idempotent) and stop the loop."""
        if self._stopped:
            return
        self._stopped = True
        self.server.stop()
        self.server.io_loop.stop()


