"""DECTRIS series (Stream V1 and V2) to a master file and data files, as the FileWriter does.

Per series: ``<name>_data_000001.h5``, ``_000002``, ... each holding up to
``frames_per_file`` images as ``/entry/data/data`` (images, ny, nx) — (images, channels,
ny, nx) for a multi-threshold V2 series — with chunks of one image (one image and channel),
``image_nr_low`` / ``image_nr_high`` (from 1) and ``/entry/data/image_nr``: the image number
that arrived in each row, 0 where none did. Image number ``n`` (``frame`` / ``image_id``
``n - 1``) always lives in data file ``(n - 1) // frames_per_file + 1``, so a missing image
is a row of fill value (the dtype's largest value) and counted, never a silent zero. Data
files are in SWMR mode while they are written (`h5py.File(..., swmr=True)` readers follow
them) and flushed at most once a second; each keeps the series header, the first one of
each part with its arrays (`mflow.hdf5.series_files`). ``<name>_master.h5``
(`mflow.hdf5.nexus`) exists from the first flush on and is rewritten after every flush
that changed what it maps (at most once a second; less often when writing it takes more
than a twentieth of the time, as with the large pixel mask of a 16M), under a temporary
name then renamed, so a reader never sees half a master: after a kill -9 it maps the
images flushed until then and lists the others as missing. Until the series ends the data
files it maps are open for writing, so only SWMR readers (`h5py.File(..., swmr=True)`, as
dxtbx opens files) can read images through it; after a kill -9 they stay marked open
(``h5clear -s`` clears the mark for other readers). When the series ends (end message, a
new series or `DectrisWriter.close`) the data files are closed and the master written once
more, over closed files only.

Images of another series than the open one are strays (late images of an aborted series):
discarded and counted. A series number seen before in this run starts a new file set
named ``<name>_r2``, ``_r3``, ...
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..dispatch import STREAM2
from ..errors import DecodeError, MalformedMessageError
from . import chunks
from ._deps import h5py
from ._files import FlushSchedule, HDF5WriteError, create_file, refuse_existing
from ._reserve import SpaceReservation
from .naming import check_pattern, output_stem
from .nexus import DataFile, SeriesHeader, nexus_values, write_master
from .series_files import FoundFiles, fill_value, find_data_files, missing_images, store_header

__all__ = ["NAME_FIELDS", "DectrisWriter", "SeriesSummary"]

#: Fields a name pattern may use.
NAME_FIELDS = ("series",)


#: Disk space reserved ahead of a data file's end: 16 images, within these bounds.
RESERVE_AHEAD = 64 * 2**20
RESERVE_AHEAD_MAX = 256 * 2**20

#: Files whose write failed. Closing such a file crashes HDF5 (2.0), so they are kept
#: open, unused, until the process ends; their last flush is what stays on disk.
_ABANDONED: list[Any] = []


class _DataFile:
    """One data file, open in SWMR mode: rows are written where their image number says."""

    def __init__(
        self,
        path: str,
        first_image: int,
        frames_per_file: int,
        first: chunks.Chunk,
        channels: int,
        overwrite: bool,
        header: SeriesHeader,
        names: Mapping[str, str],
    ) -> None:
        self.path = path
        self.first_image = first_image
        self.filter = first.filter
        self.dtype = first.dtype
        self.image_shape = (channels, *first.shape) if channels > 1 else first.shape
        self.rows = 0
        self.converted = 0
        # The image numbers of the rows, written to image_nr at each flush (one dataset
        # write per flush instead of one per image).
        self._numbers = np.zeros(frames_per_file, np.uint64)
        self.file = create_file(path, overwrite)
        try:
            entry = self.file.create_group("entry")
            entry.attrs["NX_class"] = "NXentry"
            group = entry.create_group("data")
            group.attrs["NX_class"] = "NXdata"
            group.attrs["signal"] = "data"
            chunk_shape = (1,) * (len(self.image_shape) - 2) + first.shape
            self.data = group.create_dataset(
                "data",
                shape=(0, *self.image_shape),
                maxshape=(frames_per_file, *self.image_shape),
                chunks=(1, *chunk_shape),
                dtype=self.dtype,
                fillvalue=fill_value(self.dtype),
                **chunks.filter_options(self.filter),
            )
            self.data.attrs["image_nr_low"] = np.uint64(first_image)
            self.data.attrs["image_nr_high"] = np.uint64(first_image + frames_per_file - 1)
            self.image_nr = group.create_dataset(
                "image_nr",
                shape=(0,),
                maxshape=(frames_per_file,),
                chunks=(min(frames_per_file, 4096),),
                dtype=np.uint64,
                fillvalue=0,
            )
            store_header(self.file, header, names, frames_per_file)
            self.file.swmr_mode = True
        except Exception:
            self.file.close()
            raise
        images = 16 * memoryview(first.data).nbytes * channels
        self._space = SpaceReservation(path, min(max(RESERVE_AHEAD, images), RESERVE_AHEAD_MAX))

    def put(self, row: int, images: list[chunks.Chunk]) -> None:
        """Write the channel images of the image in ``row``."""
        for image in images:
            if image.shape != self.image_shape[-2:] or image.dtype != self.dtype:
                raise MalformedMessageError(
                    f"image {image.dtype} {image.shape} does not match the series' "
                    f"{self.dtype} {self.image_shape[-2:]}"
                )
        if row >= self.rows:
            self.rows = row + 1
            self.data.id.set_extent((self.rows, *self.image_shape))
        for channel, image in enumerate(images):
            if image.filter != self.filter:
                image = chunks.converted(image, self.filter)
                self.converted += 1
            offset = (row, channel, 0, 0) if len(self.image_shape) == 3 else (row, 0, 0)
            self.data.id.write_direct_chunk(offset, image.data)
            self._space.wrote(memoryview(image.data).nbytes)
        self._numbers[row] = self.first_image + row

    def _write_numbers(self) -> None:
        self.image_nr.resize(self.rows, axis=0)
        self.image_nr[: self.rows] = self._numbers[: self.rows]

    def flush(self) -> None:
        self._write_numbers()
        self.file.flush()

    def current(self) -> DataFile:
        """What the file holds now (as of the next flush)."""
        return DataFile(os.path.basename(self.path), self.first_image, self.rows)

    def abandon(self) -> None:
        """Close after a failed write (HDF5 then fails to write its own metadata too)."""
        _ABANDONED.append((self.file, self.data, self.image_nr))
        self._space.release()

    def close(self) -> DataFile:
        """Close, then set ``image_nr_high`` to the last row (not allowed under SWMR)."""
        try:
            self._write_numbers()
            self.file.close()
            with h5py.File(self.path, "r+") as f:
                f["/entry/data/data"].attrs["image_nr_high"] = np.uint64(
                    self.first_image + self.rows - 1
                )
        finally:
            self._space.release()
        return self.current()


@dataclass
class SeriesSummary:
    """What was written for one series."""

    series: Any
    master: str
    images_written: int = 0
    missing: list[int] = field(default_factory=list)
    data_files: list[str] = field(default_factory=list)
    ended: bool = False


class _Series:
    """The open series: its header, data files and the image numbers that arrived."""

    def __init__(
        self,
        series: Any,
        stem: str,
        header: SeriesHeader,
        frames_per_file: int,
        overwrite: bool,
        names: Mapping[str, str],
        writes_master: bool,
        other_parts_wait: float = 0.0,
    ) -> None:
        self.series = series
        self.writes_master = writes_master
        self.other_parts_wait = other_parts_wait
        self.names = names
        self.stem = stem
        self.header = header
        self.frames_per_file = frames_per_file
        self.overwrite = overwrite
        self.files: dict[int, _DataFile] = {}
        self.closed: list[DataFile] = []
        self.arrived: set[int] = set()
        self.duplicates = 0
        self._other_arrived: set[int] = set()
        self.converted = 0
        self.layout: tuple[tuple[int, ...], np.dtype] | None = None
        self._master_due = 0.0
        self._master_state: tuple[Any, ...] = ()
        self._values_only = dataclasses.replace(header, arrays={})
        if writes_master:
            refuse_existing(self.master_path, overwrite)

    @property
    def master_path(self) -> str:
        return f"{self.stem}_master.h5"

    def put(self, number: int, images: list[chunks.Chunk]) -> bool:
        """Write image ``number`` (from 1); False if it arrived before (not written again)."""
        if number in self.arrived:
            self.duplicates += 1
            return False
        index, row = divmod(number - 1, self.frames_per_file)
        data_file = self.files.get(index)
        if data_file is None:
            path = f"{self.stem}_data_{index + 1:06d}.h5"
            data_file = _DataFile(
                path,
                index * self.frames_per_file + 1,
                self.frames_per_file,
                images[0],
                len(images),
                self.overwrite,
                # The header's arrays (a 16M pixel mask, flatfield: ~100 MB) only in the
                # first data file of this part; the values in every one.
                self.header if not self.files and not self.closed else self._values_only,
                self.names,
            )
            self.files[index] = data_file
            self.layout = self.layout or (data_file.image_shape, data_file.dtype)
            # Only the files being filled stay open: images arrive nearly in order.
            for old in [i for i in self.files if i < index - 1]:
                self._close_file(old)
        data_file.put(row, images)
        self.arrived.add(number)
        return True

    def _close_file(self, index: int) -> None:
        data_file = self.files.pop(index)
        self.converted += data_file.converted
        self.closed.append(data_file.close())

    def flush(self) -> None:
        """Flush the data files, then bring the master file up to date (if this part
        writes it, and at most a twentieth of the time goes to that: a 16M master with
        its pixel mask and flatfield is 144 MB)."""
        for data_file in self.files.values():
            data_file.flush()
        if self.writes_master and self.layout is not None and time.monotonic() >= self._master_due:
            began = time.monotonic()
            self._write_master(self._other_parts().files)
            self._master_due = began + 20 * (time.monotonic() - began)

    def abandon(self) -> None:
        """Close the data files after a failed write, writing nothing more."""
        for data_file in self.files.values():
            data_file.abandon()
        self.files.clear()

    def finish(self, ended: bool) -> SeriesSummary:
        """Close the data files and write the master file."""
        for index in list(self.files):
            self._close_file(index)
        own = [f.name for f in self.closed]
        if not self.writes_master:
            return SeriesSummary(self.series, "", len(self.arrived), [], own, ended)
        expected = self.header.expected_images or 0
        others = self._wait_for_other_parts(expected if ended else 0)
        images, missing = self._write_master(others)
        return SeriesSummary(self.series, self.master_path, images, missing, own, ended)

    def _write_master(self, others: list[DataFile]) -> tuple[int, list[int]]:
        """Write the master over this part's and ``others`` data files as they are now
        (unless it says that already): the number of images it maps and the missing ones."""
        open_files = [f.current() for f in self.files.values()]
        files = sorted(self.closed + open_files + others, key=lambda f: f.first_image)
        arrived = self.arrived | self._other_arrived
        missing = missing_images(arrived, self.header.expected_images)
        state = (tuple(files), len(arrived), len(missing))
        if self.layout is not None and state != self._master_state:
            self._master_state = state
            image_shape, dtype = self.layout
            write_master(
                self.master_path,
                self.header,
                files,
                self.frames_per_file,
                image_shape,
                dtype,
                fill_value(dtype),
                missing,
                len(arrived),
                self.names,
            )
        return len(arrived), missing

    def _wait_for_other_parts(self, expected: int) -> list[DataFile]:
        """The other parts' data files, once they hold all ``expected`` images and are
        closed, or after ``other_parts_wait`` seconds (the parts end their series at about
        the same time). A file still open for writing then (its part is late, or was
        killed) is left out and its images are missing: HDF5 refuses to open it (and so
        a virtual dataset over it) for anyone but a SWMR reader until it is closed."""
        deadline = time.monotonic() + self.other_parts_wait
        while True:
            found = self._other_parts(closed_only=True)
            complete = set(range(1, expected + 1)) <= self.arrived | self._other_arrived
            if (complete and not found.unreadable) or time.monotonic() >= deadline:
                return found.files
            time.sleep(0.1)

    def _other_parts(self, closed_only: bool = False) -> FoundFiles:
        """The data files other parts wrote (or, unless ``closed_only``, are writing) of
        this series, as they are now; the ones still open for writing are `unreadable`
        with ``closed_only``."""
        own = [os.path.basename(f.path) for f in self.files.values()]
        found = find_data_files(
            self.stem, skip=own + [f.name for f in self.closed], closed_only=closed_only
        )
        self._other_arrived = found.arrived
        self.layout = self.layout or found.layout
        return found


def _v1_header(data: Mapping[str, Any]) -> SeriesHeader:
    config = data.get("part_2")
    header = nexus_values(config if isinstance(config, Mapping) else {}, 1)
    for name in ("pixel_mask", "flatfield", "countrate_table"):
        array = data.get(name)
        if isinstance(array, np.ndarray):
            key = "countrate_correction_table" if name == "countrate_table" else name
            header.arrays[key] = np.ascontiguousarray(
                array, np.uint32 if name == "pixel_mask" else array.dtype
            )
    return header


def _array(value: Any) -> np.ndarray | None:
    if hasattr(value, "decode") and hasattr(value, "algorithm"):
        try:
            value = value.decode()
        except DecodeError:
            return None
    return value if isinstance(value, np.ndarray) else None


def _v2_header(start: Mapping[str, Any]) -> SeriesHeader:
    header = nexus_values(start, 2)
    masks = start.get("pixel_mask")
    if isinstance(masks, Mapping):
        arrays = [a for a in map(_array, masks.values()) if a is not None and a.ndim == 2]
        if arrays and all(a.shape == arrays[0].shape for a in arrays):
            header.arrays["pixel_mask"] = np.ascontiguousarray(
                np.bitwise_or.reduce(np.stack(arrays)), np.uint32
            )
    flatfields = start.get("flatfield")
    if isinstance(flatfields, Mapping) and flatfields:
        flatfield = _array(next(iter(flatfields.values())))
        if flatfield is not None and flatfield.ndim == 2:
            header.arrays["flatfield"] = np.ascontiguousarray(flatfield)
    table = _array(start.get("countrate_correction_lookup_table"))
    if table is not None:
        header.arrays["countrate_correction_table"] = np.ascontiguousarray(table)
    return header


class DectrisWriter:
    """Writes DECTRIS Stream V1 and V2 series to ``directory`` (see the module docstring).

    ``write(key, data)`` takes each message as received with ``decode=False`` (``key`` is
    its dispatch key: ``dheader-1.0``, ``dimage-1.0``, ``dseries_end-1.0`` or
    `mflow.dispatch.STREAM2`). ``name`` is the file name pattern (field ``{series}``),
    ``compression`` (``"bslz4"`` or ``"none"``) applies to images that arrive
    uncompressed. Existing files are refused unless ``overwrite``. ``names`` gives the
    instrument, source and sample names NXmx requires and no header carries.

    ``part=(k, n)``: one of ``n`` writers of the same series (every one gets the headers
    and ends, the images divided among them, e.g. by ``mflow fanout``). This one writes
    the data files numbered ``k``, ``k + n``, ... (whole blocks of ``frames_per_file``
    images; the names never collide) and counts the other images in ``other_parts``.
    Part 1 writes the master file over all parts' data files found in ``directory``:
    during the series as they are at each flush, and when its series ends after waiting up
    to ``other_parts_wait`` seconds for the other parts to have written (and closed the
    files of) every image the header announced; images no part had in a closed file by
    then are listed as missing. `mflow.hdf5.write_masters` writes it later from the data
    files alone.
    """

    KEYS = ("dheader-1.0", "dimage-1.0", "dseries_end-1.0", STREAM2)

    def __init__(
        self,
        directory: str,
        name: str = "series_{series}",
        frames_per_file: int = 1000,
        compression: str = chunks.BITSHUFFLE,
        overwrite: bool = False,
        names: Mapping[str, str] | None = None,
        part: tuple[int, int] = (1, 1),
    ) -> None:
        check_pattern(name, NAME_FIELDS)
        if frames_per_file < 1:
            raise ValueError(f"frames_per_file must be at least 1, not {frames_per_file}")
        if compression not in chunks.COMPRESSIONS:
            raise ValueError(
                f"compression must be one of {chunks.COMPRESSIONS}, not {compression!r}"
            )
        if not 1 <= part[0] <= part[1]:
            raise ValueError(
                f"part {part[0]}/{part[1]} is not one of 1/{part[1]} to {part[1]}/{part[1]}"
            )
        self.part = part
        #: Seconds part 1 waits at a series end for the other parts' images (see above).
        self.other_parts_wait = 10.0
        #: Images left to the other parts (``part``): not an error, not written here.
        self.other_parts = 0
        self.directory = directory
        self.name = name
        self.frames_per_file = frames_per_file
        self.compression = compression
        self.overwrite = overwrite
        self.names = dict(names or {})
        self.images_written = 0
        #: Images not written, by reason (``stray``: of another series than the open one;
        #: ``duplicate``; ``no_series``; ``malformed``...).
        self.discarded: Counter[str] = Counter()
        self.series: list[SeriesSummary] = []
        self._open: _Series | None = None
        self._stems: Counter[str] = Counter()
        self._flush = FlushSchedule()

    @property
    def current(self) -> _Series | None:
        """The series being written, if any."""
        return self._open

    def write(self, key: str, data: Any) -> None:
        """Write one received message (see the class docstring)."""
        if key == STREAM2:
            kind = data.get("type")
            if kind == "start":
                self._start(data.get("series_id"), _v2_header(data))
            elif kind == "image":
                self._v2_image(data)
            elif kind == "end":
                self._end(data.get("series_id"))
            else:
                self.discarded[f"stream2_{kind}"] += 1
        elif key == "dheader-1.0":
            self._start(data["header"].get("series"), _v1_header(data))
        elif key == "dimage-1.0":
            header = data["header"]
            self._image(
                header.get("series"),
                header.get("frame"),
                lambda: [chunks.dimage_chunk(data["part_2"], data["part_3_raw"], self.compression)],
            )
        elif key == "dseries_end-1.0":
            self._end(data["header"].get("series"))
        self.flush_if_due()

    def flush_if_due(self) -> None:
        """`flush` if the last one was a second ago or more (call it also while idle)."""
        if self._flush.due():
            self.flush()

    def _v2_image(self, data: Mapping[str, Any]) -> None:
        def images() -> list[chunks.Chunk]:
            channels = data.get("data")
            if not isinstance(channels, Mapping) or not channels:
                raise MalformedMessageError("Stream V2 image without data")
            order = self._open.header.channels if self._open is not None else ()
            names = [c for c in order if c in channels] or list(channels)
            return [chunks.stream2_chunk(channels[name], self.compression) for name in names]

        self._image(data.get("series_id"), data.get("image_id"), images)

    def _start(self, series: Any, header: SeriesHeader) -> None:
        if self._open is not None:
            self._finish(ended=False)
        stem = output_stem(self.directory, self.name, series=series)
        self._stems[stem] += 1
        if self._stems[stem] > 1:
            stem = f"{stem}_r{self._stems[stem]}"
        self._open = _Series(
            series,
            stem,
            header,
            self.frames_per_file,
            self.overwrite,
            self.names,
            writes_master=self.part[0] == 1,
            other_parts_wait=self.other_parts_wait if self.part[1] > 1 else 0,
        )

    def _image(self, series: Any, frame: Any, images: Any) -> None:
        if type(frame) is not int or frame < 0:
            self.discarded["malformed"] += 1
            return
        if self._open is None:
            # Joined mid-series: the images are written, the master says only what they do.
            self._start(series, SeriesHeader())
        assert self._open is not None
        if series != self._open.series:
            self.discarded["stray"] += 1
            return
        if (frame // self.frames_per_file) % self.part[1] != self.part[0] - 1:
            self.other_parts += 1
            return
        try:
            written = self._open.put(frame + 1, images())
        except DecodeError:
            self.discarded["malformed"] += 1
            return
        except OSError as error:
            raise self._write_error(error) from error
        if written:
            self.images_written += 1
        else:
            self.discarded["duplicate"] += 1

    def _end(self, series: Any) -> None:
        if self._open is None or series != self._open.series:
            self.discarded["stray_end"] += 1
            return
        self._finish(ended=True)

    def _finish(self, ended: bool) -> None:
        series, self._open = self._open, None
        assert series is not None
        try:
            summary = series.finish(ended)
        except OSError as error:
            raise self._write_error(error) from error
        self.series.append(summary)

    def _write_error(self, error: OSError) -> HDF5WriteError:
        """The error to raise after a failed write; the open series is abandoned.

        Its files stay as they were at the last flush: HDF5 cannot finish a file whose
        write failed, so they are closed without another write.
        """
        series, self._open = self._open, None
        if series is not None:
            series.abandon()
        reason = os.strerror(error.errno) if error.errno else str(error).splitlines()[0]
        return HDF5WriteError(
            f"cannot write to '{self.directory}': {reason}; the images flushed before are readable"
        )

    def flush(self) -> None:
        """Hand everything written so far to the files (SWMR readers see it)."""
        if self._open is not None:
            try:
                self._open.flush()
            except OSError as error:
                raise self._write_error(error) from error

    def close(self) -> None:
        """Finish the open series (it did not end: its master says what is missing)."""
        if self._open is not None:
            self._finish(ended=False)
