"""The Bokeh server of ``mflow view``: one page per browser, on 127.0.0.1 by default.

Bokeh serves its own JavaScript and CSS from the package (``/static/``), so the page works
without internet. Besides the page, ``/frame.npy?page=ID`` downloads the frame that page
shows, at full resolution.
"""

from __future__ import annotations

import io
import weakref
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
    """``GET /frame.npy?page=ID``: the frame that page shows, as a ``.npy`` file."""

    def initialize(self, pages: weakref.WeakValueDictionary[str, Page]) -> None:
        self.pages = pages

    def get(self) -> None:
        page = self.pages.get(self.get_argument("page"))
        frame = None if page is None else page.frame
        channel = None if page is None else page.channel.value
        if frame is None or channel not in frame.channels:
            raise HTTPError(404, "no such page, or it shows no image")
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

    def __init__(self, feed: Feed, title: str, port: int = 0, address: str = "127.0.0.1") -> None:
        self.feed = feed
        self.title = title
        cache = RenderCache()
        pages: weakref.WeakValueDictionary[str, Page] = weakref.WeakValueDictionary()

        def make_page(doc: Document) -> None:
            page = Page(doc, feed, title, cache)
            pages[page.id] = page

        origins = ["127.0.0.1", "localhost"] if address in ("127.0.0.1", "localhost") else ["*"]
        self.server = Server(
            {"/": Application(FunctionHandler(make_page))},
            port=port,
            address=address,
            allow_websocket_origin=origins,
            extra_patterns=[(r"/frame\.npy", _FrameHandler, {"pages": pages})],
            check_unused_sessions_milliseconds=5000,
            unused_session_lifetime_milliseconds=10000,
        )
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
