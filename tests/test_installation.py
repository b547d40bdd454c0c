"""mflow._installation: psi-mflow 1.0 sharing the mflow package is found and named."""

from __future__ import annotations

import pytest

from mflow import _installation


def site_with(tmp_path, name: str, *files: str):
    info = tmp_path / name
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: psi-mflow\n"
        f"Version: {name.split('-')[1].removesuffix('.dist')}\n"
    )
    (info / "RECORD").write_text("".join(f"{file},,\n" for file in files))
    return tmp_path


def test_the_original_owning_mflow_files_is_a_mixed_installation(tmp_path):
    site = site_with(tmp_path, "psi_mflow-1.0.0.dist-info", "mflow/__init__.py", "mflow/mflow.py")
    problem = _installation.mixed_installation(site)
    assert problem is not None
    assert problem.startswith(f"psi-mflow 1.0.0 (the original mflow) is installed in {site}")
    assert problem.endswith(f"Repair: {_installation.REPAIR}")
    assert "pip uninstall -y psi-mflow mflow && pip install mflow 'psi-mflow>1'" in problem


@pytest.mark.parametrize(
    ("name", "files"),
    [
        ("psi_mflow-2.0.0.dist-info", ()),  # the compatibility distribution
        ("psi_mflow-1.0.0.dist-info", ("elsewhere/x.py",)),
        ("other-1.0.0.dist-info", ("mflow/__init__.py",)),
    ],
)
def test_anything_else_is_not(tmp_path, name, files):
    assert _installation.mixed_installation(site_with(tmp_path, name, *files)) is None


def test_this_installation_is_not_mixed_and_the_package_is_intact():
    assert _installation.mixed_installation() is None
    assert _installation.package_is_intact()


def test_import_warns_with_the_repair(tmp_path, monkeypatch):
    monkeypatch.setattr(
        _installation,
        "_SITE",
        site_with(tmp_path, "psi_mflow-1.0.0.dist-info", "mflow/__init__.py"),
    )
    with pytest.warns(RuntimeWarning, match=r"psi-mflow 1.0.0 \(the original mflow\).*Repair"):
        _installation.warn_if_mixed()
