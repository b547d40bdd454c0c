"""Installing mflow next to psi-bsread, in fresh virtual environments, from local wheels.

The wheels of mflow, of its psi-mflow 2 compatibility distribution (``compat/psi-mflow``)
and of everything they need are made once (from pip's cache and index); every installation
then runs offline (``--no-index --find-links``). Slow (some 30-60 s): ``-m "not slow"``
leaves it out.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPAT = ROOT / "compat" / "psi-mflow"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not (COMPAT / "setup.py").exists(), reason="needs mflow's source tree"),
]


def run(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    environment.pop("MFLOW_PURE_PYTHON", None)
    result = subprocess.run(
        [str(arg) for arg in args],
        capture_output=True,
        text=True,
        timeout=240,
        env=environment,
        cwd=ROOT,
    )
    if check:
        assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the wheels of mflow, psi-mflow 2, psi-bsread 2.0.1 and their needs."""
    folder = tmp_path_factory.mktemp("wheels")
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--wheel-dir",
        folder,
        ROOT,
        COMPAT,
        "psi-bsread==2.0.1",
    )
    return folder


class Environment:
    """A fresh virtual environment that installs from ``wheels`` only."""

    def __init__(self, path: Path, wheels: Path) -> None:
        venv.create(path, with_pip=True)
        self.bin = path / "bin"
        self.wheels = wheels

    def pip(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return run(
            self.bin / "python",
            "-m",
            "pip",
            *args[:1],
            "--no-index",
            "--find-links",
            self.wheels,
            *args[1:],
        )

    def python(self, code: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(self.bin / "python", "-W", "error", "-c", code, check=check)

    def mflow(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run(self.bin / "mflow", *args, check=False)


def test_psi_bsread_installs_the_ordinary_way_on_mflow(tmp_path, wheels):
    environment = Environment(tmp_path / "venv", wheels)
    environment.pip("install", "mflow")
    installed = environment.pip("install", "psi-bsread")  # pulls psi-mflow: ours, version 2
    assert "psi-mflow-2" in installed.stdout.replace("psi_mflow-", "psi-mflow-")
    run(environment.bin / "python", "-m", "pip", "check")
    result = environment.python(
        "import importlib.metadata as m, mflow, bsread, bsread.sender;"
        "print(mflow.__version__, m.version('psi-mflow'), m.files('psi-mflow') and "
        "[f for f in m.files('psi-mflow') if f.parts[0] == 'mflow'])"
    )
    version = run(sys.executable, "-c", "import mflow; print(mflow.__version__)").stdout.strip()
    assert result.stdout.split() == [version, version, "[]"]
    assert environment.mflow("--version").returncode == 0


@pytest.fixture(scope="module")
def original(wheels: Path) -> Path:
    """The wheel of psi-mflow 1.0.0 (the original), from pip's cache or index."""
    folder = wheels.parent / "original"
    result = run(
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--dest",
        folder,
        "psi-mflow==1.0.0",
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"psi-mflow 1.0.0 cannot be downloaded: {result.stderr.strip()[-200:]}")
    return next(folder.glob("psi_mflow-1.0.0-*.whl"))


def test_a_mixed_installation_says_how_to_repair_it(tmp_path, wheels, original):
    environment = Environment(tmp_path / "venv", wheels)
    environment.pip("install", "mflow")
    environment.pip("install", "--no-deps", original)  # what psi-bsread alone would pull in

    over = environment.mflow("--version")  # the old files over mflow's
    assert over.returncode == 1
    assert over.stderr.startswith("Error: psi-mflow 1.0.0 (the original mflow) is installed")
    assert (
        "Repair: pip uninstall -y psi-mflow mflow && pip install mflow 'psi-mflow>1'" in over.stderr
    )

    environment.pip("install", "--force-reinstall", "--no-deps", "mflow")  # mflow's over them
    imported = environment.python("import mflow", check=False)
    assert imported.returncode == 1
    assert "RuntimeWarning: psi-mflow 1.0.0 (the original mflow)" in imported.stderr
    assert "Repair:" in imported.stderr
    assert environment.mflow("--version").returncode == 0  # works, with the warning
    assert "RuntimeWarning" in environment.mflow("--version").stderr

    run(environment.bin / "python", "-m", "pip", "uninstall", "-y", "psi-mflow", "mflow")
    # The repair command; --pre as this version is a pre-release, and so is its psi-mflow.
    environment.pip("install", "--pre", "mflow", "psi-mflow>1")
    assert environment.python("import mflow").returncode == 0
    repaired = environment.mflow("--version")
    assert repaired.returncode == 0 and repaired.stderr == ""
