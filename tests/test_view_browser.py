"""``mflow view`` in a real browser: headless Chromium opens the page of a simulated stream.

Screenshots are written to pytest's temporary directory (``--basetemp`` keeps them).
"""

from __future__ import annotations

import io
import itertools
import re
import statistics
import time
import urllib.request
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest

from mflow import synthetic as _synthetic
from mflow.handlers import dimage_1_0, stream2

from .view_support import (
    Sender,
    browser_missing,
    chromium,
    frame_box,
    model,
    move_mouse,
    plot_pixels,
    set_model,
    wait_for,
)

pytestmark = pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))

#: Every pixel a different value, so a wrong lookup (e.g. in the binned image) shows.
ROWS, COLUMNS = 1200, 1000
PATTERN = (np.arange(ROWS * COLUMNS, dtype=np.uint32).reshape(ROWS, COLUMNS) * 7) % 100003


def _dectris_series() -> list[list[Any]]:
    part_2, blob = dimage_1_0.encode_image(PATTERN)
    messages = [
        _synthetic.encode_with(
            "dheader-1.0",
            {"header": {"htype": "dheader-1.0", "series": 7, "header_detail": "none"}},
        )
    ]
    for frame in range(20):
        messages.append(
            _synthetic.encode_with(
                "dimage-1.0",
                {
                    "header": {"htype": "dimage-1.0", "series": 7, "frame": frame, "hash": ""},
                    "part_2": part_2,
                    "part_3_raw": blob,
                    "part_4": {"htype": "dconfig-1.0"},
                },
            )
        )
    return messages


def _stream2_series() -> list[list[Any]]:
    low = _synthetic.detector_images((300, 400), "uint16", count=1)[0]
    high = np.full((300, 400), 5, np.uint16)
    high[:150] = 5000
    start = {
        "type": "start",
        "series_id": 3,
        "series_unique_id": "s3",
        "channels": ["threshold_1", "threshold_2"],
    }
    messages = [[stream2.encode_stream2(start, None)]]
    for image in range(20):
        messages.append(
            [
                stream2.encode_stream2(
                    {
                        "type": "image",
                        "series_id": 3,
                        "series_unique_id": "s3",
                        "image_id": image,
                        "data": {"threshold_1": low, "threshold_2": high},
                    },
                    None,
                )
            ]
        )
    return messages


def _bsread_messages() -> list[list[Any]]:
    source = _synthetic.bsread_messages(_synthetic.Spec())
    return [next(source) for _ in range(20)]


@pytest.fixture
def browser() -> Iterator[Any]:
    yield from chromium()


@pytest.fixture
def viewer(tools: Callable[..., Any]) -> Iterator[Callable[..., tuple[Sender, str]]]:
    """Starts a sender of the given messages and ``mflow view`` on it; (sender, page URL)."""
    senders: list[Sender] = []

    def start(messages: Callable[[], list[list[Any]]], *args: str) -> tuple[Sender, str]:
        sender = Sender(messages)
        senders.append(sender)
        tool = tools("view", sender.endpoint, "--json", "-d", "55", *args)
        return sender, tool.event("serving")["url"]

    yield start
    for sender in senders:
        sender.stop()


def _image_number(driver: Any) -> int | None:
    text = model(driver, "status", "m.text")
    found = re.search(r"image <b>(\d+)</b>", text or "")
    return int(found.group(1)) if found else None


def _readout_near(driver: Any, x: float, y: float) -> tuple[int, int, int] | None:
    found = re.match(r"x (\d+), y (\d+): <b>(\d+)</b>", model(driver, "readout", "m.text") or "")
    if found is None:
        return None
    shown = tuple(map(int, found.groups()))
    return shown if abs(shown[0] - x) <= 3 and abs(shown[1] - y) <= 3 else None


def _download_frame(driver: Any, url: str) -> tuple[np.ndarray] | None:
    """The frame the page's "Save frame" link gives (None while the page has no link)."""
    link = re.search(r'href="/([^"]+)"', model(driver, "download", "m.text") or "")
    if link is None:
        return None
    with urllib.request.urlopen(url + link.group(1), timeout=10) as response:
        return (np.load(io.BytesIO(response.read())),)


def test_the_image_updates_and_the_value_under_the_cursor_is_the_full_frames(
    viewer: Any, browser: Any, tmp_path: Path
) -> None:
    _, url = viewer(_dectris_series)
    browser.get(url)
    first = wait_for(
        lambda: _image_number(browser) is not None and _image_number(browser), "an image number"
    )
    wait_for(lambda: _image_number(browser) not in (None, first), "a newer image")
    assert "1000×1200 uint32" in model(browser, "status", "m.text")
    left, top, width, height = frame_box(browser)
    for fx, fy in ((0.25, 0.3), (0.61, 0.77), (0.9, 0.1)):
        move_mouse(browser, left + fx * width, top + fy * height)
        text = wait_for(partial(_readout_near, browser, fx * COLUMNS, fy * ROWS), "a readout")
        x, y, value = text
        assert value == PATTERN[y, x]
    browser.save_screenshot(str(tmp_path / "dectris.png"))
    (saved,) = wait_for(lambda: _download_frame(browser, url), "a frame download")
    np.testing.assert_array_equal(saved, PATTERN)


