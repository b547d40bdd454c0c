"""Tests of mflow.recording: the single-file format, the 1.0 folder layout and detection."""

from __future__ import annotations

import builtins
import errno
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import xxhash
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

import mflow.recording as recording
from mflow.errors import ConfigurationError, MflowError
from mflow.recording import (
    MAGIC,
    FolderReader,
    FolderWriter,
    RecordingError,
    RecordingReader,
    RecordingWriter,
    open_recording,
)

FILE_HEADER_SIZE = 12

MESSAGES = [
    ([b'{"htype":"array-1.0","shape":[2,2]}', b"\x00\x01\x02\x03\x04\x05\x06\x07"], 1.5),
    ([b""], 2.25),
    ([b"", b"", b""], 3.0),
    ([bytes([i % 256]) * i for i in range(300)], 1_700_000_000.123456),
    ([b"x" * 200_000, b"tail"], 4.0),
]


def record_size(parts: list[bytes]) -> int:
    """The size of a message's record in the single-file layout."""
    return 24 + 16 * len(parts) + sum(map(len, parts))


def write_recording(path: Path, messages=MESSAGES, **options) -> None:
    with RecordingWriter(path, **options) as writer:
        for parts, receive_time in messages:
            writer.write(parts, receive_time)


def read_all(reader) -> list[tuple[list[bytes], float | None]]:
    with reader:
        return [(message.parts, message.receive_time) for message in reader]


# ------------------------------------------------------------------------ single file


def test_round_trip_keeps_bytes_boundaries_and_receive_times(tmp_path):
    path = tmp_path / "run.mflow"
    with RecordingWriter(path) as writer:
        for parts, receive_time in MESSAGES:
            writer.write(parts, receive_time)
        assert writer.messages_written == len(MESSAGES)
        assert writer.bytes_written == sum(len(p) for parts, _ in MESSAGES for p in parts)
    assert path.stat().st_size == FILE_HEADER_SIZE + sum(record_size(p) for p, _ in MESSAGES)

    with RecordingReader(path) as reader:
        messages = list(reader)
        assert not reader.truncated and reader.corruption is None
    assert [(m.parts, m.receive_time) for m in messages] == MESSAGES
    assert [m.number for m in messages] == list(range(len(MESSAGES)))
    assert all(type(part) is bytes for m in messages for part in m.parts)


def test_layout_is_the_documented_one(tmp_path):
    path = tmp_path / "run.mflow"
    write_recording(path, [([b"ab", b""], 0.5)])
    data = path.read_bytes()
    assert data[:12] == MAGIC + (2).to_bytes(4, "little")
    record = data[12:]
    assert record[:4] == b"MREC"
    assert int.from_bytes(record[4:8], "little") == 2
    assert np.frombuffer(record[8:16], "<f8")[0] == 0.5
    table = record[24:56]
    assert int.from_bytes(record[16:20], "little") == zlib.crc32(table)
    assert int.from_bytes(record[20:24], "little") == zlib.crc32(record[:20])
    assert table == b"".join(
        len(part).to_bytes(8, "little") + xxhash.xxh3_64_intdigest(part).to_bytes(8, "little")
        for part in [b"ab", b""]
    )
    assert record[56:] == b"ab"


def test_accepts_every_kind_of_bytes_like_part(tmp_path):
    path = tmp_path / "run.mflow"
    image = np.arange(12, dtype="<u2").reshape(3, 4)
    parts = [bytearray(b"ba"), memoryview(b"xmemoryview")[1:], zmq.Frame(b"frame"), image]
    with RecordingWriter(path) as writer:
        writer.write(parts)
        assert writer.bytes_written == 2 + 10 + 5 + image.nbytes
    [message] = read_all(RecordingReader(path))
    assert message[0] == [b"ba", b"memoryview", b"frame", image.tobytes()]


def test_default_receive_time_is_now(tmp_path):
    path = tmp_path / "run.mflow"
    before = time.time()
    write_recording(path, [([b"x"], None)])
    after = time.time()
    [(_, receive_time)] = read_all(RecordingReader(path))
    assert before <= receive_time <= after


