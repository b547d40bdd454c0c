"""The viewer's receiving side: a thread that takes every message of a `Stream` and keeps
what the page shows.

Messages are received undecoded (``decode=False``): every one is counted, but an image is
decompressed only when the last decoded one is at least ``1 / max_fps`` seconds old and,
while pages are subscribed, only when one of them wants a new image (`want`: its browser
has drawn the last one), so what a page shows is fresh and no time goes into images no
browser could draw; the others are counted as not decoded. The latest decoded image
(`Frame`), the stream's health (`Health`, sampled twice a second into a rate history), the
latest bsread values and the history of the scalar channels a page watches are kept here
for the pages to read; the pages never touch the stream. Pages `subscribe` to hear of
each new image at once instead of finding it on their next refresh.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import mflow
from mflow.dispatch import SLS, STREAM2, send_key
from mflow.errors import MflowError
from mflow.handlers import dimage_1_0, stream2

from .imaging import mask_of

__all__ = ["Feed", "Frame", "Health", "Bsread"]

logger = logging.getLogger(__name__)

#: Seconds between two health samples (the rate plots' resolution).
SAMPLE_INTERVAL = 0.5
#: Health samples kept: five minutes.
HISTORY = 600
#: Points kept per watched bsread channel.
CHANNEL_HISTORY = 5000
_POLL_MS = 50


@dataclass(frozen=True)
class Frame:
    """One decoded image message: its 2-D channels (a single one is ``"image"``)."""

    number: int
    index: int  # the image's place among all image messages received (decoded or not)
    kind: str
    channels: dict[str, np.ndarray]
    masks: dict[str, np.ndarray | None]
    series: Any
    image: Any
    received: float


@dataclass(frozen=True)
class Health:
    """The stream's health at ``time``: totals, rates over the last sample, gaps, errors."""

    time: float
    messages: int
    bytes: int
    rate: float
    byte_rate: float
    by_type: dict[str, int]
    missed: int
    duplicated: int
    reverted: int
    errors: dict[str, int]
    last_message_time: float | None
    series: Any
    images: int
    images_decoded: int
    images_not_decoded: int


@dataclass
class Bsread:
    """The latest bsread message: pulse id and channel values (in channel order)."""

    pulse_id: Any = None
    values: dict[str, Any] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    number: int = 0
    received: float = 0.0


def _pixel_masks(message: dict) -> dict[str, Any]:
    """Pixel masks a series header carries, by channel name."""
    if isinstance(message.get("pixel_mask"), np.ndarray):  # dheader-1.0 "all"
        return {"image": message["pixel_mask"]}
    masks = message.get("pixel_mask")
    if isinstance(masks, dict):  # Stream V2 start: one mask per threshold
        return {
            name: mask.decode() if isinstance(mask, stream2.CompressedData) else mask
            for name, mask in masks.items()
        }
    return {}


