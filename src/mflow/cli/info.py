"""``mflow info``: what a recording holds, without replaying it.

Reads the recording once (`mflow.recording.open_recording`) and tells its format and
version, the number of messages and parts, their sizes, the message types (the ``htype``
or ``type`` of each message's first part, if it is JSON), the recorded time span and any
damage. A damaged recording is described up to the damage and the command exits 1.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import click

from mflow.jsonparse import parse_json
from mflow.recording import RecordingReader, open_recording

from ._main import CONTEXT_SETTINGS

__all__ = ["command", "describe"]

HELP = """Describe the recording at PATH without replaying it.

PATH is a file or folder of mflow dump, or a folder of the psi-mflow 1.0 m_dump. Tells
the format and version, the messages and parts, their sizes, the message types (htype of
the first part), the recorded time span and any damage; exits 1 if the recording is
damaged (described up to the damage).

\b
Examples:
  mflow info run.mflow
  mflow info run.mflow --json | jq .types
  mflow info -q run.mflow && echo intact
"""


def _message_type(first_part: bytes) -> str:
    try:
        header = parse_json(first_part)
    except ValueError:
        return "(not JSON)"
    if isinstance(header, dict):
        kind = header.get("htype", header.get("type"))
        if isinstance(kind, str):
            return kind
    return "(JSON without htype)"


def describe(path: str) -> dict[str, Any]:
    """The summary `mflow info` shows of the recording at ``path``, as a dict."""
    with open_recording(path, on_corruption="stop") as reader:
        types: Counter[str] = Counter()
        sizes: list[int] = []
        parts = 0
        times: list[float] = []
        for message in reader:
            types[_message_type(message.parts[0])] += 1
            sizes.append(sum(map(len, message.parts)))
            parts += len(message.parts)
            if message.receive_time is not None:
                times.append(message.receive_time)
        damage = None
        if reader.corruption is not None:
            damage = str(reader.corruption)
        elif reader.truncated:
            damage = "ends in an incomplete message (its writer was interrupted)"
        return {
            "path": path,
            "format": "file" if isinstance(reader, RecordingReader) else "folder",
            "version": reader.version if isinstance(reader, RecordingReader) else None,
            "messages": len(sizes),
            "parts": parts,
            "bytes": sum(sizes),
            "smallest": min(sizes, default=None),
            "largest": max(sizes, default=None),
            "types": dict(types),
            "first_time": min(times, default=None),
            "last_time": max(times, default=None),
            "span": max(times) - min(times) if times else None,
            "damage": damage,
        }


def _lines(info: dict[str, Any]) -> list[str]:
    version = f" version {info['version']}" if info["version"] is not None else ""
    lines = [
        f"{info['path']}: {info['format']} format{version}",
        f"  messages: {info['messages']} ({info['parts']} parts, {info['bytes']} bytes)",
    ]
    if info["messages"]:
        lines.append(f"  sizes:    {info['smallest']} to {info['largest']} bytes per message")
        lines.append(
            "  types:    " + " ".join(f"{kind}={count}" for kind, count in info["types"].items())
        )
    if info["span"] is not None:
        lines.append(
            f"  time:     {info['span']:.3f} s, from {info['first_time']:.6f} "
            f"to {info['last_time']:.6f}"
        )
    lines.append(f"  damage:   {info['damage'] or 'none'}")
    return lines


@click.command(
    "info",
    help=HELP,
    short_help="Describe a recording without replaying it.",
    context_settings=CONTEXT_SETTINGS,
)
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing: the exit status tells.")
def command(path: str, as_json: bool, quiet: bool) -> int:
    info = describe(path)
    if not quiet:
        click.echo(json.dumps(info) if as_json else "\n".join(_lines(info)))
    return 1 if info["damage"] else 0