def test_log_scale_and_channel_selection_change_what_is_drawn(
    viewer: Any, browser: Any, tmp_path: Path
) -> None:
    _, url = viewer(_stream2_series)
    browser.get(url)
    wait_for(lambda: model(browser, "channel", "m.options.length") == 2, "two channels")
    assert model(browser, "channel", "m.options") == ["threshold_1", "threshold_2"]
    wait_for(lambda: model(browser, "image_source", "m.data.dw[0]") == 400, "the image")
    linear = plot_pixels(browser, tmp_path / "stream2-linear.png")
    set_model(browser, "scale", "active", 1)
    wait_for(
        lambda: (
            model(browser, "histogram", "m.title.text").startswith("Histogram")
            and plot_pixels(browser, tmp_path / "stream2-log.png") != linear
        ),
        "the log scale",
    )
    log = plot_pixels(browser, tmp_path / "stream2-log.png")
    set_model(browser, "channel", "value", "threshold_2")
    wait_for(
        lambda: plot_pixels(browser, tmp_path / "stream2-threshold_2.png") != log,
        "the second threshold",
    )
    top_half = model(
        browser, "image_source", "Math.max(...Array.from(m.data.image[0]).slice(0, 400))"
    )
    assert top_half == 5000


def test_the_rate_plots_have_points_and_the_health_counts_messages(
    viewer: Any, browser: Any, tmp_path: Path
) -> None:
    sender, url = viewer(_dectris_series)
    browser.get(url)
    wait_for(
        lambda: (model(browser, "rates", "m.data.rate.filter(r => r > 0).length") or 0) >= 2,
        "two non-zero rate points",
    )
    assert model(browser, "rates", "m.data.mbytes.filter(r => r > 0).length") >= 2

    def health_counting_images() -> str | None:
        # The table is redrawn once a second: it may still show the series' first message.
        text = model(browser, "health", "m.text") or ""
        return text if "dimage-1.0" in text else None

    health = wait_for(health_counting_images, "the images counted in the health table")
    assert "missed 0" in health
    browser.save_screenshot(str(tmp_path / "health.png"))


def test_the_bsread_table_lists_the_channels_and_plots_a_picked_one(
    viewer: Any, browser: Any, tmp_path: Path
) -> None:
    _, url = viewer(_bsread_messages)
    browser.get(url)
    names = [name for name, _, _ in _synthetic._BSREAD_CHANNELS]
    wait_for(lambda: model(browser, "channel_source", "m.data.name") == names, "the channels")
    assert model(browser, "bsread_panel", "m.visible")
    assert "SIM:ENERGY" in model(browser, "picked", "m.options")
    set_model(browser, "picked", "value", ["SIM:ENERGY"])
    wait_for(
        lambda: (
            (
                model(
                    browser,
                    "pulse_plot",
                    "m.renderers.length == 1 && m.renderers[0].data_source.data.value.length",
                )
                or 0
            )
            > 2
        ),
        "a plot of SIM:ENERGY",
    )
    wait_for(
        lambda: model(browser, "status", "m.text").startswith("<b>bsread"),
        "the 2-D channel as the image",
    )
    browser.save_screenshot(str(tmp_path / "bsread.png"))


def test_the_page_loads_nothing_from_outside(viewer: Any) -> None:
    _, url = viewer(_bsread_messages)
    with urllib.request.urlopen(url, timeout=10) as response:
        html = response.read().decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith("/static/") for s in sources)
    assert "cdn." not in html


#: How many times slower than normal the slowed browser runs its page (Chromium's CPU
#: throttling: slow without spending more of the machine).
SLOWER = 3


class _NumberedImages:
    """A DECTRIS series whose image numbers keep growing; remembers when each was sent."""

    def __init__(self) -> None:
        self.part_2, self.blob = dimage_1_0.encode_image(np.ascontiguousarray(PATTERN[:600, :500]))
        self.sent_at: dict[int, float] = {}
        self._numbers = itertools.count()

    def __call__(self) -> Iterator[list[Any]]:
        for number in self._numbers:
            self.sent_at[number] = time.monotonic()
            yield _synthetic.encode_with(
                "dimage-1.0",
                {
                    "header": {"htype": "dimage-1.0", "series": 1, "frame": number, "hash": ""},
                    "part_2": self.part_2,
                    "part_3_raw": self.blob,
                    "part_4": {"htype": "dconfig-1.0"},
                },
            )


def _skipped(driver: Any) -> int:
    found = re.search(r"([\d,]+) skipped", model(driver, "status", "m.text") or "")
    return int(found.group(1).replace(",", "")) if found else 0


def _drawn(driver: Any) -> int:
    return driver.execute_script("return (window.mflow_latencies || []).length")


@pytest.fixture
def second_browser() -> Iterator[Any]:
    yield from chromium()


def test_a_slow_browser_is_sent_the_newest_image_not_a_queue_and_a_fast_one_is_not_held_up(
    viewer: Any, browser: Any, second_browser: Any
) -> None:
    images = _NumberedImages()
    _, url = viewer(images, "--max-fps", "50")
    browser.get(url)
    wait_for(lambda: _image_number(browser) is not None, "an image")
    browser.execute_cdp_cmd("Emulation.setCPUThrottlingRate", {"rate": SLOWER})
    fast = second_browser
    fast.get(url)
    wait_for(lambda: _image_number(fast) is not None, "an image in the second browser")
    slow_before, fast_before, start = _drawn(browser), _drawn(fast), time.monotonic()
    # Without flow control the updates queue up (four a second sent, fewer drawn): the
    # slow page's image falls ever further behind the stream.
    lags = []
    while time.monotonic() - start < 6.0:
        shown = wait_for(lambda: _image_number(browser), "an image number")
        lags.append(time.monotonic() - images.sent_at[shown])
    slow_drawn, fast_drawn = _drawn(browser) - slow_before, _drawn(fast) - fast_before
    # Before flow control the lag grew without bound (to 6.7, 9.0, 10.4 s in 6 s); one late
    # image on a loaded machine is no queue.
    assert statistics.median(lags[len(lags) // 2 :]) < 3.0, lags
    assert slow_drawn >= 2 and fast_drawn > slow_drawn, (slow_drawn, fast_drawn)
    assert _skipped(browser) > 0