def test_bad_messages_are_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "run.mflow"
    with RecordingWriter(path) as writer:
        writer.write([b"good"], 1.0)
        with pytest.raises(ConfigurationError, match="at least one part"):
            writer.write([])
        with pytest.raises(ConfigurationError, match="part 1 is not a C-contiguous"):
            writer.write([b"ok", np.arange(10)[::2]])
        with pytest.raises(TypeError, match="single buffer"):
            writer.write(b"not a list")
        with pytest.raises(TypeError):
            writer.write(["text"])
        writer.write([b"still good"], 2.0)
        assert writer.messages_written == 2
    reader = RecordingReader(path)
    assert read_all(reader) == [([b"good"], 1.0), ([b"still good"], 2.0)]
    assert not reader.truncated


def test_existing_file_is_kept_unless_overwrite(tmp_path):
    path = tmp_path / "run.mflow"
    write_recording(path)
    with pytest.raises(RecordingError, match="already exists; pass overwrite=True"):
        RecordingWriter(path)
    assert read_all(RecordingReader(path)) == MESSAGES
    write_recording(path, [([b"new"], 1.0)], overwrite=True)
    assert read_all(RecordingReader(path)) == [([b"new"], 1.0)]


def test_closed_writer_refuses_writes_and_close_is_idempotent(tmp_path):
    writer = RecordingWriter(tmp_path / "run.mflow")
    writer.close()
    writer.close()
    assert writer.closed
    with pytest.raises(RecordingError, match="closed"):
        writer.write([b"x"])
    with pytest.raises(RecordingError, match="closed"):
        writer.flush()


def test_file_object_target_is_flushed_not_closed(tmp_path):
    target = io.BytesIO()
    write_recording(target, MESSAGES[:2])
    assert not target.closed
    path = tmp_path / "copy.mflow"
    path.write_bytes(target.getvalue())
    assert read_all(RecordingReader(path)) == MESSAGES[:2]


def test_flush_makes_messages_readable_while_the_writer_is_open(tmp_path):
    path = tmp_path / "run.mflow"
    with RecordingWriter(path) as writer:
        writer.write([b"small"], 1.0)
        writer.flush()
        reader = RecordingReader(path)
        assert read_all(reader) == [([b"small"], 1.0)]
        assert not reader.truncated


