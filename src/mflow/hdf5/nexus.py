"""The NXmx master file of a DECTRIS series: header values → NeXus, data files → one dataset.

Every value comes from the series header (the ``dheader-1.0`` configuration part or the
Stream V2 start message) with the units below; a value the header lacks is left out, never
invented. `HEADER_FIELDS` is the whole mapping (paths relative to ``/entry``):

=====================================================  ==============================  ===============================  ========
NeXus field                                            Stream V1 configuration key     Stream V2 start key              units
=====================================================  ==============================  ===============================  ========
start_time                                             data_collection_date            arm_date
instrument/beam/incident_wavelength                    wavelength                      incident_wavelength              angstrom
instrument/detector/beam_center_x                      beam_center_x                   beam_center_x                    pixel
instrument/detector/beam_center_y                      beam_center_y                   beam_center_y                    pixel
instrument/detector/count_time                         count_time                      count_time                       s
instrument/detector/frame_time                         frame_time                      frame_time                       s
instrument/detector/detector_readout_time              detector_readout_time           detector_readout_time            s
instrument/detector/distance                           detector_distance               detector_distance, else
                                                                                       detector_translation[2]          m
instrument/detector/x_pixel_size                       x_pixel_size                    pixel_size_x                     m
instrument/detector/y_pixel_size                       y_pixel_size                    pixel_size_y                     m
instrument/detector/sensor_material                    sensor_material                 sensor_material
instrument/detector/sensor_thickness                   sensor_thickness                sensor_thickness                 m
instrument/detector/bit_depth_image                    bit_depth_image                 bit_depth_image
instrument/detector/bit_depth_readout                  bit_depth_readout               bit_depth_readout
instrument/detector/saturation_value                   countrate_correction_count_     saturation_value
                                                       cutoff
instrument/detector/threshold_energy                   threshold_energy                threshold_energy (per channel)   eV
instrument/detector/description                        description                     detector_description
instrument/detector/detector_number                    detector_number                 detector_serial_number
instrument/detector/countrate_correction_applied       countrate_correction_applied    countrate_correction_enabled
instrument/detector/flatfield_applied                  flatfield_correction_applied    flatfield_enabled
instrument/detector/pixel_mask_applied                 pixel_mask_applied              pixel_mask_enabled
instrument/detector/virtual_pixel_correction_applied   virtual_pixel_correction_       virtual_pixel_interpolation_
                                                       applied                         enabled
…/detectorSpecific/photon_energy                       photon_energy                   incident_energy                  eV
…/detectorSpecific/nimages                             nimages                         number_of_images
…/detectorSpecific/ntrigger                            ntrigger                        ntrigger (1 when absent:
                                                                                       number_of_images is the total)
…/detectorSpecific/x_pixels_in_detector                x_pixels_in_detector            image_size_x
…/detectorSpecific/y_pixels_in_detector                y_pixels_in_detector            image_size_y
…/detectorSpecific/software_version                    software_version                software_version
…/detectorSpecific/eiger_fw_version                    eiger_fw_version                eiger_fw_version
…/detectorSpecific/data_collection_date                data_collection_date            arm_date
…/detectorSpecific/series_unique_id                                                    series_unique_id
sample/transformations/<axis>                          <axis>_start, <axis>_increment  goniometer.<axis>.start,         deg
                                                       (omega, chi, phi)               .increment
…/detectorSpecific/pixel_mask (uint32, contiguous;     pixel mask part (all)           pixel_mask (per channel, or-ed)
also instrument/detector/pixel_mask)
…/detectorSpecific/flatfield                           flatfield part (all)            flatfield (first channel)
…/detectorSpecific/countrate_correction_table          count-rate table part (all)     countrate_correction_lookup_
                                                                                       table
=====================================================  ==============================  ===============================  ========

(``…`` is ``instrument/detector``.) The geometry follows NXmx's McStas frame: the detector
``depends_on`` a translation by ``distance`` along the beam (z); its one module's
``fast_pixel_direction`` is −x and ``slow_pixel_direction`` −y (the image as seen from the
sample), each the pixel size long, from a ``module_offset`` that puts the beam centre on
the beam. A rotation axis (vector −x) gets one angle per image when its increment is not
zero, else its one fixed angle. Axes chain phi → chi → omega.

``/entry/data/data`` is a virtual dataset over every data file (what DIALS reads) and
``/entry/data/data_000001``… are external links to each data file's ``/entry/data/data``
(what XDS' neggia plugin reads).
"""  # noqa: E501 - the table of header fields is wider than a code line, for readability

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._deps import h5py

