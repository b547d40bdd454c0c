"""The console scripts' entry points: check the installation, then run the tool.

psi-mflow 1.0 ships files of the same names (``mflow/cli/__init__.py``, ``stats.py``, ...),
so when it is installed over mflow the tools would fail with an ImportError or run the old
code. This module has no 1.0 namesake and imports nothing else of mflow's until the check
has passed, so it can say what is wrong and how to repair it.
"""

from __future__ import annotations

import importlib
import sys
from typing import NoReturn

__all__ = ["mflow", "m_stats", "m_generate", "m_dump", "m_replay", "m_split"]


def _run(module: str) -> NoReturn:
    from mflow import _installation

    problem = _installation.mixed_installation()
    if problem is not None and not _installation.package_is_intact():
        print(f"Error: {problem}", file=sys.stderr)
        sys.exit(1)
    importlib.import_module(module).main()
    sys.exit(0)  # main() exits itself; this keeps the NoReturn promise if it ever returns


def mflow() -> NoReturn:
    """``mflow``."""
    _run("mflow.cli")


def m_stats() -> NoReturn:
    """``m_stats``."""
    _run("mflow.cli.stats")


def m_generate() -> NoReturn:
    """``m_generate``."""
    _run("mflow.cli.generate")


def m_dump() -> NoReturn:
    """``m_dump``."""
    _run("mflow.cli.dump")


def m_replay() -> NoReturn:
    """``m_replay``."""
    _run("mflow.cli.replay")


def m_split() -> NoReturn:
    """``m_split``."""
    _run("mflow.cli.split")