def test_sync_fsyncs_every_message(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(os, "fsync", synced.append)
    path = tmp_path / "run.mflow"
    write_recording(path, MESSAGES[:3], sync=True)
    assert len(synced) >= 3
    assert read_all(RecordingReader(path)) == MESSAGES[:3]


def test_empty_recording_has_no_messages(tmp_path):
    path = tmp_path / "run.mflow"
    RecordingWriter(path).close()
    reader = RecordingReader(path)
    assert read_all(reader) == []
    assert not reader.truncated


def test_iterations_are_independent(tmp_path):
    path = tmp_path / "run.mflow"
    write_recording(path)
    with RecordingReader(path) as reader:
        first, second = iter(reader), iter(reader)
        interleaved = [(a.number, b.number) for a, b in zip(first, second, strict=True)]
        assert interleaved == [(i, i) for i in range(len(MESSAGES))]
        assert [m.parts for m in reader] == [parts for parts, _ in MESSAGES]


def test_truncation_anywhere_in_the_last_record_stops_cleanly_before_it(tmp_path):
    path = tmp_path / "run.mflow"
    last = [b"", b"12345", b"", b"last part"]
    write_recording(path, MESSAGES[:2] + [(last, 9.0)])
    data = path.read_bytes()
    last_start = len(data) - record_size(last)
    cut_path = tmp_path / "cut.mflow"
    for cut in range(last_start, len(data)):
        cut_path.write_bytes(data[:cut])
        reader = RecordingReader(cut_path)
        assert read_all(reader) == MESSAGES[:2], cut
        assert reader.truncated == (cut != last_start), cut
        assert reader.corruption is None


def test_truncated_file_header_is_not_a_recording(tmp_path):
    path = tmp_path / "run.mflow"
    write_recording(path, [])
    data = path.read_bytes()
    for cut in range(FILE_HEADER_SIZE):
        path.write_bytes(data[:cut])
        with pytest.raises(RecordingError, match="not an mflow recording"):
            RecordingReader(path)


def test_unknown_version_is_refused(tmp_path):
    path = tmp_path / "run.mflow"
    path.write_bytes(MAGIC + (3).to_bytes(4, "little"))
    with pytest.raises(RecordingError, match="version 3; this mflow reads versions 1 and 2"):
        RecordingReader(path)


@pytest.mark.parametrize("on_corruption", ["raise", "stop"])
def test_damage_anywhere_in_a_middle_record_header_is_corruption(tmp_path, on_corruption):
    path = tmp_path / "run.mflow"
    messages = MESSAGES[:3]
    write_recording(path, messages)
    data = path.read_bytes()
    start = FILE_HEADER_SIZE + record_size(messages[0][0])
    damaged_path = tmp_path / "damaged.mflow"
    for offset in range(start, start + 24 + 8 * len(messages[1][0])):
        damaged = bytearray(data)
        damaged[offset] ^= 0xFF
        damaged_path.write_bytes(damaged)
        reader = RecordingReader(damaged_path, on_corruption=on_corruption)
        if on_corruption == "raise":
            with pytest.raises(RecordingError, match=f"corrupt: record 1 at byte {start} "):
                read_all(reader)
        else:
            assert read_all(reader) == messages[:1]
            assert "corrupt: record 1" in str(reader.corruption)
            assert not reader.truncated


def test_damaged_header_of_a_complete_last_record_is_corruption_not_truncation(tmp_path):
    path = tmp_path / "run.mflow"
    write_recording(path, MESSAGES[:2])
    data = bytearray(path.read_bytes())
    data[-record_size(MESSAGES[1][0]) + 5] ^= 0x01  # n_parts of the last record
    path.write_bytes(data)
    with pytest.raises(RecordingError, match="record 1 .* has a damaged header"):
        read_all(RecordingReader(path))


def test_trailing_bytes_that_cannot_start_a_record_are_corruption(tmp_path):
    path = tmp_path / "run.mflow"
    write_recording(path, MESSAGES[:1])
    with path.open("ab") as file:
        file.write(b"\x00" * 5)
    reader = RecordingReader(path, on_corruption="stop")
    assert read_all(reader) == MESSAGES[:1]
    assert "does not start with b'MREC'" in str(reader.corruption)


class _DiskFull(io.RawIOBase):
    """A file on a disk with room for only ``room`` more bytes: then writes fail ENOSPC."""

    def __init__(self, path, room: int) -> None:
        super().__init__()
        self._file = builtins.open(path, "wb", buffering=0)
        self._room = room

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if self._room == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = self._file.write(memoryview(data)[: self._room])
        self._room -= written
        return written

    def close(self) -> None:
        self._file.close()
        super().close()


def test_full_disk_leaves_every_message_that_reached_the_file_readable(tmp_path, monkeypatch):
    messages = [([b"h%d" % i, b"", bytes([i]) * (i * 997 % 3000)], float(i)) for i in range(12)]
    ends = [FILE_HEADER_SIZE]
    for parts, _ in messages:
        ends.append(ends[-1] + record_size(parts))

    room = 0

    def open_on_small_disk(file, mode="r", buffering=-1):
        if "w" in mode or "x" in mode:
            return io.BufferedWriter(_DiskFull(file, room), buffering)
        return builtins.open(file, mode, buffering)

    monkeypatch.setattr(recording, "open", open_on_small_disk, raising=False)
    path = tmp_path / "run.mflow"
    for room in range(FILE_HEADER_SIZE, ends[-1], 61):
        writer = RecordingWriter(path, overwrite=True, buffer_size=512)
        with pytest.raises(OSError) as failure:
            for parts, receive_time in messages:
                writer.write(parts, receive_time)
            writer.flush()
        assert failure.value.errno == errno.ENOSPC
        with pytest.raises(RecordingError, match="failed earlier"):
            writer.write([b"more"])
        writer.close()

        complete = sum(end <= room for end in ends[1:])
        reader = RecordingReader(path)
        assert read_all(reader) == messages[:complete], room
        assert reader.truncated == (room not in ends), room


def test_full_disk_while_writing_the_file_header(tmp_path, monkeypatch):
    monkeypatch.setattr(
        recording,
        "open",
        lambda file, mode, buffering: io.BufferedWriter(_DiskFull(file, 5), buffering),
        raising=False,
    )
    path = tmp_path / "run.mflow"
    with pytest.raises(OSError, match="No space left"):
        RecordingWriter(path)
    monkeypatch.undo()
    with pytest.raises(RecordingError, match="not an mflow recording"):
        RecordingReader(path)


# Writes self-checking messages until killed: part 0 holds the index and the payload's hash.
_WRITE_FOREVER = """
import hashlib, json, os, sys
from mflow import recording

with getattr(recording, sys.argv[2])(sys.argv[1]) as writer:
    index = 0
    while True:
        payload = os.urandom(index * 7919 % 150_000)
        digest = hashlib.sha256(payload).hexdigest()
        writer.write([json.dumps({"index": index, "sha256": digest}).encode(), b"", payload])
        index += 1
"""


def _count_messages(path: Path) -> int:
    try:
        with open_recording(path) as reader:
            return sum(1 for _ in reader)
    except RecordingError:  # not created yet, or caught mid-write
        return 0


@pytest.mark.parametrize("writer", ["RecordingWriter", "FolderWriter"])
def test_kill_9_while_writing_keeps_every_complete_message(tmp_path, writer):
    path = tmp_path / "killed"
    package_root = str(Path(recording.__file__).parents[1])
    search_path = os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=search_path)
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITE_FOREVER, str(path), writer],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while _count_messages(path) < 30:
            assert child.poll() is None, child.stderr.read().decode()
            assert time.monotonic() < deadline, "the writer wrote too few messages in time"
            time.sleep(0.01)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL

    with open_recording(path) as reader:
        messages = list(reader)
    assert len(messages) >= 30
    for number, message in enumerate(messages):
        header, empty, payload = message.parts
        assert json.loads(header) == {
            "index": number,
            "sha256": hashlib.sha256(payload).hexdigest(),
        }
        assert empty == b"" and message.number == number


