"""Detects psi-mflow 1.0 installed over (or under) this mflow: one package, two owners.

psi-mflow 1.0 ships the same ``mflow`` package, so installing it after mflow (as
``pip install psi-bsread`` would, without mflow's psi-mflow 2 compatibility distribution)
overwrites mflow's files with the old ones, and installing mflow after it leaves a
psi-mflow whose uninstallation deletes mflow's files. Both are repaired the same way.

Only the folder this package was imported from is looked at (one directory listing), so
the check costs nothing measurable at import; `importlib.metadata` is read only when an
original psi-mflow is found there.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from os import PathLike

__all__ = ["REPAIR", "mixed_installation", "package_is_intact", "warn_if_mixed"]

#: The commands that turn a mixed installation into mflow plus its compatibility distribution.
REPAIR = (
    "pip uninstall -y psi-mflow mflow && pip install mflow 'psi-mflow>1' (psi-mflow 2 "
    "is mflow's compatibility distribution, built from compat/psi-mflow in mflow's "
    "sources)"
)

_ORIGINAL = re.compile(r"psi[-_.]mflow-(\d+)[^/]*\.(dist|egg)-info", re.IGNORECASE)
# os.path, not pathlib: pathlib's imports would double the time `import mflow` adds.
_SITE = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def mixed_installation(site: str | PathLike[str] | None = None) -> str | None:
    """What is wrong when a psi-mflow older than 2 owns files of ``mflow`` in ``site``, or None.

    ``site`` is by default the folder this package was imported from.
    """
    site = _SITE if site is None else site
    try:
        names = os.listdir(site)
    except OSError:
        return None
    originals = [
        name for name in names if (match := _ORIGINAL.fullmatch(name)) and int(match[1]) < 2
    ]
    if not originals:
        return None
    from importlib.metadata import PathDistribution
    from pathlib import Path

    for name in originals:
        original = PathDistribution(Path(site, name))
        if any(file.parts[:1] == ("mflow",) for file in original.files or ()):
            return (
                f"psi-mflow {original.version} (the original mflow) is installed in {site} "
                f"and owns files of the mflow package, so the package there is a mixture "
                f"of both. Repair: {REPAIR}"
            )
    return None


def package_is_intact() -> bool:
    """Whether the imported ``mflow`` package is this one (not psi-mflow 1.0's files)."""
    from importlib.metadata import PackageNotFoundError, version

    package = sys.modules.get("mflow")
    try:
        return getattr(package, "__version__", None) == version("mflow")
    except PackageNotFoundError:
        return False


def warn_if_mixed() -> None:
    """A `RuntimeWarning` naming the repair when `mixed_installation` finds a problem."""
    problem = mixed_installation()
    if problem is not None:
        warnings.warn(problem, RuntimeWarning, stacklevel=3)