__all__ = ["HEADER_FIELDS", "DataFile", "SeriesHeader", "nexus_values", "write_master"]

_DET = "instrument/detector"
_SPECIFIC = "instrument/detector/detectorSpecific"

#: (NeXus path under /entry, Stream V1 configuration key, Stream V2 start key, units).
HEADER_FIELDS: tuple[tuple[str, str | None, str | None, str | None], ...] = (
    ("start_time", "data_collection_date", "arm_date", None),
    ("instrument/beam/incident_wavelength", "wavelength", "incident_wavelength", "angstrom"),
    (f"{_DET}/beam_center_x", "beam_center_x", "beam_center_x", "pixel"),
    (f"{_DET}/beam_center_y", "beam_center_y", "beam_center_y", "pixel"),
    (f"{_DET}/count_time", "count_time", "count_time", "s"),
    (f"{_DET}/frame_time", "frame_time", "frame_time", "s"),
    (f"{_DET}/detector_readout_time", "detector_readout_time", "detector_readout_time", "s"),
    (f"{_DET}/distance", "detector_distance", "detector_distance", "m"),
    (f"{_DET}/x_pixel_size", "x_pixel_size", "pixel_size_x", "m"),
    (f"{_DET}/y_pixel_size", "y_pixel_size", "pixel_size_y", "m"),
    (f"{_DET}/sensor_material", "sensor_material", "sensor_material", None),
    (f"{_DET}/sensor_thickness", "sensor_thickness", "sensor_thickness", "m"),
    (f"{_DET}/bit_depth_image", "bit_depth_image", "bit_depth_image", None),
    (f"{_DET}/bit_depth_readout", "bit_depth_readout", "bit_depth_readout", None),
    (f"{_DET}/saturation_value", "countrate_correction_count_cutoff", "saturation_value", None),
    (f"{_DET}/threshold_energy", "threshold_energy", "threshold_energy", "eV"),
    (f"{_DET}/description", "description", "detector_description", None),
    (f"{_DET}/detector_number", "detector_number", "detector_serial_number", None),
    (
        f"{_DET}/countrate_correction_applied",
        "countrate_correction_applied",
        "countrate_correction_enabled",
        None,
    ),
    (f"{_DET}/flatfield_applied", "flatfield_correction_applied", "flatfield_enabled", None),
    (f"{_DET}/pixel_mask_applied", "pixel_mask_applied", "pixel_mask_enabled", None),
    (
        f"{_DET}/virtual_pixel_correction_applied",
        "virtual_pixel_correction_applied",
        "virtual_pixel_interpolation_enabled",
        None,
    ),
    (f"{_SPECIFIC}/photon_energy", "photon_energy", "incident_energy", "eV"),
    (f"{_SPECIFIC}/nimages", "nimages", "number_of_images", None),
    (f"{_SPECIFIC}/ntrigger", "ntrigger", "ntrigger", None),
    (f"{_SPECIFIC}/x_pixels_in_detector", "x_pixels_in_detector", "image_size_x", None),
    (f"{_SPECIFIC}/y_pixels_in_detector", "y_pixels_in_detector", "image_size_y", None),
    (f"{_SPECIFIC}/software_version", "software_version", "software_version", None),
    (f"{_SPECIFIC}/eiger_fw_version", "eiger_fw_version", "eiger_fw_version", None),
    (f"{_SPECIFIC}/data_collection_date", "data_collection_date", "arm_date", None),
    (f"{_SPECIFIC}/series_unique_id", None, "series_unique_id", None),
)