# ------------------------------------------------------------------------ folder format


def test_folder_round_trip_uses_the_1_0_names(tmp_path):
    folder = tmp_path / "b"
    with FolderWriter(folder) as writer:
        writer.write([b"header", b"", b"data"], receive_time=123.0)
        writer.write([b"second"])
        assert (writer.messages_written, writer.bytes_written) == (2, 16)
    assert sorted(os.listdir(folder)) == [
        "000000_000.raw",
        "000000_001.raw",
        "000000_002.raw",
        "000001_000.raw",
    ]
    assert (folder / "000000_001.raw").read_bytes() == b""
    reader = FolderReader(folder)
    assert read_all(reader) == [([b"header", b"", b"data"], None), ([b"second"], None)]
    assert not reader.truncated


def test_folder_names_grow_beyond_6_and_3_digits(tmp_path):
    assert recording._part_file_name(999_999, 999) == "999999_999.raw"
    assert recording._part_file_name(1_000_000, 1000) == "1000000_1000.raw"
    parts = [b"%d" % i for i in range(1001)]
    with FolderWriter(tmp_path / "many") as writer:
        writer.write(parts)
    assert (tmp_path / "many" / "000000_1000.raw").read_bytes() == b"1000"
    assert read_all(FolderReader(tmp_path / "many")) == [(parts, None)]


def test_folder_reader_orders_numerically_not_by_name(tmp_path):
    for name, content in [
        ("1000000_000.raw", b"m1000000"),
        ("999999_000.raw", b"m999999"),
        ("999999_1000.raw", b"p1000"),
        ("999999_001.raw", b"p1"),
        ("999999_999.raw", b"p999"),
        ("000002_000.raw", b"m2"),
    ]:
        (tmp_path / name).write_bytes(content)
    for part in range(2, 999):
        (tmp_path / f"999999_{part:03d}.raw").write_bytes(b"")
    messages = list(FolderReader(tmp_path))
    assert [m.number for m in messages] == [2, 999_999, 1_000_000]  # 1.0 numbers may skip
    assert messages[1].parts[:2] == [b"m999999", b"p1"]
    assert messages[1].parts[999:] == [b"p999", b"p1000"]
    assert messages[2].parts == [b"m1000000"]


