"""``mflow info``: a recording described without replaying it."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import Result

from mflow.recording import FolderWriter, RecordingWriter

from .conftest import invoke

GOLDEN_V1 = Path(__file__).parent / "fixtures" / "recording_v1.mflow"


def info(*args: str) -> Result:
    return invoke("info", *args)


def test_info_json_describes_messages_types_sizes_and_time_span(tmp_path):
    path = tmp_path / "r.mflow"
    with RecordingWriter(path) as writer:
        writer.write([b'{"htype":"dheader-1.0"}'], 10.0)
        writer.write([b'{"htype":"dimage-1.0"}', b"x" * 100], 10.5)
        writer.write([b'{"htype":"dimage-1.0"}', b"y" * 50], 12.0)
    result = info(str(path), "--json")
    assert result.exit_code == 0, result.stderr
    described = json.loads(result.stdout)
    assert described["messages"] == 3 and described["parts"] == 5
    assert described["types"] == {"dheader-1.0": 1, "dimage-1.0": 2}
    assert described["version"] == 2 and described["format"] == "file"
    assert described["span"] == 2.0 and described["largest"] == 122
    assert described["damage"] is None


def test_info_names_damage_and_exits_1(tmp_path):
    path = tmp_path / "r.mflow"
    with RecordingWriter(path) as writer:
        writer.write([b"a", b"first"], 1.0)
        writer.write([b"b", b"second"], 2.0)
    data = bytearray(path.read_bytes())
    data[data.index(b"second")] ^= 0x01
    path.write_bytes(bytes(data))
    result = info(str(path), "--json")
    assert result.exit_code == 1
    described = json.loads(result.stdout)
    assert described["messages"] == 1 and "record 1" in described["damage"]


def test_info_reads_version_1_files_and_folders(tmp_path):
    result = info(str(GOLDEN_V1))
    assert result.exit_code == 0 and "file format version 1" in result.stdout
    assert "messages: 3 (6 parts, 77 bytes)" in result.stdout
    with FolderWriter(tmp_path / "f") as writer:
        writer.write([b"h", b"d"])
    result = info(str(tmp_path / "f"), "--json")
    assert json.loads(result.stdout)["format"] == "folder"


def test_info_of_a_missing_path_is_one_line(tmp_path):
    result = info(str(tmp_path / "missing"))
    assert result.exit_code == 1 and result.stderr.startswith("Error: ")
    assert result.stderr.count("\n") == 1
