"""Statistics: 1.0 counters, per-htype counts, skips and sequence gaps."""

from __future__ import annotations

import json

import pytest

from mflow.statistics import SequenceGaps, Statistics

pytestmark = pytest.mark.usefixtures("receive_path")


@pytest.mark.parametrize("numbers, missed, duplicated, reverted", [
    ([0, 1, 2, 3], 0, 0, 0),
    ([0, 1, 5, 6], 3, 0, 0),
    ([0, 1, 1, 2], 0, 1, 0),
    ([0, 3, 2, 3], 2, 0, 1),
    ([10], 0, 0, 0),
])
def test_sequence_gaps(numbers, missed, duplicated, reverted):
    gaps = SequenceGaps()
    for number in numbers:
        gaps.observe(number)
    assert (gaps.missed, gaps.duplicated, gaps.reverted) == (missed, duplicated, reverted)


def test_sources_are_tracked_separately():
    stats = Statistics()
    for header in ({"frame": 0, "series": 1}, {"frame": 0, "series": 2},
                   {"frame": 1, "series": 1}, {"frame": 3, "series": 2}):
        stats.bytes_received = 10
        stats.message_succeeded("dimage-1.0", header)
    assert stats.missed == 2 and stats.duplicated == 0 and stats.reverted == 0
    assert stats.messages_by_htype == {"dimage-1.0": 4}
    assert stats.total_bytes_received == 40


def test_pulse_id_is_preferred_and_non_integers_ignored():
    stats = Statistics()
    stats.message_succeeded("bsr_m-1.1", {"pulse_id": 5, "frame": 100})
    stats.message_succeeded("bsr_m-1.1", {"pulse_id": 7, "frame": 101})
    stats.message_succeeded("x", {"frame": "not a number"})
    stats.message_succeeded("x", {"frame": True})
    assert stats.missed == 1


def test_failed_message_drops_its_bytes():
    stats = Statistics()
    stats.bytes_received = 100
    stats.message_failed("malformed")
    stats.bytes_received = 20
    stats.message_succeeded("raw-1.0")
    assert stats.total_bytes_received == 20 and stats.skipped == {"malformed": 1}


def test_snapshot_is_json_and_combined_sums():
    a, b = Statistics(), Statistics()
    a.bytes_received = 3
    a.message_succeeded("raw-1.0", {"frame": 0})
    b.message_failed("timeout")
    b.message_succeeded("array-1.0", {"frame": 2, "source": "b"})
    total = Statistics.combined([a, b])
    assert total.messages_received == 2 and total.total_bytes_received == 3
    assert total.skipped == {"timeout": 1}
    snapshot = json.loads(json.dumps(total.as_dict()))
    assert snapshot["messages_by_htype"] == {"raw-1.0": 1, "array-1.0": 1}


def test_seconds_since_last_message():
    stats = Statistics()
    assert stats.seconds_since_last_message is None
    stats.message_succeeded(None)
    assert 0 <= stats.seconds_since_last_message < 5


def test_stream_v2_and_sls_numbers_are_tracked():
    stats = Statistics()
    for number in (0, 1, 3):
        stats.message_succeeded("dectris-stream2", {"type": "image", "image_id": number,
                                                    "series_id": 7})
    for number in (0, 0):
        stats.message_succeeded("sls-receiver", {"jsonversion": 5, "frameIndex": number})
    assert stats.missed == 1 and stats.duplicated == 1
