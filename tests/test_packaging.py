"""The sdist: a whole source tree whose tests run, with the licence and one version number."""

from __future__ import annotations

import email.parser
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import mflow

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    not (ROOT / "MANIFEST.in").exists(), reason="needs mflow's source tree"
)


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist built from this tree, unpacked."""
    out = tmp_path_factory.mktemp("sdist")
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    (archive,) = out.glob("mflow-*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(out, filter="data")
    return out / archive.name.removesuffix(".tar.gz")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_sdist_has_everything_its_tests_need_and_they_run(sdist):
    for name in (
        "LICENSE",
        "tests/__init__.py",
        "tests/conftest.py",
        "tests/conformance.py",
        "tests/fixtures/__init__.py",
        "tests/fixtures/dheader_basic.json",
        "compat/psi-mflow/setup.py",
        "src/mflow/_speedups.c",
        "src/mflow/py.typed",
    ):
        assert (sdist / name).is_file(), name
    assert not list(sdist.glob("compat/**/*.egg-info"))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_synthetic.py"],
        cwd=sdist,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    assert " passed" in result.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_metadata_has_the_licence_and_the_one_version(sdist):
    metadata = email.parser.Parser().parsestr((sdist / "PKG-INFO").read_text())
    assert metadata["Version"] == mflow.__version__
    assert metadata["License-Expression"] == "BSD-3-Clause"
    assert "LICENSE" in metadata.get_all("License-File")
    assert "Typing :: Typed" in metadata.get_all("Classifier")
    urls = dict(url.split(", ", 1) for url in metadata.get_all("Project-URL"))
    assert urls["psi-mflow 1.0 (the API kept)"].startswith("https://")


def test_the_version_is_written_in_one_place_only():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert mflow.__version__ not in pyproject
    assert mflow.__version__ not in (ROOT / "compat" / "psi-mflow" / "pyproject.toml").read_text()
    assert "BSD 3-Clause License" in (ROOT / "LICENSE").read_text()
