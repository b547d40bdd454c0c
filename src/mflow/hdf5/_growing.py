"""A single HDF5 file of datasets that grow by rows, in SWMR mode between changes."""

from __future__ import annotations

from collections import Counter
from typing import Any

from . import chunks
from ._deps import h5py
from ._files import LIBVER, FlushSchedule, create_file
from .naming import check_pattern

__all__ = ["GrowingFile"]


class GrowingFile:
    """Datasets that grow one row at a time, readable under SWMR while they grow.

    SWMR forbids creating anything once it is on, so `create` (a dataset nobody expected,
    e.g. a bsread channel that appeared mid-stream) closes the file, reopens it, creates
    the dataset and turns SWMR on again; readers reopen to see the new dataset.
    """

    def __init__(self, path: str, overwrite: bool) -> None:
        self.path = path
        self.file = create_file(path, overwrite)
        self.rows: dict[str, int] = {}
        self._swmr = False

    def create(
        self, name: str, row_shape: tuple[int, ...], dtype: Any, chunk_rows: int = 1, **options: Any
    ) -> None:
        """A dataset ``name`` of rows of ``row_shape`` (``dtype`` may be h5py's string)."""
        if self._swmr:
            self.file.close()
            self.file = h5py.File(self.path, "r+", libver=LIBVER)
            self._swmr = False
        self.file.create_dataset(
            name,
            shape=(0, *row_shape),
            maxshape=(None, *row_shape),
            chunks=(chunk_rows, *row_shape),
            dtype=dtype,
            **options,
        )
        self.rows[name] = 0

    def start_swmr(self) -> None:
        """Let readers follow the file (after the datasets of the moment exist)."""
        if not self._swmr:
            self.file.swmr_mode = True
            self._swmr = True

    def append(self, name: str, value: Any) -> None:
        """Add one row to the dataset ``name``."""
        self.start_swmr()
        dataset = self.file[name]
        row = self.rows[name]
        dataset.resize(row + 1, axis=0)
        dataset[row] = value
        self.rows[name] = row + 1

    def append_chunk(self, name: str, data: Any) -> None:
        """Add one row given as its compressed chunk (direct chunk write)."""
        self.start_swmr()
        dataset = self.file[name]
        row = self.rows[name]
        dataset.resize(row + 1, axis=0)
        dataset.id.write_direct_chunk((row,) + (0,) * (dataset.ndim - 1), data)
        self.rows[name] = row + 1

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class GrowingFileWriter:
    """What the writers of one growing file per run (bsread, array-1.0) share: where and
    how they write (``name`` a pattern with ``{series}``), what they discarded by reason,
    the open file and its flush schedule."""

    def __init__(
        self,
        directory: str,
        name: str = "series_{series}",
        compression: str = chunks.BITSHUFFLE,
        overwrite: bool = False,
    ) -> None:
        check_pattern(name, ("series",))
        self.directory = directory
        self.name = name
        self.compression = compression
        self.overwrite = overwrite
        self.discarded: Counter[str] = Counter()
        self._file: GrowingFile | None = None
        self._flush = FlushSchedule()
