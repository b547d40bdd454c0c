"""Statistics: 1.0 counters, per-htype counts, skips and sequence gaps."""

from __future__ import annotations

import json

import pytest

from mflow.statistics import SequenceGaps, Statistics

pytestmark = pytest.mark.usefixtures("receive_path")


@pytest.mark.parametrize(
    "numbers, missed, duplicated, reverted",
    [
        ([0, 1, 2, 3], 0, 0, 0),
        ([0, 1, 5, 6], 3, 0, 0),
        ([0, 1, 1, 2], 0, 1, 0),
        ([0, 3, 2, 3], 2, 0, 1),
        ([10], 0, 0, 0),
    ],
)
def test_sequence_gaps(numbers, missed, duplicated, reverted):
    gaps = SequenceGaps()
    for number in numbers:
        gaps.observe(number)
    assert (gaps.missed, gaps.duplicated, gaps.reverted) == (missed, duplicated, reverted)


def test_sources_are_tracked_separately():
    stats = Statistics()
    for header in (
        {"frame": 0, "series": 1},
        {"frame": 0, "series": 2},
        {"frame": 1, "series": 1},
        {"frame": 3, "series": 2},
    ):
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
        stats.message_succeeded(
            "dectris-stream2", {"type": "image", "image_id": number, "series_id": 7}
        )
    for number in (0, 0):
        stats.message_succeeded("sls-receiver", {"jsonversion": 5, "frameIndex": number})
    assert stats.missed == 1 and stats.duplicated == 1


def array_message(**fields) -> list[bytes]:
    header = {"htype": "array-1.0", "type": "uint8", "shape": [2], **fields}
    return [json.dumps(header).encode(), b"\x00\x01"]


def test_a_new_series_header_starts_a_new_sequence():
    stats = Statistics()
    for _ in range(2):  # a simulator that always uses series 34
        stats.message_succeeded("dheader-1.0", {"htype": "dheader-1.0", "series": 34})
        for frame in (0, 1, 2):
            stats.message_succeeded(
                "dimage-1.0", {"htype": "dimage-1.0", "series": 34, "frame": frame}
            )
    assert (stats.reverted, stats.duplicated, stats.missed) == (0, 0, 0)
    assert stats.series_started == 2 and stats.as_dict()["series_started"] == 2


def test_a_stream_v2_start_starts_a_new_sequence_and_images_do_not():
    stats = Statistics()
    for kind, image_id in (
        ("start", None),
        ("image", 0),
        ("image", 1),
        ("start", None),
        ("image", 0),
        ("image", 0),
    ):
        header = {"type": kind, "series_id": 7}
        if image_id is not None:
            header["image_id"] = image_id
        stats.message_succeeded("dectris-stream2", header)
    assert stats.series_started == 2
    assert (stats.reverted, stats.duplicated) == (0, 1)


def test_sources_that_cannot_be_keys_are_counted_and_ignored():
    cbor2 = pytest.importorskip("cbor2")
    deep: object = "x"
    for _ in range(1000):
        deep = [deep]
    stats = Statistics()
    for source in ([1, 2], cbor2.CBORTag(4242, [1, 2]), deep, "s" * 10_000, {"a": 1}, 1.5):
        stats.message_succeeded("dectris-stream2", {"type": "start", "series_id": source})
        stats.message_succeeded(
            "dectris-stream2", {"type": "image", "image_id": 3, "series_id": source}
        )
    assert stats.unusable_source == 6 and stats.sequences == {}
    assert stats.series_started == 6


def test_the_number_of_sources_tracked_is_capped():
    stats = Statistics(max_sources=3)
    for source in range(10):
        for frame in (0, 1):
            stats.message_succeeded("x", {"frame": frame, "source": source})
    assert list(stats.sequences) == [0, 1, 2]
    assert stats.sources_over_cap == 14
    assert Statistics().max_sources == 1024


def test_series_sources_and_the_cap_on_both_paths(pull_stream):
    socket, stream = pull_stream
    stream.statistics = Statistics(max_sources=2)
    messages = [
        array_message(frame=0, series=34),
        array_message(frame=1, series=34),
        [json.dumps({"htype": "dheader-1.0", "header_detail": "none", "series": 34}).encode()],
        array_message(frame=0, series=34),
        array_message(frame=1, series=34),
        array_message(frame=5, source="b"),
        array_message(frame=6, source="c"),
        array_message(frame=7, source=["l"]),
        array_message(frame=8, source="y" * 300),
    ]
    for parts in messages:
        socket.send_multipart(parts)
        assert stream.receive() is not None
    stats = stream.statistics
    assert stats.messages_received == len(messages)
    assert (stats.series_started, stats.reverted, stats.duplicated) == (1, 0, 0)
    assert sorted(map(str, stats.sequences)) == ["34", "b"]
    assert (stats.sources_over_cap, stats.unusable_source) == (1, 2)
