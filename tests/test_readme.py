"""The README's Python examples run as written and print what their comments say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def expected_outputs(code: str) -> list[str]:
    """The text after ``# `` on each print line: what that line prints, '...' as wildcard."""
    return [match.group(1) for match in re.finditer(r"^\s*print\(.*\)\s+# (.*)$", code, re.M)]


@pytest.mark.parametrize("code", EXAMPLES, ids=[f"example{i}" for i in range(len(EXAMPLES))])
def test_example_runs_and_prints_what_it_says(code):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {})
    lines = out.getvalue().splitlines()
    for expected in expected_outputs(code):
        pattern = re.escape(expected).replace(r"\.\.\.", ".*")
        assert any(re.fullmatch(pattern, line) for line in lines), (expected, lines)


def test_readme_has_examples():
    assert len(EXAMPLES) >= 3