_AXES = ("phi", "chi", "omega")  # innermost first: each depends on the next
_ROTATION_VECTOR = (-1.0, 0.0, 0.0)
_NXDETECTOR_ROOT = "/entry/instrument/detector"


@dataclass
class SeriesHeader:
    """What a series header says, in NeXus terms (see `nexus_values`)."""

    values: dict[str, tuple[Any, str | None]] = field(default_factory=dict)
    goniometer: dict[str, tuple[float, float]] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    channels: tuple[str, ...] = ()

    def value(self, path: str) -> Any:
        """The value of the NeXus field ``path`` (under /entry), or ``None``."""
        entry = self.values.get(path)
        return None if entry is None else entry[0]

    @property
    def expected_images(self) -> int | None:
        """nimages × ntrigger when the header says both."""
        nimages, ntrigger = (
            self.value(f"{_SPECIFIC}/nimages"),
            self.value(f"{_SPECIFIC}/ntrigger"),
        )
        if isinstance(nimages, int) and isinstance(ntrigger, int):
            return nimages * ntrigger
        return None


def _plain(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _usable(value: Any) -> bool:
    if isinstance(value, (bool, int, float, str)):
        return not (isinstance(value, str) and not value)
    if isinstance(value, (list, tuple)):
        return bool(value) and all(isinstance(v, (int, float)) for v in value)
    return False


def nexus_values(header: Mapping[str, Any], version: int) -> SeriesHeader:
    """The `SeriesHeader` of a V1 configuration (``version`` 1) or V2 start message (2)."""
    column = 1 if version == 1 else 2
    result = SeriesHeader()
    for row in HEADER_FIELDS:
        key = row[column]
        if key is None or key not in header:
            continue
        value = _plain(header[key])
        if version == 2 and key == "threshold_energy" and isinstance(value, Mapping):
            thresholds = [value[c] for c in header.get("channels", value) if c in value]
            value = thresholds[0] if len(thresholds) == 1 else thresholds
        if _usable(value):
            result.values[row[0]] = (value, row[3])
    if version == 2:
        translation = header.get("detector_translation")
        distance = f"{_DET}/distance"
        if (
            distance not in result.values
            and isinstance(translation, (list, tuple))
            and len(translation) == 3
            and _usable(list(translation))
        ):
            result.values[distance] = (float(translation[2]), "m")
        if f"{_SPECIFIC}/nimages" in result.values and "ntrigger" not in header:
            result.values[f"{_SPECIFIC}/ntrigger"] = (1, None)
        channels = header.get("channels")
        if isinstance(channels, (list, tuple)) and all(isinstance(c, str) for c in channels):
            result.channels = tuple(channels)
        goniometer = header.get("goniometer")
        for axis in _AXES:
            spec = goniometer.get(axis) if isinstance(goniometer, Mapping) else None
            if isinstance(spec, Mapping) and _usable(spec.get("start")):
                result.goniometer[axis] = (
                    float(spec["start"]),
                    float(spec.get("increment") or 0.0),
                )
    else:
        for axis in _AXES:
            start = header.get(f"{axis}_start")
            if isinstance(start, (int, float)) and not isinstance(start, bool):
                increment = header.get(f"{axis}_increment")
                step = float(increment) if isinstance(increment, (int, float)) else 0.0
                result.goniometer[axis] = (float(start), step)
    return result


@dataclass(frozen=True)
class DataFile:
    """One data file of a series: its file name (in the master's directory) and rows."""

    name: str
    first_image: int
    rows: int


def _write(group: Any, path: str, value: Any, units: str | None = None) -> Any:
    if isinstance(value, str):
        dataset = group.create_dataset(path, data=value, dtype=h5py.string_dtype())
    else:
        dataset = group.create_dataset(path, data=value)
    if units is not None:
        dataset.attrs["units"] = units
    return dataset


def _group(parent: Any, name: str, nx_class: str) -> Any:
    group = parent.require_group(name)
    group.attrs["NX_class"] = nx_class
    return group


def _transformation(
    group: Any,
    name: str,
    value: Any,
    kind: str,
    vector: Sequence[float],
    depends_on: str,
    units: str,
    offset: Sequence[float] | None = None,
) -> None:
    dataset = group.create_dataset(name, data=value)
    dataset.attrs["transformation_type"] = kind
    dataset.attrs["vector"] = np.array(vector, dtype=float)
    dataset.attrs["depends_on"] = depends_on
    dataset.attrs["units"] = units
    if offset is not None:
        dataset.attrs["offset"] = np.array(offset, dtype=float)
        dataset.attrs["offset_units"] = "m"


def _detector_geometry(detector: Any, header: SeriesHeader, shape: tuple[int, int]) -> None:
    transformations = _group(detector, "transformations", "NXtransformations")
    distance = header.value(f"{_DET}/distance")
    chain_end = "."
    if distance is not None:
        _transformation(
            transformations, "translation", float(distance), "translation", (0, 0, 1), ".", "m"
        )
        chain_end = f"{_NXDETECTOR_ROOT}/transformations/translation"
    detector.create_dataset("depends_on", data=chain_end, dtype=h5py.string_dtype())
    module = _group(detector, "module", "NXdetector_module")
    module.create_dataset("data_origin", data=np.array([0, 0], dtype=np.int64))
    module.create_dataset("data_size", data=np.array(shape, dtype=np.int64))
    x_size, y_size = header.value(f"{_DET}/x_pixel_size"), header.value(f"{_DET}/y_pixel_size")
    centre = header.value(f"{_DET}/beam_center_x"), header.value(f"{_DET}/beam_center_y")
    pixel_origin = chain_end
    if None not in centre and x_size is not None and y_size is not None:
        offset = (float(centre[0]) * float(x_size), float(centre[1]) * float(y_size), 0.0)
        _transformation(
            module, "module_offset", 0.0, "translation", (1, 0, 0), chain_end, "m", offset
        )
        pixel_origin = f"{_NXDETECTOR_ROOT}/module/module_offset"
    for name, size, vector in (
        ("fast_pixel_direction", x_size, (-1, 0, 0)),
        ("slow_pixel_direction", y_size, (0, -1, 0)),
    ):
        if size is not None:
            _transformation(
                module, name, float(size), "translation", vector, pixel_origin, "m", (0.0, 0.0, 0.0)
            )


def _sample(entry: Any, header: SeriesHeader, images: int) -> None:
    sample = _group(entry, "sample", "NXsample")
    axes = [axis for axis in _AXES if axis in header.goniometer]
    depends_on = f"/entry/sample/transformations/{axes[0]}" if axes else "."
    sample.create_dataset("depends_on", data=depends_on, dtype=h5py.string_dtype())
    if not axes:
        return
    transformations = _group(sample, "transformations", "NXtransformations")
    for index, axis in enumerate(axes):
        start, increment = header.goniometer[axis]
        following = (
            f"/entry/sample/transformations/{axes[index + 1]}" if index + 1 < len(axes) else "."
        )
        value: Any = start
        if increment:
            value = start + increment * np.arange(max(images, 1), dtype=float)
        _transformation(
            transformations, axis, value, "rotation", _ROTATION_VECTOR, following, "deg"
        )
        if increment:
            end = transformations.create_dataset(f"{axis}_end", data=value + increment)
            end.attrs["units"] = "deg"
            step = transformations.create_dataset(f"{axis}_increment_set", data=increment)
            step.attrs["units"] = "deg"


def _estimated_end(header: SeriesHeader) -> str | None:
    """start_time + expected images × frame_time, when the header gives all three."""
    start, frame_time = header.value("start_time"), header.value(f"{_DET}/frame_time")
    images = header.expected_images
    if not isinstance(start, str) or frame_time is None or images is None:
        return None
    try:
        begin = datetime.datetime.fromisoformat(start.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (begin + datetime.timedelta(seconds=images * float(frame_time))).isoformat()


def _virtual_dataset(
    group: Any,
    files: Sequence[DataFile],
    frames_per_file: int,
    image_shape: tuple[int, ...],
    dtype: np.dtype,
    fillvalue: Any,
) -> None:
    total = max((f.first_image - 1 + f.rows for f in files), default=0)
    layout = h5py.VirtualLayout(shape=(total, *image_shape), dtype=dtype)
    for data_file in files:
        start = data_file.first_image - 1
        source = h5py.VirtualSource(
            data_file.name, "/entry/data/data", shape=(data_file.rows, *image_shape)
        )
        layout[start : start + data_file.rows] = source
    dataset = group.create_virtual_dataset("data", layout, fillvalue=fillvalue)
    dataset.attrs["interpretation"] = "image"


def write_master(
    path: str,
    header: SeriesHeader,
    files: Sequence[DataFile],
    frames_per_file: int,
    image_shape: tuple[int, ...],
    dtype: np.dtype,
    fillvalue: Any,
    missing: Sequence[int],
    images_written: int,
    names: Mapping[str, str] | None = None,
) -> None:
    """Write the NXmx master file of a series to ``path`` (atomically: a temporary file is
    renamed), mapping ``files`` (in ``path``'s directory).

    ``image_shape`` is ``(ny, nx)`` or ``(channels, ny, nx)``; ``missing`` lists the image
    numbers (from 1) that did not arrive, up to the expected count when the header gives it.
    ``names`` gives what no header carries and NXmx requires: ``instrument``, ``source`` and
    ``sample`` names (each left out when not given).
    """
    names = names or {}
    temporary = f"{path}.{os.getpid()}.part"  # the process's own: two writers never share it
    try:
        with h5py.File(temporary, "w", libver=("v110", "latest")) as f:
            f.attrs["default"] = "entry"
            entry = _group(f, "entry", "NXentry")
            entry.attrs["default"] = "data"
            _write(entry, "definition", "NXmx")
            for nexus_path, (value, units) in sorted(header.values.items()):
                _write(entry, nexus_path, value, units)
            end = _estimated_end(header)
            if end is not None:
                _write(entry, "end_time_estimated", end)
            instrument = _group(entry, "instrument", "NXinstrument")
            if names.get("instrument"):
                _write(instrument, "name", names["instrument"])
            if names.get("source"):
                _write(_group(entry, "source", "NXsource"), "name", names["source"])
            if "instrument/beam/incident_wavelength" in header.values:
                _group(instrument, "beam", "NXbeam")
            detector = _group(instrument, "detector", "NXdetector")
            specific = _group(detector, "detectorSpecific", "NXcollection")
            _detector_geometry(detector, header, image_shape[-2:])  # type: ignore[arg-type]
            for name, array in sorted(header.arrays.items()):
                specific.create_dataset(name, data=array)  # contiguous: XDS' neggia needs it so
            if "pixel_mask" in header.arrays:
                detector["pixel_mask"] = specific["pixel_mask"]
            if "flatfield" in header.arrays:
                detector["flatfield"] = specific["flatfield"]
            specific.create_dataset("frames_per_data_file", data=frames_per_file)
            specific.create_dataset("images_written", data=images_written)
            specific.create_dataset("missing_images", data=np.array(missing, dtype=np.uint64))
            if header.channels and len(image_shape) == 3:
                specific.create_dataset(
                    "channels", data=list(header.channels), dtype=h5py.string_dtype()
                )
            images = max((f.first_image - 1 + f.rows for f in files), default=0)
            _sample(entry, header, images)
            if names.get("sample"):
                _write(entry, "sample/name", names["sample"])
            data = _group(entry, "data", "NXdata")
            data.attrs["signal"] = "data"
            _virtual_dataset(data, files, frames_per_file, image_shape, dtype, fillvalue)
            for data_file in files:
                number = (data_file.first_image - 1) // frames_per_file + 1
                data[f"data_{number:06d}"] = h5py.ExternalLink(data_file.name, "/entry/data/data")
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    os.replace(temporary, path)
