"""What every writer of this package shares: the error, new files, the flush schedule."""

from __future__ import annotations

import os
import time
from typing import Any

from ..errors import MflowError
from ._deps import h5py

__all__ = ["LIBVER", "FlushSchedule", "HDF5WriteError", "create_file", "refuse_existing"]

#: HDF5 format versions: SWMR needs the 1.10 format; superblock 3 is what XDS' neggia reads.
LIBVER = ("v110", "latest")


class HDF5WriteError(MflowError):
    """A file could not be created or written (it exists, the disk is full, ...)."""


def refuse_existing(path: str, overwrite: bool) -> None:
    """Raise `HDF5WriteError` if ``path`` exists and ``overwrite`` is false."""
    if not overwrite and os.path.lexists(path):
        raise HDF5WriteError(f"'{path}' exists; not overwritten (overwrite replaces it)")


def create_file(path: str, overwrite: bool) -> Any:
    """A new HDF5 file at ``path`` (its directory made if needed), open for writing."""
    refuse_existing(path, overwrite)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return h5py.File(path, "w", libver=LIBVER)
    except OSError as error:
        raise HDF5WriteError(f"cannot create '{path}': {error}") from error


class FlushSchedule:
    """Says when to flush: at most once per ``interval`` seconds."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._next = time.monotonic() + interval

    def due(self) -> bool:
        """True once per interval."""
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.interval
        return True
