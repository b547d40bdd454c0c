"""psi-mflow 2: no code, only a dependency on the mflow of the same version.

The version is mflow's, read from ``src/mflow/__init__.py`` two folders up, or from this
distribution's own metadata when it is built from its sdist.
"""

import re
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent


def mflow_version() -> str:
    source = HERE.parent.parent / "src" / "mflow" / "__init__.py"
    if source.exists():
        text, pattern = source.read_text(), r'^__version__ = "([^"]+)"'
    else:
        text, pattern = (HERE / "PKG-INFO").read_text(), r"^Version: (\S+)"
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        raise SystemExit(f"psi-mflow: no mflow version found in {source}")
    return match[1]


version = mflow_version()
setup(version=version, install_requires=[f"mflow=={version}"],
      long_description=(HERE / "README.md").read_text(),
      long_description_content_type="text/markdown")
