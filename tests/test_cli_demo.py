"""``mflow demo``: a local EIGER-like stream with live statistics."""

from __future__ import annotations

import json

from .conftest import invoke


def test_demo_shows_a_decoded_eiger_series():
    result = invoke("demo", "-d", "1.5", "--rate", "200", "--images", "10", "--json", "-i", "0.5")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert '"event": "start"' in lines[0] and '"event": "progress"' in lines[1]
    summary = json.loads(lines[-1])
    assert summary["event"] == "summary"
    assert summary["messages"] > 20 and summary["decode_errors"] == {}
    assert set(summary["by_type"]) == {"dheader-1.0", "dimage-1.0", "dseries_end-1.0"}
    assert summary["missed"] == summary["duplicated"] == summary["reverted"] == 0


def test_demo_plain_output():
    result = invoke("demo", "-d", "0.5", "--shape", "64x64")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("Demo: a simulated EIGER sends 100-image series")
    assert "Summary:" in result.stdout and "dimage-1.0=" in result.stdout
