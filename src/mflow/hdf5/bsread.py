"""bsread messages to one file in PSI's ``bs h5`` layout, chunked and compressed.

Per channel: ``/<channel>/data`` (one row per message that carried a value; numeric
arrays in numpy order, i.e. the channel's shape reversed; strings as variable-length
text), ``/<channel>/timestamp`` and ``/<channel>/timestamp_offset`` (the channel's
seconds and nanoseconds, -1 when it has none) and ``/<channel>/pulse_id``; ``/pulse_id``
holds every message's pulse id. Numeric data is bitshuffle-LZ4 compressed (unless
compression is ``none``). A data header that changes mid-stream is followed: a new
channel gets its datasets when it first has a value (readers reopen the file to see
them), a channel that vanished stops growing. A value whose type or shape differs from
its channel's datasets is discarded and counted. The file is ``<name>.h5``
(``{series}`` is 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from . import chunks
from ._deps import h5py
from ._growing import GrowingFile, GrowingFileWriter
from .naming import output_stem

__all__ = ["BsreadWriter"]

_SCALAR_CHUNK_ROWS = 1024


class BsreadWriter(GrowingFileWriter):
    """Writes bsread messages (as received) to ``directory`` (see the module docstring)."""

    KEYS = ("bsr_m-1.0", "bsr_m-1.1")

    def __init__(
        self,
        directory: str,
        name: str = "series_{series}",
        compression: str = chunks.BITSHUFFLE,
        overwrite: bool = False,
    ) -> None:
        super().__init__(directory, name, compression, overwrite)
        self.messages_written = 0
        self.path: str | None = None
        self._channels: dict[str, tuple[tuple[int, ...], Any]] = {}

    def write(self, key: str, data: Mapping[str, Any]) -> None:
        """Write one bsread message as the bsread handler returns it."""
        if self._file is None:
            self.path = output_stem(self.directory, self.name, series=1) + ".h5"
            self._file = GrowingFile(self.path, self.overwrite)
            self._file.create("pulse_id", (), np.int64, chunk_rows=_SCALAR_CHUNK_ROWS)
        pulse_id = int(data["pulse_id"])
        timestamps = data.get("timestamps") or {}
        for channel, value in (data.get("data") or {}).items():
            if value is None:
                continue
            self._value(channel, value, timestamps.get(channel), pulse_id)
        self._file.append("pulse_id", pulse_id)
        self.messages_written += 1
        if self._flush.due():
            self._file.flush()

    def _value(self, channel: str, value: Any, timestamp: Any, pulse_id: int) -> None:
        assert self._file is not None
        if isinstance(value, str):
            layout: tuple[tuple[int, ...], Any] = ((), "str")
        else:
            array = np.asarray(value)
            value = array.astype(array.dtype.newbyteorder("<"), copy=False)
            layout = (array.shape, value.dtype)
        known = self._channels.get(channel)
        if known is None:
            self._create(channel, layout)
        elif known != layout:
            self.discarded["changed_type_or_shape"] += 1
            return
        seconds, nanoseconds = timestamp if timestamp is not None else (-1, -1)
        self._file.append(f"{channel}/data", value)
        self._file.append(f"{channel}/timestamp", seconds)
        self._file.append(f"{channel}/timestamp_offset", nanoseconds)
        self._file.append(f"{channel}/pulse_id", pulse_id)

    def _create(self, channel: str, layout: tuple[tuple[int, ...], Any]) -> None:
        assert self._file is not None
        shape, dtype = layout
        if dtype == "str":
            self._file.create(
                f"{channel}/data", (), h5py.string_dtype(), chunk_rows=_SCALAR_CHUNK_ROWS
            )
        else:
            rows = _SCALAR_CHUNK_ROWS if not shape else 1
            options = chunks.filter_options(self.compression) if dtype.kind in "iuf" else {}
            self._file.create(f"{channel}/data", shape, dtype, chunk_rows=rows, **options)
        for name in ("timestamp", "timestamp_offset", "pulse_id"):
            self._file.create(f"{channel}/{name}", (), np.int64, chunk_rows=_SCALAR_CHUNK_ROWS)
        self._channels[channel] = layout

    def flush_if_due(self) -> None:
        """Flush at most once a second."""
        if self._file is not None and self._flush.due():
            self._file.flush()

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None
