"""Helpers for the viewer's tests: a stream sender thread and a headless Chromium.

The browser is the system's Chromium (Debian's ``chromium`` and ``chromium-driver``),
driven by Selenium with the driver path given, so nothing is downloaded; tests that need
it skip with the reason when it is missing.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pytest

import mflow
from mflow.errors import SendTimeoutError

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: Seconds a browser check waits for the page to show something.
PAGE_DEADLINE = 20.0
#: Pause between two sent messages: a steady, light test stream.
SEND_PERIOD = 0.05


class Sender:
    """Sends ``messages`` (lists of parts, cycled) from a PUSH socket bound on 127.0.0.1,
    one every `SEND_PERIOD`, in a thread until `stop`."""

    def __init__(self, messages: Callable[[], Iterable[list[Any]]]) -> None:
        self.stream = mflow.connect(
            "tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUSH, send_timeout=100, linger=0
        )
        self.endpoint = self.stream.endpoint
        self.sent = 0
        self._messages = messages
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for parts in self._messages():
                while not self._stop.is_set():
                    try:
                        self.stream.send_multipart(parts)
                        break
                    except SendTimeoutError:  # no viewer (yet): try again
                        continue
                self.sent += 1
                if self._stop.wait(SEND_PERIOD):
                    return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.stream.disconnect()


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} is missing (apt-get install -y chromium chromium-driver)"
    try:
        import bokeh  # noqa: F401
        import selenium  # noqa: F401
    except ImportError as error:
        return f"{error.name} is not installed (pip install -e '.[test,view]')"
    return None


def chromium() -> Iterator[Any]:
    """A headless Chromium under Selenium, with a fresh profile and no background traffic."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="mflow-view-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1500,1400",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def model(driver: Any, name: str, expression: str) -> Any:
    """``expression`` (JavaScript, ``m`` is the model) on the page's model named ``name``;
    None while the page has no such model yet."""
    return driver.execute_script(
        "const doc = window.Bokeh && Bokeh.documents[0];"
        f"const m = doc && doc.get_model_by_name({name!r});"
        f"return m ? ({expression}) : null;"
    )


def set_model(driver: Any, name: str, attribute: str, value: Any) -> None:
    """Set a widget's property in the page, as the user's click does."""
    driver.execute_script(
        f"Bokeh.documents[0].get_model_by_name({name!r})[{attribute!r}] = arguments[0];", value
    )


def wait_for(check: Callable[[], Any], what: str, timeout: float = PAGE_DEADLINE) -> Any:
    """The first true result of ``check`` (polled every 0.1 s), or the test fails."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"the page did not show {what} within {timeout} s (last: {result!r})")
        time.sleep(0.1)


_FRAME_BOX = """
function find(view) {
  if (view.model && view.model.name === arguments[0]) return view;
  for (const child of view.child_views || []) {
    const found = find(child);
    if (found) return found;
  }
  return null;
}
let plot = null;
for (const root of Object.values(Bokeh.index)) plot = plot || find(root);
const host = plot.el.getBoundingClientRect();
const frame = plot.frame.bbox;
return [host.left + frame.left, host.top + frame.top, frame.width, frame.height];
"""


def frame_box(driver: Any, name: str = "image_plot") -> tuple[float, float, float, float]:
    """Left, top, width and height (CSS pixels in the window) of a plot's drawing area."""
    script = _FRAME_BOX.replace("arguments[0]", repr(name))
    left, top, width, height = driver.execute_script(script)
    return left, top, width, height


def move_mouse(driver: Any, x: float, y: float) -> None:
    """Move the mouse to window position (x, y) in CSS pixels."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    actions = ActionChains(driver)
    ActionBuilder(driver, mouse=actions.w3c_actions.pointer_action.source)
    actions.w3c_actions.pointer_action.move_to_location(int(x), int(y))
    actions.perform()


def plot_pixels(driver: Any, path: Path, name: str = "image_plot") -> bytes:
    """A screenshot of the window saved to ``path``; the RGB bytes of the plot's area."""
    from PIL import Image

    driver.save_screenshot(str(path))
    left, top, width, height = frame_box(driver, name)
    ratio = driver.execute_script("return window.devicePixelRatio")
    box = tuple(round(v * ratio) for v in (left, top, left + width, top + height))
    with Image.open(path) as image:
        return image.convert("RGB").crop(box).tobytes()
