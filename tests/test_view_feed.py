"""The viewer's feed: each kind of stream gives the image it carries, at most --max-fps."""

from __future__ import annotations

import time

import numpy as np
import pytest

import mflow
from mflow import synthetic as _synthetic
from mflow.view.feed import Feed

DEADLINE = 10.0


def _feed_of(kind: str, spec: _synthetic.Spec, messages: int, max_fps: float = 100.0) -> Feed:
    """A feed that received ``messages`` of ``kind`` (sent before it starts)."""
    sender = mflow.connect(
        "tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUSH, send_timeout=5000, linger=0
    )
    receiver = mflow.connect(sender.endpoint, mode=mflow.PULL, receive_timeout=100)
    feed = Feed(receiver, max_fps)
    try:
        _, source = _synthetic.make_source(kind, spec)
        for _ in range(messages):
            sender.send_multipart(next(source))
        feed.start()
        deadline = time.monotonic() + DEADLINE
        while feed.health is None or feed.health.messages < messages:
            assert time.monotonic() < deadline, "the feed did not receive every message"
            time.sleep(0.05)
    finally:
        feed.stop()
        receiver.disconnect()
        sender.disconnect()
    return feed


@pytest.mark.parametrize(
    "kind, channels, shape",
    [
        ("dectris", ["image"], (64, 80)),
        ("stream2", ["threshold_1"], (64, 80)),
        ("sls", ["image"], (64, 80)),
        ("array", ["part 0"], (64, 80)),
        ("bsread", ["SIM:IMAGE"], (64, 64)),
    ],
)
def test_each_kind_of_stream_gives_its_image(kind: str, channels: list[str], shape) -> None:
    spec = _synthetic.Spec(shape=None if kind == "bsread" else shape, images=5)
    feed = _feed_of(kind, spec, 4)
    frame = feed.frame
    assert frame is not None and list(frame.channels) == channels
    image = frame.channels[channels[0]]
    assert image.shape == shape and image.dtype == np.uint16 and image.any()


def test_images_beyond_max_fps_are_counted_not_decoded() -> None:
    feed = _feed_of("dectris", _synthetic.Spec(shape=(64, 80), images=200), 150, max_fps=1.0)
    assert feed.health is not None
    assert feed.health.images >= 140
    assert 1 <= feed.health.images_decoded <= 11
    assert feed.health.images_not_decoded == feed.health.images - feed.health.images_decoded


def test_bsread_keeps_the_latest_values_and_channel_types() -> None:
    feed = _feed_of("bsread", _synthetic.Spec(), 3)
    assert feed.bsread.pulse_id == 2
    assert list(feed.bsread.values)[:2] == ["SIM:ENERGY", "SIM:CHARGE"]
    assert feed.bsread.types["SIM:COUNTER"] == "int64"


def _wait_until(check, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"the feed did not {what}"
        time.sleep(0.02)


def test_with_pages_subscribed_an_image_is_decoded_only_when_one_wants_it() -> None:
    sender = mflow.connect(
        "tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUSH, send_timeout=5000, linger=0
    )
    receiver = mflow.connect(sender.endpoint, mode=mflow.PULL, receive_timeout=100)
    feed = Feed(receiver, max_fps=1000.0)
    calls: list[int] = []
    feed.subscribe(lambda: calls.append(1))
    _, source = _synthetic.make_source("dectris", _synthetic.Spec(shape=(32, 40), images=100))
    feed.start()
    try:
        for _ in range(6):  # the series header and five images nobody wants
            sender.send_multipart(next(source))
        _wait_until(lambda: feed.health is not None and feed.health.images == 5, "count 5")
        assert feed.frame is None and calls == []
        feed.want(since=0.0)
        for _ in range(3):
            sender.send_multipart(next(source))
        _wait_until(lambda: feed.health is not None and feed.health.images == 8, "count 8")
        assert feed.frame is not None and feed.frame.index == 6 and calls == [1]
        assert feed.health.images_decoded == 1 and feed.health.images_not_decoded == 7
    finally:
        feed.stop()
        receiver.disconnect()
        sender.disconnect()
