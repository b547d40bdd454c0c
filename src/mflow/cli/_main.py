"""The ``mflow`` command group and the one error handler every entry point runs under.

Errors become one line on stderr and an exit status, never a traceback: ``Error: ...`` and
1 for mflow errors, I/O errors and bad configuration; 2 for usage errors; 130 when
interrupted. ``-vv`` logs the traceback of an unexpected error. (click itself ends a
command whose output pipe was closed, e.g. by ``| head``, quietly with status 1.)
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import NoReturn, Sequence

import click

import mflow
from mflow.errors import MflowError

__all__ = ["cli", "run", "receive_path", "CONTEXT_SETTINGS", "COMMANDS"]

logger = logging.getLogger("mflow.cli")

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

_EXIT_ERROR = 1
_EXIT_INTERRUPTED = 130


#: Subcommand name → module defining it as ``command`` (imported when needed).
COMMANDS = {
    name: f"mflow.cli.{name}"
    for name in (
        "demo",
        "stats",
        "generate",
        "dump",
        "replay",
        "info",
        "split",
        "merge",
        "write",
        "fanout",
        "view",
        "keys",
    )
}


class _LazyGroup(click.Group):
    """A group that imports a subcommand's module only when it is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = COMMANDS.get(name)
        return None if module is None else importlib.import_module(module).command


def receive_path() -> str:
    """Which receive path streams take in this process, and why (for ``mflow --version``)."""
    from mflow import _fastpath

    if _fastpath.speedups() is not None:
        return "compiled (active)"
    if os.environ.get("MFLOW_PURE_PYTHON"):
        return "pure Python (MFLOW_PURE_PYTHON is set)"
    return "pure Python (the compiled receive path is not built or cannot load here)"


def _show_version(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"mflow, version {mflow.__version__}\nreceive path: {receive_path()}")
        ctx.exit()


@click.group(cls=_LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "-V",
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_show_version,
    help="Show the version and which receive path is active, then exit.",
)
def cli() -> None:
    """Inspect, record, replay, generate, split and merge ZeroMQ detector streams.

    Streams are multipart ZeroMQ messages: DECTRIS EIGER (Stream V1 and V2), PSI
    JUNGFRAU (SLS receiver), bsread, array-1.0 and raw-1.0. Commands that receive
    connect by default, commands that send bind; tcp://*:PORT always binds.

    \b
    Examples:
      mflow demo                                  # a local EIGER-like stream, live
      mflow stats tcp://detector:9999             # what is on the stream?
      mflow dump tcp://detector:9999 run.mflow -n 1000
      mflow replay run.mflow -a tcp://*:9999 --realtime
      mflow generate dectris --rate 100 -a tcp://*:9999
      mflow split tcp://detector:9999 tcp://*:9001 tcp://*:9002
    """


def _error_text(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        where = f": '{error.filename}'" if error.filename else ""
        return f"{error.strerror}{where}"
    if isinstance(error, MflowError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def run(
    command: click.Command, args: Sequence[str] | None = None, prog_name: str | None = None
) -> NoReturn:
    """Run ``command`` (a click command or group) and exit with its status."""
    try:
        code = command.main(args=args, prog_name=prog_name, standalone_mode=False)
    except click.ClickException as error:
        error.show()
        code = error.exit_code
    except (click.Abort, KeyboardInterrupt):
        print("Interrupted.", file=sys.stderr)
        code = _EXIT_INTERRUPTED
    except (MflowError, OSError) as error:
        print(f"Error: {_error_text(error)}", file=sys.stderr)
        code = _EXIT_ERROR
    except Exception as error:  # noqa: BLE001  (the one place that turns bugs into a line)
        logger.debug("unexpected error", exc_info=True)
        print(f"Error: {_error_text(error)} (run with -vv for details)", file=sys.stderr)
        code = _EXIT_ERROR
    sys.exit(code if isinstance(code, int) else 0)