def test_folder_reader_ignores_everything_but_part_files(tmp_path):
    (tmp_path / "000000_000.raw").write_bytes(b"a0")
    (tmp_path / "000000_001.raw").write_bytes(b"a1")
    (tmp_path / "000001_000.raw").write_bytes(b"b0")
    # 1.0's m_replay glued messages 0 and 1 together because of this file (B7).
    (tmp_path / "000000_zz_notes.txt").write_bytes(b"notes")
    for name in [
        "000000_002.raw.bak",
        "x000000_002.raw",
        "000000_002.RAW",
        "000000-002.raw",
        "abc_000.raw",
        "000000_002.raw.partial",
        "README",
    ]:
        (tmp_path / name).write_bytes(b"ignored")
    (tmp_path / "000000_003.raw").mkdir()
    assert read_all(FolderReader(tmp_path)) == [([b"a0", b"a1"], None), ([b"b0"], None)]


def test_folder_reader_errors_name_the_problem(tmp_path):
    with pytest.raises(RecordingError, match="folder '.*missing' does not exist"):
        FolderReader(tmp_path / "missing")
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(RecordingError, match="is not a folder"):
        FolderReader(tmp_path / "file")


def test_folder_message_without_part_0_at_the_end_is_a_truncated_tail(tmp_path):
    for name in ["000000_000.raw", "000001_001.raw", "000001_002.raw"]:
        (tmp_path / name).write_bytes(name.encode())
    reader = FolderReader(tmp_path)
    assert read_all(reader) == [([b"000000_000.raw"], None)]
    assert reader.truncated and reader.corruption is None


@pytest.mark.parametrize(
    ("names", "problem"),
    [
        (["000001_001.raw", "000002_000.raw"], "message 1 lacks part.s. 0"),
        (["000001_000.raw", "000001_002.raw"], "message 1 lacks part.s. 1"),
        (
            ["000001_000.raw", "1_0.raw"],
            "message 1 has several files for part 0: 000001_000.raw, 1_0.raw",
        ),
    ],
)
def test_folder_damage_in_the_middle_is_corruption(tmp_path, names, problem):
    for name in ["000000_000.raw", *names]:
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(RecordingError, match=problem):
        read_all(FolderReader(tmp_path))
    reader = FolderReader(tmp_path, on_corruption="stop")
    assert read_all(reader) == [([b"x"], None)]
    assert "is corrupt: message 1" in str(reader.corruption)


def test_folder_writer_refuses_to_mix_with_an_existing_recording(tmp_path):
    with FolderWriter(tmp_path) as writer:
        writer.write([b"old", b"old", b"old"])
    (tmp_path / "notes.txt").write_bytes(b"keep me")
    with pytest.raises(RecordingError, match="already holds a recording .3 part files."):
        FolderWriter(tmp_path)
    with FolderWriter(tmp_path, overwrite=True) as writer:
        writer.write([b"new"])
    assert read_all(FolderReader(tmp_path)) == [([b"new"], None)]
    assert (tmp_path / "notes.txt").read_bytes() == b"keep me"


def test_folder_writer_stops_after_a_failure(tmp_path, monkeypatch):
    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with FolderWriter(tmp_path) as writer:
        writer.write([b"a", b"b"])
        monkeypatch.setattr(os, "replace", no_room)
        with pytest.raises(OSError):
            writer.write([b"c", b"d"])
        monkeypatch.undo()
        with pytest.raises(RecordingError, match="failed earlier"):
            writer.write([b"e"])
    reader = FolderReader(tmp_path)
    assert read_all(reader) == [([b"a", b"b"], None)]
    assert reader.truncated


# ------------------------------------------------------------------------ detection


def test_open_recording_detects_the_format(tmp_path):
    write_recording(tmp_path / "run.mflow", MESSAGES[:1])
    with FolderWriter(tmp_path / "folder") as writer:
        writer.write([b"x"])
    with open_recording(tmp_path / "run.mflow") as reader:
        assert isinstance(reader, RecordingReader)
        assert [m.parts for m in reader] == [MESSAGES[0][0]]
    with open_recording(str(tmp_path / "folder")) as reader:
        assert isinstance(reader, FolderReader)
        assert [m.parts for m in reader] == [[b"x"]]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "recording '.*nothing' does not exist"),
        (b"", "is not an mflow recording: it is empty"),
        (b'{"htype": "array-1.0"}', "does not start with the mflow recording magic"),
    ],
)
def test_open_recording_names_what_is_wrong(tmp_path, content, problem):
    path = tmp_path / "nothing"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(RecordingError, match=problem) as error:
        open_recording(path)
    assert isinstance(error.value, MflowError)


