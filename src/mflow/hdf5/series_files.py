"""The files of a DECTRIS series on disk: its header kept in every data file, the data files
found (of all parts), and master files written from them alone.

Every data file holds the series header it was written under (``/entry/series_header``:
the NeXus values, the goniometer, the channels, the names and the frames per data file as
JSON attributes; the first data file of each part also the header's arrays, compressed),
so the data files of any part suffice to (re)write the master file (`write_masters`), e.g.
when the parts ran on other machines or the part that writes the master died.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._deps import h5py
from ._files import HDF5WriteError, refuse_existing
from .chunks import BITSHUFFLE, filter_options
from .nexus import DataFile, SeriesHeader, write_master

__all__ = [
    "HEADER_GROUP",
    "FoundFiles",
    "MasterSummary",
    "find_data_files",
    "fill_value",
    "missing_images",
    "read_header",
    "store_header",
    "write_masters",
]

#: Where a data file keeps the series header.
HEADER_GROUP = "/entry/series_header"

_DATA_FILE = re.compile(r"^(?P<stem>.+)_data_(?P<number>[0-9]{6,})\.h5$")


def fill_value(dtype: np.dtype) -> Any:
    """The value of a missing pixel: the largest (unsigned) or smallest (signed) value."""
    info = np.iinfo(dtype) if dtype.kind in "iu" else np.finfo(dtype)
    return info.min if dtype.kind == "i" else info.max


def missing_images(arrived: set[int], expected: int | None) -> list[int]:
    """Image numbers (from 1) up to the highest arrived or ``expected`` that did not arrive."""
    last = max(max(arrived, default=0), expected or 0)
    return sorted(set(range(1, last + 1)) - arrived)


def store_header(
    file: Any, header: SeriesHeader, names: Mapping[str, str], frames_per_file: int
) -> None:
    """Keep ``header`` (and what else a master file needs) in the open data file ``file``."""
    group = file.require_group(HEADER_GROUP)
    group.attrs["values"] = json.dumps({k: list(v) for k, v in header.values.items()})
    group.attrs["goniometer"] = json.dumps({k: list(v) for k, v in header.goniometer.items()})
    group.attrs["channels"] = json.dumps(list(header.channels))
    group.attrs["names"] = json.dumps(dict(names))
    group.attrs["frames_per_file"] = frames_per_file
    for name, array in header.arrays.items():
        # Bitshuffle-LZ4: a 16M pixel mask costs milliseconds (gzip: most of a second).
        # (A scalar or empty array has no chunks to filter.)
        options = (
            {"chunks": array.shape, **filter_options(BITSHUFFLE)}
            if array.ndim and array.size
            else {}
        )
        group.create_dataset(name, data=array, **options)


def read_header(file: Any) -> tuple[SeriesHeader, dict[str, str], int] | None:
    """The header, names and frames per file kept in the open data file, if it has them."""
    group = file.get(HEADER_GROUP)
    if group is None:
        return None
    header = SeriesHeader(
        values={k: (v[0], v[1]) for k, v in json.loads(group.attrs["values"]).items()},
        goniometer={k: (v[0], v[1]) for k, v in json.loads(group.attrs["goniometer"]).items()},
        arrays={name: group[name][()] for name in group},
        channels=tuple(json.loads(group.attrs["channels"])),
    )
    return header, json.loads(group.attrs["names"]), int(group.attrs["frames_per_file"])


@dataclass
class FoundFiles:
    """The readable data files of one series and what they hold."""

    stem: str
    files: list[DataFile] = field(default_factory=list)
    #: Image numbers (from 1) written in them.
    arrived: set[int] = field(default_factory=set)
    #: Image shape ((ny, nx) or (channels, ny, nx)) and dtype, from the first file.
    layout: tuple[tuple[int, ...], np.dtype] | None = None
    #: The header kept in the files (the first file that has one; the arrays from the
    #: first file that has them).
    header: tuple[SeriesHeader, dict[str, str], int] | None = None
    #: Data files that could not be read (not yet, or not any more, HDF5 files).
    unreadable: list[str] = field(default_factory=list)


def find_data_files(
    stem: str, skip: Sequence[str] = (), header: bool = False, closed_only: bool = False
) -> FoundFiles:
    """The data files ``<stem>_data_NNNNNN.h5`` on disk (all parts'), except ``skip``.

    Files still being written are read as their last flush left them (under SWMR, without
    a lock: the writer may reopen a file to finish it); with ``closed_only`` they are
    `FoundFiles.unreadable` instead, as for every reader but a SWMR one (a file whose
    writer was killed stays so). ``header``: read the kept header.
    """
    found = FoundFiles(stem)
    pattern = f"{glob.escape(stem)}_data_[0-9]*.h5"
    for path in sorted(glob.glob(pattern)):
        name = os.path.basename(path)
        if name in skip or not _DATA_FILE.match(name):
            continue
        try:
            with h5py.File(path, "r", swmr=not closed_only, locking=False) as f:
                data = f["/entry/data/data"]
                numbers = f["/entry/data/image_nr"][:]
                data_file = DataFile(name, int(data.attrs["image_nr_low"]), int(data.shape[0]))
                found.layout = found.layout or (data.shape[1:], data.dtype)
                if header:
                    _merge_header(found, f)
        except (OSError, KeyError):
            found.unreadable.append(name)
            continue
        found.files.append(data_file)
        found.arrived.update(int(n) for n in numbers if n)
    return found


def _merge_header(found: FoundFiles, file: Any) -> None:
    """Take the header of ``file`` into ``found`` if it still lacks the values or arrays."""
    if found.header is not None and found.header[0].arrays:
        return
    kept = read_header(file)
    if kept is None:
        return
    if found.header is None:
        found.header = kept
    else:
        found.header[0].arrays.update(kept[0].arrays)


@dataclass
class MasterSummary:
    """One master file written by `write_masters`."""

    master: str
    images: int
    missing: list[int]
    data_files: list[str]
    unreadable: list[str]


def write_masters(directory: str, overwrite: bool = False) -> list[MasterSummary]:
    """(Re)write the master file of every series whose data files are in ``directory``.

    Each maps all the data files of its series (of every part), images in image-number
    order, and lists the images that are not in any of them (up to the number the header
    announced). Only closed data files are mapped: a file still marked open for writing
    (its writer was killed; ``h5clear -s`` clears the mark) is listed as unreadable and its
    images as missing. An existing master file is replaced only if ``overwrite``; a series
    whose data files keep no header (written by an older version) is refused.
    """
    stems = sorted(
        {
            os.path.join(directory, match["stem"])
            for match in map(_DATA_FILE.match, os.listdir(directory))
            if match
        }
    )
    if not stems:
        raise HDF5WriteError(f"no data files (NAME_data_NNNNNN.h5) in '{directory}'")
    for stem in stems:
        refuse_existing(f"{stem}_master.h5", overwrite)
    summaries = []
    for stem in stems:
        # Only closed files: one whose writer was killed stays marked open for writing, and
        # every reader but a SWMR one refuses it (and a master over it); it is `unreadable`.
        found = find_data_files(stem, header=True, closed_only=True)
        if found.layout is None or found.header is None:
            raise HDF5WriteError(
                f"the data files of '{stem}' keep no series header (or none is readable)"
            )
        header, names, frames_per_file = found.header
        image_shape, dtype = found.layout
        missing = missing_images(found.arrived, header.expected_images)
        master = f"{stem}_master.h5"
        write_master(
            master,
            header,
            sorted(found.files, key=lambda f: f.first_image),
            frames_per_file,
            image_shape,
            dtype,
            fill_value(dtype),
            missing,
            len(found.arrived),
            names,
        )
        summaries.append(
            MasterSummary(
                master,
                len(found.arrived),
                missing,
                [f.name for f in found.files],
                found.unreadable,
            )
        )
    return summaries
