"""File names from a pattern and header values, kept inside the output directory."""

from __future__ import annotations

import os
import string
from typing import Any

from ..errors import ConfigurationError

__all__ = ["check_pattern", "output_stem"]


def check_pattern(pattern: str, fields: tuple[str, ...]) -> None:
    """Raise `ConfigurationError` if ``pattern`` names a field not in ``fields`` or is empty."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(pattern) if name]
    except ValueError as error:
        raise ConfigurationError(f"bad name pattern {pattern!r}: {error}") from None
    unknown = [name for name in names if name not in fields]
    if unknown:
        raise ConfigurationError(
            f"name pattern {pattern!r} has unknown field {unknown[0]!r} "
            f"(known: {', '.join(fields)})"
        )
    if not pattern.strip() or os.path.isabs(pattern):
        raise ConfigurationError(f"name pattern {pattern!r} is not a relative file name")


def _safe_value(name: str, value: Any) -> str:
    text = str(value)
    if not text or "/" in text or "\\" in text or "\0" in text or text in (".", ".."):
        raise ConfigurationError(f"header value {name}={text!r} cannot be part of a file name")
    return text


def output_stem(directory: str, pattern: str, **fields: Any) -> str:
    """``directory`` / ``pattern`` filled with ``fields`` (values from stream headers).

    A value that could leave the directory (a ``/``, ``..``, absolute path) is refused with
    a `ConfigurationError`, and so is a pattern that resolves outside ``directory``.
    """
    stem = pattern.format(**{name: _safe_value(name, value) for name, value in fields.items()})
    root = os.path.realpath(directory)
    path = os.path.realpath(os.path.join(root, stem))
    if os.path.commonpath([root, path]) != root or path == root:
        raise ConfigurationError(f"file name {stem!r} is outside the directory {directory!r}")
    return path
