"""``mflow view`` and ``mflow demo --view`` as processes: URL, page, summary (no browser)."""

from __future__ import annotations

import urllib.request
from typing import Any, Callable

import pytest

pytest.importorskip("bokeh", reason="the view extra is not installed")


def _page(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def test_demo_view_serves_the_simulated_detector(
    tools: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROWSER", "true")  # --view opens the browser: a no-op command here
    demo = tools("demo", "--view", "--json", "-d", "4", "--shape", "64x80")
    url = demo.event("serving")["url"]
    assert url.startswith("http://127.0.0.1:")
    assert "bokeh" in _page(url)
    assert demo.wait() == 0
    summary = demo.summary()
    assert summary["messages"] > 0 and summary["images"] > 0


def test_view_says_how_many_images_it_decoded(tools: Callable[..., Any]) -> None:
    generator = tools(
        "generate",
        "stream2",
        "--rate",
        "200",
        "-a",
        "tcp://127.0.0.1:*",
        "--shape",
        "64x80",
        "--json",
    )
    endpoint = generator.endpoint()
    view = tools("view", endpoint, "--json", "-d", "3", "--max-fps", "2")
    view.event("serving")
    assert view.wait() == 0
    summary = view.summary()
    assert summary["images"] > 50
    assert 1 <= summary["images_decoded"] <= 3 * 2 + 1


def test_view_refuses_a_bad_port(tools: Callable[..., Any]) -> None:
    view = tools("view", "tcp://127.0.0.1:1", "--port", "70000")
    assert view.wait() == 2
