"""What the commands print: a live table on a terminal, plain lines in a pipe, JSON on request.

Every command reports through one `Output`. A `Report` carries the same facts twice: as
``data`` (stable machine keys, for ``--json``: one object per line, with an ``"event"``
key) and as ``fields`` (human labels and formatted values, for plain lines and the rich
table). rich is imported only when stdout is a terminal. Logging goes to stderr.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import IO, Any, NamedTuple

from ._streams import discarded_at_close, refusals

__all__ = [
    "Report",
    "Output",
    "configure_logging",
    "format_bytes",
    "format_rate",
    "format_counts",
    "traffic_fields",
]

_LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


class Report(NamedTuple):
    """One progress sample or summary: machine ``data`` and human ``fields``."""

    data: dict[str, Any]
    fields: list[tuple[str, str]]


def format_bytes(count: float) -> str:
    """``count`` bytes in decimal units (1 MB = 10^6 bytes), e.g. ``12.3 MB``."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(count) < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.2f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def format_rate(per_second: float, unit: str = "msg") -> str:
    """A rate such as ``1234.5 msg/s``."""
    return f"{per_second:.1f} {unit}/s"


def traffic_fields(
    sample: dict[str, float], final: bool = False, verb: str = "messages"
) -> list[tuple[str, str]]:
    """Messages, rate, bytes and throughput of a `Meter` sample (averages if ``final``)."""
    prefix = "average_" if final else ""
    fields = [
        (verb, str(sample["messages"])),
        ("rate", format_rate(sample[prefix + "rate"])),
        ("data", format_bytes(sample["bytes"])),
        ("throughput", f"{sample[prefix + 'byte_rate'] / 1e6:.2f} MB/s"),
    ]
    if final:
        fields.insert(0, ("elapsed", f"{sample['elapsed']:.1f} s"))
    return fields


def format_counts(counts: dict[str, int]) -> str:
    """``{"a": 1, "b": 2}`` as ``a=1 b=2`` (``-`` when empty)."""
    return " ".join(f"{key}={value}" for key, value in sorted(counts.items())) or "-"


def configure_logging(verbosity: int) -> None:
    """Log to stderr: warnings by default, INFO with -v, DEBUG with -vv, errors only with -q."""
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(
        max(-1, min(verbosity, 2)), logging.DEBUG
    )
    logging.basicConfig(level=level, format=_LOG_FORMAT, stream=sys.stderr, force=True)


class Output:
    """The one place a command prints to (``style``: ``"rich"``, ``"plain"``, ``"json"``
    or ``"silent"``, which prints nothing: the 1.0 tools print their own lines).

    ``verbosity`` below zero (``-q``) keeps progress reports and notes quiet; summaries,
    listings and the start line are always printed.
    """

    def __init__(self, style: str, verbosity: int = 0, file: IO[str] | None = None) -> None:
        self.style = style
        self.verbosity = verbosity
        self.file = sys.stdout if file is None else file
        self._console: Any = None
        self._live: Any = None

    @classmethod
    def for_terminal(cls, json_lines: bool, verbosity: int) -> Output:
        """JSON lines if asked for, rich if stdout is a terminal, else plain lines."""
        if json_lines:
            return cls("json", verbosity)
        return cls("rich" if sys.stdout.isatty() else "plain", verbosity)

    # -- writing -------------------------------------------------------------------------

    def _write(self, text: str) -> None:
        if self.style == "rich":
            self._rich_console().print(text, markup=False, highlight=False)
        else:
            print(text, file=self.file, flush=True)

    def _write_json(self, event: str, data: dict[str, Any]) -> None:
        print(json.dumps({"event": event, **data}, default=str), file=self.file, flush=True)

    def event(self, kind: str, text: str, **data: Any) -> None:
        """A one-off event such as ``start`` (always shown)."""
        if self.style == "silent":
            return
        if self.style == "json":
            self._write_json(kind, data)
        else:
            self._write(text)

    def note(self, text: str, **data: Any) -> None:
        """Information a quiet run does without (e.g. "waiting for a peer")."""
        if self.verbosity >= 0:
            self.event("note", text, message=text, **data)

    def line(self, text: str, kind: str = "message", **data: Any) -> None:
        """One item of a listing (e.g. a received message), shown even when quiet."""
        self.event(kind, text, **data)

    def progress(self, report: Report) -> None:
        """A progress sample: a line, a JSON object, or an update of the live table."""
        if self.verbosity < 0 or self.style == "silent":
            return
        report = _with_refusals(report)
        if self.style == "json":
            self._write_json("progress", report.data)
        elif self.style == "plain":
            self._write("  ".join(f"{label}: {value}" for label, value in report.fields))
        else:
            self._live_display().update(_table(report.fields), refresh=True)

    def summary(self, report: Report, title: str = "Summary") -> None:
        """The final report."""
        self.close_live()
        if self.style == "silent":
            return
        report = _with_discarded(_with_refusals(report))
        if self.style == "json":
            self._write_json("summary", report.data)
        elif self.style == "plain":
            print(f"{title}:", file=self.file)
            width = max((len(label) for label, _ in report.fields), default=0)
            for label, value in report.fields:
                print(f"  {label + ':':<{width + 1}} {value}", file=self.file)
            self.file.flush()
        else:
            self._rich_console().print(_table(report.fields, title))

    # -- rich ------------------------------------------------------------------------------

    def _rich_console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.file)
        return self._console

    def _live_display(self) -> Any:
        if self._live is None:
            from rich.live import Live

            self._live = Live(console=self._rich_console(), auto_refresh=False, transient=True)
            self._live.start()
        return self._live

    def close_live(self) -> None:
        """End the live table (before anything else is printed for good)."""
        if self._live is not None:
            self._live.stop()
            self._live = None


def _with_refusals(report: Report) -> Report:
    """``report`` with the peers refused by the command's security, if there were any."""
    refused = refusals()
    if not refused:
        return report
    return Report(
        {**report.data, "refused": refused}, [*report.fields, ("refused", format_counts(refused))]
    )


def _with_discarded(report: Report) -> Report:
    """``report`` with the messages received but not taken before the stop, if any."""
    discarded = discarded_at_close()
    if not discarded:
        return report
    return Report(
        {**report.data, "discarded_at_close": discarded},
        [*report.fields, ("discarded at close", f"{discarded} (received, not processed)")],
    )


def _table(fields: list[tuple[str, str]], title: str | None = None) -> Any:
    from rich.table import Table

    table = Table(title=title, show_header=False, box=None, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for label, value in fields:
        table.add_row(label, value)
    return table
