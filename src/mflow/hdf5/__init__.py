"""NeXus/HDF5 files from detector streams (needs the ``hdf5`` extra: h5py and hdf5plugin).

`DectrisWriter` writes DECTRIS Stream V1 and V2 series as the DECTRIS FileWriter does: an
NXmx master file (a virtual dataset over all data files plus ``data_000001``... links) and
data files holding the compressed images as they came (HDF5 direct chunk write under the
bitshuffle or LZ4 filter), live under SWMR. `BsreadWriter` writes bsread in PSI's
``bs h5`` layout, `ArrayWriter` array-1.0 messages. `StreamWriter` takes any received
message and hands it to the writer of its type. `write_masters` (re)writes the master files
of a directory from the data files alone (of every part of a series written by several
writers). See `mflow.hdf5.nexus` for the header → NeXus table.
"""

from __future__ import annotations

from ._files import HDF5WriteError
from .array import ArrayWriter
from .bsread import BsreadWriter
from .dectris import DectrisWriter, SeriesSummary
from .series_files import MasterSummary, write_masters
from .writer import StreamWriter

__all__ = [
    "ArrayWriter",
    "BsreadWriter",
    "DectrisWriter",
    "HDF5WriteError",
    "MasterSummary",
    "SeriesSummary",
    "StreamWriter",
    "write_masters",
]
