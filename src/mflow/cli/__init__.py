"""The command line: ``mflow <command>`` and the psi-mflow 1.0 names.

``mflow`` has the subcommands demo, stats, generate, dump, replay, split and merge (see
``mflow --help``), one module each. The 1.0 tools keep their names, arguments and output
as console scripts and modules: ``m_stats`` = ``python -m mflow.cli.stats``, likewise
``m_generate``, ``m_dump``, ``m_replay`` and ``m_split``.
"""

from __future__ import annotations

from typing import NoReturn, Sequence

from ._main import cli, run

__all__ = ["cli", "main"]


def main(args: Sequence[str] | None = None) -> NoReturn:
    """The ``mflow`` entry point."""
    run(cli, args, prog_name="mflow")
