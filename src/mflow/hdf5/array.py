"""array-1.0 messages to one file per run: ``/entry/data/data`` growing, and ``frame``.

Each array of a message is one row of ``/entry/data/data`` (rows of the message's
``shape`` and ``type``, bitshuffle-LZ4 compressed unless compression is ``none``, chunks
of one row) and its ``frame`` number (``-1`` when the header has none) a row of
``/entry/data/frame``. A run is ``<name>.h5`` (``{series}`` numbers the runs from 1): a
frame number lower than the previous one (the producer restarted) or a new shape or type
starts the next. Empty data parts are counted in ``discarded``, not written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from . import chunks
from ._growing import GrowingFile, GrowingFileWriter
from .naming import output_stem

__all__ = ["ArrayWriter"]


class ArrayWriter(GrowingFileWriter):
    """Writes array-1.0 messages (as received) to ``directory`` (see the module docstring)."""

    KEYS = ("array-1.0",)

    def __init__(
        self,
        directory: str,
        name: str = "series_{series}",
        compression: str = chunks.BITSHUFFLE,
        overwrite: bool = False,
    ) -> None:
        super().__init__(directory, name, compression, overwrite)
        self.arrays_written = 0
        self.files: list[str] = []
        self._layout: tuple[tuple[int, ...], np.dtype] | None = None
        self._last_frame: int | None = None

    def write(self, key: str, data: Mapping[str, Any]) -> None:
        """Write one array-1.0 message (``{"header": ..., "data": [array or None, ...]}``)."""
        frame = data["header"].get("frame")
        frame = frame if type(frame) is int else -1
        for array in data.get("data") or ():
            if array is None:
                self.discarded["empty"] += 1
                continue
            self._row(np.asarray(array), frame)
        self.flush_if_due()

    def _row(self, array: np.ndarray, frame: int) -> None:
        layout = (array.shape, array.dtype.newbyteorder("<"))
        restarted = self._last_frame is not None and 0 <= frame < self._last_frame
        if self._file is None or layout != self._layout or restarted:
            self._open(layout)
        assert self._file is not None
        chunk = chunks.array_chunk(array, self.compression)
        self._file.append_chunk("entry/data/data", chunk.data)
        self._file.append("entry/data/frame", frame)
        self._last_frame = frame
        self.arrays_written += 1

    def _open(self, layout: tuple[tuple[int, ...], np.dtype]) -> None:
        self.close()
        path = output_stem(self.directory, self.name, series=len(self.files) + 1) + ".h5"
        growing = GrowingFile(path, self.overwrite)
        growing.file.attrs["default"] = "entry"
        entry = growing.file.create_group("entry")
        entry.attrs.update(NX_class="NXentry", default="data")
        group = entry.create_group("data")
        group.attrs.update(NX_class="NXdata", signal="data")
        shape, dtype = layout
        growing.create(
            "entry/data/data", shape, dtype, fillvalue=0, **chunks.filter_options(self.compression)
        )
        growing.create("entry/data/frame", (), np.int64, chunk_rows=1024)
        growing.start_swmr()
        self._file, self._layout = growing, layout
        self.files.append(path)

    def flush_if_due(self) -> None:
        """Flush at most once a second."""
        if self._file is not None and self._flush.due():
            self._file.flush()

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Close the open file."""
        if self._file is not None:
            self._file.close()
            self._file = None
