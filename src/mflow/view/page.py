"""One browser's page: a Bokeh document built from a `Feed`, refreshed four times a second
and at once when the feed has a new image.

The image is binned on the server to the plot's size (`imaging.bin_region`) for the part
of the frame in view, so zooming in shows full resolution; the value under the cursor is
read from the full frame. Renders are shared between pages showing the same view.

Flow control: Bokeh sends every change, so a browser that draws slower than images come
would fall ever further behind. Each page therefore has at most one update in flight: the
browser confirms it once the image (or the bsread table) is painted (`UpdateState`),
and only then does the page ask the feed for a new image (`Feed.want`) and send it; the
images that arrived in between are skipped for that page and counted (`Page.skipped`).
Each browser has its own flow.
"""

from __future__ import annotations

import collections
import secrets
import time
from functools import partial
from typing import Any

import jinja2
import numpy as np
from bokeh import palettes
from bokeh.core.properties import Int
from bokeh.core.validation import silence
from bokeh.core.validation.warnings import MISSING_RENDERERS
from bokeh.document import Document
from bokeh.events import MouseMove, RangesUpdate
from bokeh.layouts import column, row
from bokeh.model import DataModel
from bokeh.models import (
    BoxZoomTool,
    ColorBar,
    ColumnDataSource,
    CustomJS,
    DataTable,
    Div,
    LinearColorMapper,
    LogColorMapper,
    MultiChoice,
    NumericInput,
    PanTool,
    RadioButtonGroup,
    Range1d,
    ResetTool,
    SaveTool,
    Select,
    TableColumn,
    WheelZoomTool,
)
from bokeh.plotting import figure
from tornado.ioloop import IOLoop

from . import imaging
from .feed import Bsread, Feed, Frame, Health

__all__ = [
    "Page",
    "RenderCache",
    "UpdateState",
    "COLOUR_MAPS",
    "REFRESH_MS",
    "SCREEN",
    "ACK_TIMEOUT",
    "HEALTH_INTERVAL",
]

# The pulse-id plot has lines only once channels are picked.
silence(MISSING_RENDERERS, True)

REFRESH_MS = 250
#: Seconds between two updates of the health table (each text change re-lays out the page).
HEALTH_INTERVAL = 1.0
#: Seconds an update may stay unconfirmed before the page sends the next one anyway (a
#: confirmation lost, e.g. with the tab hidden, must not freeze the page).
ACK_TIMEOUT = 5.0
#: Bins the image is reduced to at most (rows, columns): about the plot's size in pixels.
SCREEN = (800, 800)
MASK_COLOUR = "#ff00ff"
COLOUR_MAPS = {
    "Viridis": palettes.Viridis256,
    "Inferno": palettes.Inferno256,
    "Magma": palettes.Magma256,
    "Cividis": palettes.Cividis256,
    "Greys": palettes.Greys256,
    "Greys inverted": palettes.Greys256[::-1],
    "Turbo": palettes.Turbo256,
}
_SCALES = ("linear", "log")
_CONTRASTS = ("auto 1–99.9 %", "fixed")
_TEMPLATE = jinja2.Template("""
{% extends base %}
{% block contents %}
<div style="display: flex; flex-direction: column; gap: 6px; padding: 6px">
  {{ embed(roots.header) }}
  <div style="display: flex; gap: 12px">
    <div style="display: flex; flex-direction: column; gap: 4px">
      {{ embed(roots.status) }} {{ embed(roots.image_plot) }} {{ embed(roots.readout) }}
    </div>
    {{ embed(roots.side) }}
  </div>
  <div style="display: flex; gap: 12px">
    {{ embed(roots.rate_plot) }} {{ embed(roots.byte_plot) }} {{ embed(roots.health) }}
  </div>
  {{ embed(roots.bsread_panel) }} {{ embed(roots.update_state) }}
</div>
{% endblock %}
""")
_DRAWN_JS = """
// The browser has this update's image (kind "image") or bsread table ("table"). Once it is
// painted, note how long after the viewer received the data that was, and confirm it: the
// server sends nothing newer before. The update number and arrival time ride in the same
// change as the data (Bokeh sends each change as a message of its own).
const [update, received] = kind == "image"
  ? [source.data.update[0], source.data.received[0]]
  : [table.tags[0], table.tags[1]];
const key = `mflow_${kind}_update`;
if (!(update > (window[key] || 0))) return;  // a redraw (zoom, controls), or known already
window[key] = update;
function drawn() {
  const latency = Date.now() / 1000 - received;
  const name = kind == "image" ? "mflow_latencies" : "mflow_bsread_latencies";
  window[name] = (window[name] || []).concat([latency]).slice(-1000);
  state[`${kind}_drawn`] = update;
}
// An update already in the document the browser loaded is painted by now.
const view = kind == "image" && !loading ? Bokeh.index.find_one(plot) : null;
if (view != null) {
  const once = () => { view.repainted.disconnect(once); drawn(); };
  view.repainted.connect(once);
} else {
  requestAnimationFrame(() => setTimeout(drawn, 0));
}
"""


