"""The golden fixtures are written when missing and rewritten only on purpose."""

from __future__ import annotations

from . import conformance
from .fixtures import rebuild
from .fixtures.cases import CASES


def test_a_fixture_is_written_when_missing_and_rewritten_only_when_forced(tmp_path, monkeypatch):
    monkeypatch.setattr(conformance, "FIXTURES", tmp_path)
    assert conformance.save_golden("case", [b"first"])
    assert not conformance.save_golden("case", [b"second"])
    assert conformance.load_golden("case") == [b"first"]
    assert conformance.save_golden("case", [b"second"], force=True)
    assert conformance.load_golden("case") == [b"second"]


def test_rebuild_writes_the_missing_and_keeps_the_others_unless_forced(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(conformance, "FIXTURES", tmp_path)
    monkeypatch.delenv("MFLOW_REGENERATE_FIXTURES", raising=False)
    kept = tmp_path / "array_int32.json"
    kept.write_text('{"parts": []}')
    rebuild.main()
    assert kept.read_text() == '{"parts": []}'
    assert sorted(path.stem for path in tmp_path.glob("*.json")) == sorted(CASES)
    assert "kept array_int32" in capsys.readouterr().out.splitlines()
    monkeypatch.setenv("MFLOW_REGENERATE_FIXTURES", "1")
    rebuild.main()
    assert conformance.load_golden("array_int32") != []