class Feed:
    """Receives ``stream`` in a thread (`start` / `stop`) and keeps what the pages show."""

    def __init__(self, stream: mflow.Stream, max_fps: float = 5.0) -> None:
        self.stream = stream
        self.min_interval = 1.0 / max_fps if max_fps > 0 else float("inf")
        self.frame: Frame | None = None
        self.health: Health | None = None
        self.history: collections.deque[Health] = collections.deque(maxlen=HISTORY)
        self.samples = 0  # health samples taken so far (pages stream the new ones)
        self.bsread = Bsread()
        self._watched: dict[str, collections.deque[tuple[Any, float]]] = {}
        self._watchers: dict[Any, set[str]] = {}
        self._listeners: tuple[Callable[[], None], ...] = ()
        self._wanted = False
        self._decoding = -float("inf")  # arrival time of the image decoded last (or now)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._frames = itertools.count(1)
        self._last_decode = -float("inf")
        self._masks: dict[str, Any] = {}
        self._series: Any = None
        self._images = self._decoded = 0
        self._image_errors: collections.Counter[str] = collections.Counter()
        self._last_sample = (time.monotonic(), 0, 0)

    # ----------------------------------------------------------------- thread control

    def start(self) -> None:
        """Start receiving in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="mflow-view-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop receiving and wait for the thread (the stream stays open)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        next_sample = time.monotonic()
        socket = self.stream.socket
        assert socket is not None, "the stream is connected before the feed starts"
        while not self._stop.is_set():
            message = self.stream.receive(block=False, decode=False)
            if message is None and socket.poll(_POLL_MS):
                message = self.stream.receive(block=False, decode=False)
            if message is not None:
                self._take(message.data, time.time())
            now = time.monotonic()
            if now >= next_sample:
                self._sample(now)
                next_sample = max(next_sample + SAMPLE_INTERVAL, now)

    # ----------------------------------------------------------------- what pages read

    def watch(self, watcher: Any, names: list[str]) -> None:
        """Keep the history of the bsread scalar channels ``names`` for ``watcher`` (a page;
        an empty list forgets it); channels no watcher names are forgotten."""
        with self._lock:
            self._watchers[watcher] = set(names)
            wanted = set().union(*self._watchers.values())
            self._watched = {
                name: self._watched.get(name) or collections.deque(maxlen=CHANNEL_HISTORY)
                for name in wanted
            }

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after each newly decoded `frame`, in the feed's thread (so it
        should only hand the news on, e.g. with Bokeh's ``add_next_tick_callback``)."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def unsubscribe(self, listener: Callable[[], None]) -> None:
        """Stop calling ``listener`` (idempotent)."""
        with self._lock:
            self._listeners = tuple(f for f in self._listeners if f != listener)

    def want(self, since: float) -> None:
        """Decode the next image (within ``max_fps``) unless one that arrived at ``since``
        (`time.time`) or later is decoded already: a subscribed page can show it."""
        with self._lock:
            if since > self._decoding:
                self._wanted = True

    def channel_history(self, name: str) -> tuple[list[Any], list[float]]:
        """Pulse ids and values of a watched channel, oldest first."""
        with self._lock:
            points = list(self._watched.get(name, ()))
        return [p for p, _ in points], [v for _, v in points]

    def rates_since(self, sample: int) -> list[Health]:
        """The health samples after the ``sample``-th (at most `HISTORY`)."""
        with self._lock:
            new = min(self.samples - sample, len(self.history))
            return list(self.history)[len(self.history) - new :] if new > 0 else []

    # ----------------------------------------------------------------- the receive side

    def _take(self, data: Any, received: float) -> None:
        try:
            kind = send_key(data)
        except (KeyError, TypeError):
            return
        if kind == "dimage-1.0":
            self._series = data["header"].get("series")
            self._image(kind, data, received, data["header"].get("frame"))
        elif kind == STREAM2:
            self._stream2(data, received)
        elif kind == "dheader-1.0":
            self._new_series(data["header"].get("series"), _pixel_masks(data))
        elif kind == SLS:
            if data.get("image") is not None:
                header = data["header"]
                self._series = header.get("acqIndex")
                self._image(kind, data, received, header.get("frameIndex"))
        elif kind == "array-1.0":
            arrays = {
                f"part {i}": a
                for i, a in enumerate(data.get("data") or ())
                if isinstance(a, np.ndarray) and a.ndim == 2
            }
            if arrays:
                self._image(kind, arrays, received, data["header"].get("frame"))
        elif kind.startswith("bsr_m"):
            self._bsread(data, received)

    def _new_series(self, series: Any, masks: dict[str, Any]) -> None:
        self._series = series
        self._masks = masks

    def _stream2(self, data: dict, received: float) -> None:
        kind = data.get("type")
        if kind == "start":
            self._new_series(data.get("series_id"), _pixel_masks(data))
        elif kind == "image" and isinstance(data.get("data"), dict):
            self._series = data.get("series_id")
            self._image(STREAM2, data, received, data.get("image_id"))

    def _bsread(self, data: dict, received: float) -> None:
        values = data.get("data") or {}
        pulse_id = data.get("pulse_id")
        with self._lock:
            self.bsread = Bsread(
                pulse_id, values, self._bsread_types(data), self.bsread.number + 1, received
            )
            for name, history in self._watched.items():
                value = values.get(name)
                if isinstance(value, (np.generic, int, float)) and np.ndim(value) == 0:
                    history.append((pulse_id, float(value)))
        images = {
            name: value
            for name, value in values.items()
            if isinstance(value, np.ndarray) and value.ndim == 2 and min(value.shape) > 1
        }
        if images:
            self._image("bsread", images, received, pulse_id)

    def _bsread_types(self, data: dict) -> dict[str, str]:
        header = data.get("data_header") or {}
        if header is self._last_data_header:
            return self.bsread.types
        self._last_data_header = header
        return {c.get("name"): str(c.get("type", "float64")) for c in header.get("channels", ())}

    _last_data_header: Any = None

    def _image(self, kind: str, data: Any, received: float, number: Any) -> None:
        self._images += 1
        now = time.monotonic()
        if now - self._last_decode < self.min_interval or (self._listeners and not self._wanted):
            return
        self._last_decode = now
        with self._lock:
            self._wanted, self._decoding = False, received
        try:
            channels = self._decode(kind, data)
        except MflowError as error:
            self._image_errors[f"image {type(error).__name__}"] += 1
            logger.debug("image not decoded: %s", error)
            self._wanted = True  # the pages still wait for one
            return
        self._decoded += 1
        masks = {
            name: mask_of(self._masks.get(name), image.shape) for name, image in channels.items()
        }
        self.frame = Frame(
            next(self._frames), self._images, kind, channels, masks, self._series, number, received
        )
        for listener in self._listeners:
            listener()

    @staticmethod
    def _decode(kind: str, data: Any) -> dict[str, np.ndarray]:
        if kind == "dimage-1.0":
            return {"image": dimage_1_0.decode_image(data["part_2"], data["part_3_raw"])}
        if kind == STREAM2:
            return {
                name: value.decode() if isinstance(value, stream2.CompressedData) else value
                for name, value in data["data"].items()
            }
        if kind == SLS:
            return {"image": data["image"]}
        return dict(data)

    def _sample(self, now: float) -> None:
        statistics = self.stream.statistics
        then, messages, nbytes = self._last_sample
        total_messages = statistics.messages_received
        total_bytes = statistics.total_bytes_received
        window = now - then
        self._last_sample = (now, total_messages, total_bytes)
        errors = collections.Counter(statistics.payload_errors) + self._image_errors
        errors.update({k: v for k, v in statistics.skipped.items() if k != "timeout"})
        health = Health(
            time=time.time(),
            messages=total_messages,
            bytes=total_bytes,
            rate=(total_messages - messages) / window if window > 0 else 0.0,
            byte_rate=(total_bytes - nbytes) / window if window > 0 else 0.0,
            by_type=dict(statistics.messages_by_htype),
            missed=statistics.missed,
            duplicated=statistics.duplicated,
            reverted=statistics.reverted,
            errors=dict(errors),
            last_message_time=statistics.last_message_time,
            series=self._series,
            images=self._images,
            images_decoded=self._decoded,
            images_not_decoded=self._images - self._decoded,
        )
        with self._lock:
            self.health = health
            self.history.append(health)
            self.samples += 1