class UpdateState(DataModel):
    """The page's flow control, set by the browser: the number of the last update whose
    image, and whose bsread table, it has painted."""

    image_drawn = Int(0)
    table_drawn = Int(0)


class RenderCache:
    """The last few binned images, keyed by frame, channel, region and binning."""

    def __init__(self, size: int = 8) -> None:
        self._items: collections.OrderedDict[tuple, imaging.Binned] = collections.OrderedDict()
        self._size = size

    def get(
        self, frame: Frame, channel: str, region: imaging.Region, binning: str
    ) -> imaging.Binned:
        key = (frame.number, channel, region, binning)
        binned = self._items.get(key)
        if binned is None:
            binned = imaging.bin_region(
                frame.channels[channel], region, SCREEN, binning, frame.masks.get(channel)
            )
            self._items[key] = binned
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return binned


def _fmt(value: Any) -> str:
    if isinstance(value, np.ndarray):
        if value.size <= 4:
            return np.array2string(value.reshape(-1), precision=4, separator=", ")
        return f"array {'×'.join(map(str, value.shape))} {value.dtype}"
    if isinstance(value, (float, np.floating)):
        return f"{value:.6g}"
    return str(value)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())) or "none"


class Page:
    """The document of one browser session; `update` runs every `REFRESH_MS` ms."""

    def __init__(self, doc: Document, feed: Feed, title: str, cache: RenderCache) -> None:
        self.doc, self.feed, self.cache = doc, feed, cache
        self.id = secrets.token_urlsafe(12)
        self.frame: Frame | None = None
        self.binned: imaging.Binned | None = None
        self.region: imaging.Region | None = None
        self.shape: tuple[int, int] | None = None
        self.samples = max(0, feed.samples - 600)
        self.bsread_number = 0
        self.bsread_channels: tuple[str, ...] = ()
        self.skipped = 0  # images that arrived between two this page showed
        self._updates = 0  # updates sent to the browser (the number of the last one)
        self._waiting: dict[str, int] = {}  # "image"/"table": update not yet confirmed
        self._sent_at = 0.0  # when the last update was sent
        self._ready_since = 0.0  # when the browser confirmed the last update (time.time)
        self._setting_limits = False
        self._auto_limits: tuple[float, float] | None = None
        self._health_shown = 0.0  # when the health table was last updated (time.monotonic)
        self._drawn_after: float | None = None  # seconds from arrival to drawn, last image
        self._build(title)
        doc.title = title
        for root in self.roots:
            doc.add_root(root)
        doc.template = _TEMPLATE
        doc.add_root(self.state)
        for kind in ("image", "table"):
            doc.js_on_event("document_ready", self._drawn_js(kind, loading=True))
        doc.add_periodic_callback(self.update, REFRESH_MS)
        self._loop = IOLoop.current()  # pages are made on the server's loop
        self._open = True
        feed.subscribe(self._on_new_frame)
        doc.on_session_destroyed(self._on_destroyed)

    def _on_new_frame(self) -> None:
        # In the feed's thread: hand over to the server's loop, the thread that also learns
        # of the session's end (a destroyed document refuses callbacks).
        self._loop.add_callback(self._schedule_update)

    def _schedule_update(self) -> None:
        if self._open:
            self.doc.add_next_tick_callback(self.update)

    def _on_destroyed(self, context: Any) -> None:
        self._open = False
        self.feed.unsubscribe(self._on_new_frame)
        self.feed.watch(self, [])

    # ------------------------------------------------------------------------ layout

    def _build(self, title: str) -> None:
        self.header = Div(
            text=f"<b>mflow view</b> {title}", name="header", styles={"font-size": "16px"}
        )
        self.status = Div(text="waiting for the first image…", name="status")
        self.readout = Div(
            text="move the cursor over the image",
            name="readout",
            styles={"font-family": "monospace"},
        )
        self._build_image()
        self._build_controls()
        self._build_histogram()
        self._build_health()
        self._build_bsread()
        self._build_flow_control()
        # Separate roots placed by the page's template: a change in one (a new status
        # line, a new health table) re-lays out that root alone, not the whole page.
        self.roots = [
            self.header,
            self.status,
            self.plot,
            self.readout,
            column(self.controls, self.histogram, name="side"),
            self.rate_plot,
            self.byte_plot,
            self.health_div,
            self.bsread_panel,
        ]

    def _build_image(self) -> None:
        palette = COLOUR_MAPS["Viridis"]
        self.linear = LinearColorMapper(palette=palette, low=0, high=1, nan_color=MASK_COLOUR)
        self.log = LogColorMapper(palette=palette, low=1, high=10, nan_color=MASK_COLOUR)
        self.image_source = ColumnDataSource(
            {
                "image": [np.zeros((1, 1), np.float32)],
                "x": [0],
                "y": [0],
                "dw": [1],
                "dh": [1],
                "update": [0],
                "received": [0.0],
            },
            name="image_source",
        )
        self.x_range, self.y_range = Range1d(0, 1), Range1d(1, 0)
        tools = [
            PanTool(),
            WheelZoomTool(),
            BoxZoomTool(match_aspect=True),
            ResetTool(),
            SaveTool(filename="mflow-view"),
        ]
        self.plot = figure(
            x_range=self.x_range,
            y_range=self.y_range,
            tools=tools,
            active_scroll=tools[1],
            frame_width=SCREEN[1],
            frame_height=600,
            x_axis_label="x (column)",
            y_axis_label="y (row)",
            name="image_plot",
            toolbar_location="above",
        )
        # One renderer per scale, shown in turn: BokehJS does not re-map an image whose
        # colour mapper is replaced.
        self.renderers = {
            scale: self.plot.image(
                image="image",
                x="x",
                y="y",
                dw="dw",
                dh="dh",
                source=self.image_source,
                color_mapper=mapper,
                visible=scale == "linear",
                name=f"image_{scale}",
            )
            for scale, mapper in (("linear", self.linear), ("log", self.log))
        }
        self.colour_bar = ColorBar(color_mapper=self.linear, width=12)
        self.plot.add_layout(self.colour_bar, "right")
        self.plot.on_event(MouseMove, self._on_mouse)
        self.plot.on_event(RangesUpdate, self._on_ranges)

    def _build_controls(self) -> None:
        self.channel = Select(title="Channel", options=[], name="channel", width=250)
        self.colour_map = Select(
            title="Colour map",
            value="Viridis",
            options=list(COLOUR_MAPS),
            name="colour_map",
            width=250,
        )
        self.scale = RadioButtonGroup(labels=list(_SCALES), active=0, name="scale")
        self.binning = RadioButtonGroup(labels=list(imaging.BINNINGS), active=0, name="binning")
        self.contrast = RadioButtonGroup(labels=list(_CONTRASTS), active=0, name="contrast")
        # Used with fixed contrast only (the automatic limits show in the histogram's title).
        self.low = NumericInput(
            title="Low", value=0, mode="float", width=120, name="low", disabled=True
        )
        self.high = NumericInput(
            title="High", value=100, mode="float", width=120, name="high", disabled=True
        )
        self.download = Div(text="", name="download")
        for widget in (self.channel, self.colour_map):
            widget.on_change("value", self._on_control)
        self.contrast.on_change("active", self._on_contrast)
        for widget in (self.scale, self.binning):
            widget.on_change("active", self._on_control)
        for widget in (self.low, self.high):
            widget.on_change("value", self._on_control)
        self.controls = column(
            self.channel,
            self.colour_map,
            Div(text="Scale"),
            self.scale,
            Div(text="Binning"),
            self.binning,
            Div(text="Contrast"),
            self.contrast,
            row(self.low, self.high),
            self.download,
        )

    def _build_histogram(self) -> None:
        self.histogram_source = ColumnDataSource(
            {"left": [], "right": [], "top": []}, name="histogram_source"
        )
        self.histogram = figure(
            width=300,
            height=260,
            y_axis_type="log",
            title="Histogram",
            tools="",
            toolbar_location=None,
            name="histogram",
        )
        self.histogram.quad(
            left="left",
            right="right",
            top="top",
            bottom=0.5,
            source=self.histogram_source,
            color="#3b6ea8",
        )

    def _build_health(self) -> None:
        self.rates = ColumnDataSource({"time": [], "rate": [], "mbytes": []}, name="rates")
        self.rate_plot = figure(
            width=420,
            height=220,
            x_axis_type="datetime",
            title="Messages/s",
            tools="",
            toolbar_location=None,
            name="rate_plot",
        )
        self.rate_plot.line("time", "rate", source=self.rates, line_width=2)
        self.byte_plot = figure(
            width=420,
            height=220,
            x_axis_type="datetime",
            title="MB/s",
            tools="",
            toolbar_location=None,
            name="byte_plot",
        )
        self.byte_plot.line("time", "mbytes", source=self.rates, line_width=2, color="#c44e52")
        self.health_div = Div(text="", name="health", width=420)

    def _build_bsread(self) -> None:
        self.channel_source = ColumnDataSource(
            {"name": [], "type": [], "value": []}, name="channel_source"
        )
        self.channel_table = DataTable(
            tags=[0, 0.0],  # the update and arrival time of the values shown
            source=self.channel_source,
            width=600,
            height=300,
            name="channel_table",
            columns=[
                TableColumn(field="name", title="Channel"),
                TableColumn(field="type", title="Type", width=80),
                TableColumn(field="value", title="Latest value"),
            ],
        )
        self.picked = MultiChoice(
            title="Plot scalar channels", options=[], width=420, name="picked"
        )
        self.picked.on_change("value", self._on_picked)
        self.pulse_plot = figure(
            width=560,
            height=300,
            title="Against pulse id",
            tools="",
            toolbar_location=None,
            name="pulse_plot",
        )
        self.pulse_sources: dict[str, ColumnDataSource] = {}
        self.bsread_panel = row(
            self.channel_table,
            column(self.picked, self.pulse_plot),
            visible=False,
            name="bsread_panel",
        )

    def _build_flow_control(self) -> None:
        self.state = UpdateState(name="update_state")
        self.image_source.js_on_change("data", self._drawn_js("image", loading=False))
        self.channel_table.js_on_change("tags", self._drawn_js("table", loading=False))
        for kind in ("image", "table"):
            self.state.on_change(f"{kind}_drawn", partial(self._on_drawn, kind))

    def _drawn_js(self, kind: str, loading: bool) -> CustomJS:
        """The browser's confirmation of an update's ``kind`` ("image" or "table")."""
        args = {
            "kind": kind,
            "loading": loading,
            "state": self.state,
            "source": self.image_source,
            "table": self.channel_table,
            "plot": self.plot,
        }
        return CustomJS(args=args, code=_DRAWN_JS)

    # ------------------------------------------------------------------------ events

    def _on_mouse(self, event: MouseMove) -> None:
        frame, channel = self.frame, self.channel.value
        if frame is None or channel not in frame.channels or event.x is None or event.y is None:
            return
        found = imaging.pixel_value(frame.channels[channel], event.x, event.y)
        if found is None:
            self.readout.text = "outside the image"
            return
        x, y, value = found
        mask = frame.masks.get(channel)
        masked = " (masked)" if mask is not None and mask[y, x] else ""
        self.readout.text = f"x {x}, y {y}: <b>{_fmt(value)}</b>{masked}"

    def _on_ranges(self, event: RangesUpdate) -> None:
        if self.shape is None or None in (event.x0, event.x1, event.y0, event.y1):
            return
        y0, y1 = sorted((event.y0, event.y1))
        x0, x1 = sorted((event.x0, event.x1))
        self.region = imaging.Region(
            int(np.floor(y0)), int(np.ceil(y1)), int(np.floor(x0)), int(np.ceil(x1))
        )
        self._redraw()

    def _on_control(self, attr: str, old: Any, new: Any) -> None:
        if not self._setting_limits:
            self._redraw()

    def _on_contrast(self, attr: str, old: Any, new: Any) -> None:
        if new == 1 and self._auto_limits is not None:  # fixed: start from what is shown
            self._setting_limits = True
            try:
                self.low.value, self.high.value = self._auto_limits
            finally:
                self._setting_limits = False
        self.low.disabled = self.high.disabled = new == 0
        self._redraw()

    def _on_picked(self, attr: str, old: Any, new: Any) -> None:
        names = list(self.picked.value)
        self.feed.watch(self, names)
        self.pulse_plot.renderers = []
        self.pulse_sources = {}
        colours = palettes.Category10[10] * (1 + len(names) // 10)
        for colour, name in zip(colours[: len(names)], names, strict=True):
            source = ColumnDataSource({"pulse_id": [], "value": []})
            self.pulse_plot.line(
                "pulse_id", "value", source=source, color=colour, legend_label=name, line_width=2
            )
            self.pulse_sources[name] = source

    # ------------------------------------------------------------------------ updates

    def _on_drawn(self, kind: str, attr: str, old: Any, new: Any) -> None:
        if self._waiting.get(kind) == new:
            del self._waiting[kind]
            if kind == "image" and self.frame is not None:
                self._drawn_after = time.time() - self.frame.received
            if not self._waiting:
                self._ready_since = time.time()
                self.update()

    def update(self) -> None:
        """Show what is new in the feed, unless the browser is still drawing the last update
        (then the newest is sent once it has, the ones in between are skipped)."""
        if self._waiting:
            if time.monotonic() - self._sent_at < ACK_TIMEOUT:
                return
            self._waiting, self._ready_since = {}, time.time()
        frame = self.feed.frame
        bsread = self.feed.bsread
        # Only an image that arrived since the browser became ready: an older one would
        # be shown late.
        new_frame = (
            frame is not None and frame is not self.frame and frame.received >= self._ready_since
        )
        new_bsread = bsread.number != self.bsread_number
        if new_frame or new_bsread:
            self._updates += 1
            self._sent_at = time.monotonic()
        if new_frame:
            assert frame is not None
            self._show_frame(frame)
            self._waiting["image"] = self._updates
        else:
            self.feed.want(self._ready_since)
        self._show_health()
        if new_bsread:
            self._show_bsread(bsread)
            self._waiting["table"] = self._updates

    def _show_frame(self, frame: Frame) -> None:
        if self.frame is not None and frame.index > self.frame.index:
            self.skipped += frame.index - self.frame.index - 1
        self.frame = frame
        names = list(frame.channels)
        if self.channel.options != names:
            self.channel.options = names
        if self.channel.value not in names:
            self.channel.value = names[0]  # redraws
        else:
            self._redraw()
        self.status.text = (
            f"<b>{frame.kind}</b> series {frame.series} · image "
            f"<b>{frame.image}</b> · {self._shape_text(frame)} · "
            f"<span title='images since the one shown before: over --max-fps or "
            f"while the browser drew'>"
            f"{self.skipped:,} skipped</span>{self._drawn_text()}"
        )
        if not self.download.text:
            self.download.text = (
                f'<a href="/frame.npy?page={self.id}" download>Save frame '
                f"(.npy)</a> · PNG: the save tool above the image"
            )

    def _drawn_text(self) -> str:
        if self._drawn_after is None:
            return ""
        return (
            f" · <span style='color:#666'>the last drawn {1000 * self._drawn_after:.0f} ms "
            f"after it arrived</span>"
        )

    def _shape_text(self, frame: Frame) -> str:
        image = frame.channels[self.channel.value]
        return f"{image.shape[1]}×{image.shape[0]} {image.dtype}"

    def _fit(self, shape: tuple[int, int]) -> None:
        """Reset the view to the whole of a frame of a new ``shape``."""
        self.shape = shape
        self.region = imaging.full_region(shape)
        rows, columns = shape
        self.plot.frame_height = max(100, min(SCREEN[0], round(SCREEN[1] * rows / columns)))
        self.plot.frame_width = max(100, min(SCREEN[1], round(SCREEN[0] * columns / rows)))
        self.x_range.update(start=0, end=columns, reset_start=0, reset_end=columns)
        self.y_range.update(start=rows, end=0, reset_start=rows, reset_end=0)

    def _redraw(self) -> None:
        frame, channel = self.frame, self.channel.value
        if frame is None or channel not in frame.channels:
            return
        image = frame.channels[channel]
        if image.shape != self.shape:
            self._fit(image.shape)
        assert self.region is not None
        binned = self.cache.get(frame, channel, self.region, imaging.BINNINGS[self.binning.active])
        self.binned = binned
        log = _SCALES[self.scale.active] == "log"
        mapper = self.log if log else self.linear
        mapper.palette = COLOUR_MAPS[self.colour_map.value]
        if self.contrast.active == 0:
            # The inputs are left alone: any widget change re-lays out the whole page.
            low, high = self._auto_limits = imaging.contrast_limits(binned.image, log=log)
        else:
            low, high = float(self.low.value or 0), float(self.high.value or 1)
            if log:
                low = max(low, 1e-3)
            high = max(high, low * 1.001 if log else low + 1e-6)
        mapper.update(low=low, high=high)
        for scale, renderer in self.renderers.items():
            renderer.visible = scale == _SCALES[self.scale.active]
        if self.colour_bar.color_mapper is not mapper:
            self.colour_bar.color_mapper = mapper
        self.image_source.data = {
            "image": [binned.image],
            "x": [binned.x0],
            "y": [binned.y0],
            "dw": [binned.width],
            "dh": [binned.height],
            "update": [self._updates],
            "received": [frame.received],
        }
        counts, edges, below, above = imaging.histogram(
            image, (low, high), mask=frame.masks.get(channel)
        )
        self.histogram_source.data = {"left": edges[:-1], "right": edges[1:], "top": counts}
        self.histogram.title.text = (
            f"Histogram {low:.4g} – {high:.4g} ({below:,} below, {above:,} above)"
        )

    def _show_health(self) -> None:
        new = self.feed.rates_since(self.samples)
        if new:
            self.samples += len(new)
            self.rates.stream(
                {
                    "time": [1000 * h.time for h in new],
                    "rate": [h.rate for h in new],
                    "mbytes": [h.byte_rate / 1e6 for h in new],
                },
                rollover=600,
            )
        health = self.feed.health
        now = time.monotonic()
        if health is not None and now - self._health_shown >= HEALTH_INTERVAL:
            self._health_shown = now
            self.health_div.text = self._health_text(health)

    @staticmethod
    def _health_text(h: Health) -> str:
        idle = (
            "never"
            if h.last_message_time is None
            else f"{max(0.0, time.time() - h.last_message_time):.1f} s ago"
        )
        rows = [
            ("messages", f"{h.messages:,} ({h.rate:.1f}/s, {h.byte_rate / 1e6:.1f} MB/s)"),
            ("by type", _counts(h.by_type)),
            (
                "gaps",
                f"missed {h.missed:,} · duplicated {h.duplicated:,} · reverted {h.reverted:,}",
            ),
            ("decode errors", _counts(h.errors) if h.errors else "0"),
            (
                "images",
                f"{h.images:,} ({h.images_decoded:,} decoded, "
                f"{h.images_not_decoded:,} not decoded)",
            ),
            ("series", str(h.series)),
            ("last message", idle),
        ]
        cells = "".join(
            f"<tr><td style='padding-right:1em;color:#555'>{k}</td><td>{v}</td></tr>"
            for k, v in rows
        )
        return f"<table>{cells}</table>"

    def _show_bsread(self, bsread: Bsread) -> None:
        self.bsread_number = bsread.number
        self.bsread_panel.visible = True
        names = tuple(bsread.values)
        self.channel_source.data = {
            "name": list(names),
            "type": [bsread.types.get(n, "") for n in names],
            "value": [_fmt(v) for v in bsread.values.values()],
        }
        self.channel_table.tags = [self._updates, bsread.received]  # after the values
        if names != self.bsread_channels:
            self.bsread_channels = names
            self.picked.options = [
                n
                for n, v in bsread.values.items()
                if isinstance(v, (np.generic, int, float)) and np.ndim(v) == 0
            ]
        self.pulse_plot.title.text = f"Against pulse id (latest {bsread.pulse_id})"
        for name, source in self.pulse_sources.items():
            pulses, values = self.feed.channel_history(name)
            source.data = {"pulse_id": pulses, "value": values}