def test_option_values_are_checked(tmp_path):
    with pytest.raises(ConfigurationError, match="on_corruption must be 'raise' or 'stop'"):
        FolderReader(tmp_path, on_corruption="ignore")
    with pytest.raises(ConfigurationError, match="buffer_size must be positive"):
        RecordingWriter(tmp_path / "run.mflow", buffer_size=0)


# ------------------------------------------------------------------------ properties

messages_strategy = st.lists(
    st.tuples(
        st.lists(st.binary(max_size=300), min_size=1, max_size=12),
        st.floats(min_value=0, max_value=1e11, exclude_max=True),
    ),
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(messages=messages_strategy)
def test_property_single_file_round_trip(messages):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run.mflow"
        write_recording(path, messages)
        reader = RecordingReader(path)
        assert read_all(reader) == messages
        assert not reader.truncated


@settings(max_examples=30, deadline=None)
@given(messages=messages_strategy)
def test_property_folder_round_trip(messages):
    with tempfile.TemporaryDirectory() as folder:
        with FolderWriter(folder) as writer:
            for parts, receive_time in messages:
                writer.write(parts, receive_time)
        assert read_all(FolderReader(folder)) == [(parts, None) for parts, _ in messages]


# ------------------------------------------------------------------------ part checksums

GOLDEN_V1 = Path(__file__).parent / "fixtures" / "recording_v1.mflow"


def test_a_flipped_byte_inside_a_part_is_corruption_naming_the_record(tmp_path):
    path = tmp_path / "run.mflow"
    messages = [
        ([b"h0", b"payload-0"], 1.0),
        ([b"h1", b"payload-1"], 2.0),
        ([b"h2", b"payload-2"], 3.0),
    ]
    write_recording(path, messages)
    data = bytearray(path.read_bytes())
    second = FILE_HEADER_SIZE + record_size(messages[0][0])
    data[data.index(b"payload-1") + 3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match=f"record 1 at byte {second} has a damaged part 1"):
        read_all(RecordingReader(path))
    reader = RecordingReader(path, on_corruption="stop")
    assert read_all(reader) == messages[:1]
    assert "has a damaged part 1 (its checksum does not match)" in str(reader.corruption)


def test_golden_version_1_file_is_still_read():
    # Written by the version 1 writer (before part checksums); never rewrite it.
    reader = RecordingReader(GOLDEN_V1)
    assert reader.version == 1
    assert read_all(reader) == [
        (
            [b'{"htype":"array-1.0","type":"uint8","shape":[2,2]}', b"\x00\x01\x02\x03"],
            1700000000.25,
        ),
        ([b""], 1700000000.5),
        ([b'{"htype":"raw-1.0"}', b"", b"tail"], 1700000001.0),
    ]


def test_new_recordings_are_version_2(tmp_path):
    write_recording(tmp_path / "run.mflow", MESSAGES[:1])
    with RecordingReader(tmp_path / "run.mflow") as reader:
        assert reader.version == recording.VERSION == 2


# ------------------------------------------------------------------------ crafted records


def craft_record(parts: list[bytes], receive_time: float) -> bytes:
    """A version 2 record with valid CRCs and checksums, whatever its fields hold."""
    table = b"".join(
        len(p).to_bytes(8, "little") + xxhash.xxh3_64_intdigest(p).to_bytes(8, "little")
        for p in parts
    )
    start = (
        b"MREC"
        + len(parts).to_bytes(4, "little")
        + np.float64(receive_time).tobytes()
        + zlib.crc32(table).to_bytes(4, "little")
    )
    return start + zlib.crc32(start).to_bytes(4, "little") + table + b"".join(parts)


@pytest.mark.parametrize(
    ("parts", "receive_time", "problem"),
    [
        ([], 1.0, "has no parts"),
        ([b"x"], 1e300, r"has an impossible receive time \(1e\+300\)"),
        ([b"x"], float("nan"), r"has an impossible receive time \(nan\)"),
        ([b"x"], -5.0, "has an impossible receive time"),
    ],
)
def test_crafted_records_with_valid_crcs_are_corruption(tmp_path, parts, receive_time, problem):
    path = tmp_path / "run.mflow"
    write_recording(path, [([b"ok"], 1.0)])
    path.write_bytes(
        path.read_bytes() + craft_record(parts, receive_time) + craft_record([b"after"], 2.0)
    )
    with pytest.raises(RecordingError, match=f"record 1 at byte [0-9]+ {problem}"):
        read_all(RecordingReader(path))
    reader = RecordingReader(path, on_corruption="stop")
    assert read_all(reader) == [([b"ok"], 1.0)]


@pytest.mark.parametrize("receive_time", [float("nan"), float("inf"), -1.0, 1e300])
def test_writer_refuses_impossible_receive_times(tmp_path, receive_time):
    with (
        RecordingWriter(tmp_path / "run.mflow") as writer,
        pytest.raises(ConfigurationError, match="receive_time must be"),
    ):
        writer.write([b"x"], receive_time)
    assert read_all(RecordingReader(tmp_path / "run.mflow")) == []


def test_recorded_message_number_does_not_shadow_tuple_index():
    message = recording.RecordedMessage([b"a"], None, 7)
    assert message.number == 7 and message.index(None) == 1


# ------------------------------------------------------------------------ links


def test_folder_writer_never_writes_through_a_planted_link(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    folder = tmp_path / "dump"
    folder.mkdir()
    (folder / "000000_000.raw.partial").symlink_to(victim)
    (folder / "000000_001.raw").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(RecordingError, match="already holds a recording"):
        FolderWriter(folder)
    with FolderWriter(folder, overwrite=True) as writer:
        writer.write([b"h", b"d"])
    assert victim.read_bytes() == b"precious" and not (tmp_path / "elsewhere").exists()
    assert not (folder / "000000_000.raw").is_symlink()
    assert read_all(FolderReader(folder)) == [([b"h", b"d"], None)]


def test_folder_writer_never_follows_a_link_planted_while_it_writes(tmp_path):
    folder = tmp_path / "dump"
    with FolderWriter(folder) as writer:
        (folder / "000000_001.raw").symlink_to(tmp_path / "elsewhere")
        with pytest.raises(FileExistsError):
            writer.write([b"h", b"d"])
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("name", ["000000_000.raw", "000000_001.raw"])
def test_folder_reader_refuses_linked_part_files(tmp_path, name):
    secret = tmp_path / "secret"
    secret.write_bytes(b"not yours")
    folder = tmp_path / "dump"
    folder.mkdir()
    for part in ("000000_000.raw", "000000_001.raw"):
        if part != name:
            (folder / part).write_bytes(b"x")
    (folder / name).symlink_to(secret)
    with pytest.raises(
        RecordingError, match=f"'{folder / name}' is a symbolic link, not a regular file"
    ):
        FolderReader(folder)


def test_folder_reader_refuses_a_fifo_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "000000_000.raw")
    with pytest.raises(RecordingError, match="is a FIFO, not a regular file"):
        FolderReader(tmp_path)


def test_single_file_writer_and_reader_refuse_links(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    link = tmp_path / "run.mflow"
    link.symlink_to(victim)
    with pytest.raises(RecordingError, match="already exists"):
        RecordingWriter(link)
    with pytest.raises(RecordingError, match="is a symbolic link, not a regular file"):
        RecordingWriter(link, overwrite=True)
    assert victim.read_bytes() == b"precious"
    write_recording(tmp_path / "real.mflow", MESSAGES[:1])
    link.unlink()
    link.symlink_to(tmp_path / "real.mflow")
    for opener in (RecordingReader, open_recording):
        with pytest.raises(RecordingError, match="is a symbolic link"):
            opener(link)


def test_single_file_writer_refuses_special_files(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(RecordingError, match="is a FIFO, not a regular file"):
        RecordingWriter(tmp_path / "fifo", overwrite=True)


@pytest.mark.parametrize("writer", [RecordingWriter, FolderWriter])
def test_a_missing_parent_folder_is_refused_by_both_writers(tmp_path, writer):
    with pytest.raises(RecordingError, match="folder '.*missing' does not exist"):
        writer(tmp_path / "missing" / "run")
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("writer", [RecordingWriter, FolderWriter])
def test_discard_deletes_what_the_writer_wrote(tmp_path, writer):
    (tmp_path / "keep").write_bytes(b"")
    target = tmp_path / "run"
    with writer(target) as recording_writer:
        recording_writer.write([b"a", b"b"])
        recording_writer.discard()
    assert sorted(os.listdir(tmp_path)) == ["keep"]
