"""The psi-mflow 1.0 command names (``m_stats``, ``m_dump``, ...) on top of our commands.

A 1.0 command is the same click command under another name, with 1.0 defaults, the 1.0
output (its callback gets ``legacy=True``) and argparse's habits: a long option may be
abbreviated to any unique prefix, and 1.0 spellings such as ``--sampling_interval`` are
accepted.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any, Callable, Mapping, cast

import click

from mflow.throughput import ThroughputStatisticsPrinter

from ._main import CONTEXT_SETTINGS
from ._runtime import Meter

__all__ = ["LegacyCommand", "legacy_command", "ThroughputLines"]


class LegacyCommand(click.Command):
    """A click command that parses long options the way argparse does."""

    def __init__(self, *args: Any, aliases: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.aliases = dict(aliases or {})

    def _long_names(self, ctx: click.Context) -> list[str]:
        names = [
            name
            for param in self.get_params(ctx)
            for name in (*param.opts, *param.secondary_opts)
            if name.startswith("--")
        ]
        return names + list(self.aliases)

    def _expand(self, token: str, names: list[str]) -> str:
        name, equals, value = token.partition("=")
        if name not in names:
            candidates = [n for n in names if n.startswith(name)]
            if len(candidates) == 1:
                name = candidates[0]
        return self.aliases.get(name, name) + equals + value

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        names = self._long_names(ctx)
        expanded = []
        for index, token in enumerate(args):
            if token == "--":
                expanded.extend(args[index:])
                break
            expanded.append(self._expand(token, names) if token.startswith("--") else token)
        return super().parse_args(ctx, expanded)


def legacy_command(
    command: click.Command,
    name: str,
    help: str,
    defaults: Mapping[str, Any] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> LegacyCommand:
    """``command`` under the 1.0 ``name``, with 1.0 ``defaults`` and option ``aliases``."""
    settings = {**CONTEXT_SETTINGS, "default_map": dict(defaults or {})}
    return LegacyCommand(
        name,
        aliases=aliases,
        context_settings=settings,
        callback=functools.partial(cast(Callable[..., Any], command.callback), legacy=True),
        params=command.params,
        help=help,
    )


class ThroughputLines:
    """The 1.0 tools' rate lines and summary (``Data rate: ... MB/s    Message rate: ... Hz``)."""

    def __init__(self, interval: float) -> None:
        self.printer = ThroughputStatisticsPrinter(sampling_interval=interval)

    def update(self, meter: Meter) -> None:
        """Account for the meter's counts; prints a rate line once per interval."""
        self.printer.save_statistics(
            SimpleNamespace(total_bytes_received=meter.bytes, messages_received=meter.messages)
        )

    def close(self, meter: Meter) -> None:
        """Print the last rate line and the summary."""
        self.update(meter)
        self.printer.close()
