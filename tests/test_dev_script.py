"""``./dev`` and ``.ci/run``: what each command installs and runs, and the exit codes.

The scripts run for real against a stand-in virtual environment whose ``python``, ``mflow``,
``ruff`` and ``mypy`` only record how they were called, so no test installs anything.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT / "dev"
CI = ROOT / ".ci" / "run"

pytestmark = pytest.mark.skipif(not DEV.exists(), reason="./dev is not part of the sdist")

_STAND_IN = """#!/bin/sh
echo "$(basename "$0") $*" >> "$MFLOW_TEST_LOG"
case "$*" in *pytest*) exit "${PYTEST_STATUS:-0}";; esac
case "$(basename "$0")" in ruff|mypy) exit "${CHECK_STATUS:-0}";; esac
"""


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A directory that looks like a virtual environment to ./dev."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("python", "mflow", "ruff", "mypy"):
        (bin_dir / name).write_text(_STAND_IN)
        (bin_dir / name).chmod(0o755)
    return bin_dir.parent


def run(script: Path, venv: Path, *args: str, **env: str) -> tuple[int, list[str], str]:
    """Run ``script ARGS``; its exit status, the stand-ins' calls and its stderr."""
    log = venv / "calls.log"
    result = subprocess.run(
        [str(script), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "MFLOW_VENV": str(venv), "MFLOW_TEST_LOG": str(log), **env},
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return result.returncode, calls, result.stderr


def test_demo_installs_only_mflow_showing_progress(venv):
    status, calls, stderr = run(DEV, venv, "demo", "-d", "1")
    assert status == 0, stderr
    assert calls == ["python -m pip install --progress-bar on -e .", "mflow demo -d 1"]
    assert "Installing -e . into" in stderr


def test_demo_installs_once(venv):
    run(DEV, venv, "demo")
    _, calls, _ = run(DEV, venv, "demo")
    assert [call for call in calls if "pip" in call] == [
        "python -m pip install --progress-bar on -e ."
    ]


def test_test_installs_the_test_extras_and_psi_bsread_without_its_dependencies(venv):
    status, calls, stderr = run(DEV, venv, "test", "-x", "-q")
    assert status == 0, stderr
    assert calls == [
        "python -m pip install --progress-bar on -e .[test,hdf5,view,reference,check]",
        "python -m pip install --no-deps psi-bsread==2.0.1",
        "python -m pytest -x -q",
    ]


def test_demo_after_test_installs_nothing_more(venv):
    run(DEV, venv, "test")
    _, calls, _ = run(DEV, venv, "demo")
    assert sum("pip" in call for call in calls) == 2


@pytest.mark.parametrize(("pytest_status", "expected"), [(0, 0), (1, 1), (5, 1)])
def test_test_keeps_pytests_status_and_fails_when_nothing_was_collected(
    venv, pytest_status, expected
):
    status, _, stderr = run(DEV, venv, "test", PYTEST_STATUS=str(pytest_status))
    assert status == expected
    assert ("collected no tests" in stderr) == (pytest_status == 5)


@pytest.mark.parametrize("check_status", [0, 1])
def test_check_runs_ruff_lint_ruff_format_and_mypy(venv, check_status):
    status, calls, _ = run(DEV, venv, "check", CHECK_STATUS=str(check_status))
    assert status == check_status
    assert calls[-3:] == [
        "ruff check src tests bench",
        "ruff format --check src tests bench",
        "mypy src",
    ]


@pytest.mark.parametrize(
    ("check_status", "pytest_status", "expected"), [(0, 0, 0), (1, 0, 1), (0, 1, 1), (0, 5, 1)]
)
def test_ci_runs_check_then_test_and_fails_when_either_fails(
    venv, check_status, pytest_status, expected
):
    status, calls, _ = run(
        CI, venv, CHECK_STATUS=str(check_status), PYTEST_STATUS=str(pytest_status)
    )
    assert status == expected
    ran = [
        call.split()[0] if "pytest" not in call else "pytest" for call in calls if "pip" not in call
    ]
    assert ran == ["ruff", "ruff", "mypy", "pytest"]


def test_an_unknown_command_shows_the_usage(venv):
    status, calls, stderr = run(DEV, venv, "nonsense")
    assert status == 2 and calls == [] and "usage: ./dev demo|test|check|bench" in stderr
