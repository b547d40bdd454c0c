"""Realistic synthetic streams of every built-in message type, as real producers send them.

``mflow generate`` and ``mflow demo`` send these streams; tests and benchmarks use them as
sources of realistic messages. A source is an endless iterator of messages, each a list of
parts ready for one multipart send, encoded by the library's own handlers::

    from mflow import synthetic

    first, messages = synthetic.make_source("dectris", synthetic.Spec(shape=(512, 1024)))
    for parts in itertools.islice(messages, 102):  # one series: header, 100 images, end
        stream.send_parts(parts)

Image payloads look like detector data (Poisson counts on a smooth background, so
compression ratios are realistic) and are computed once: a few distinct frames are cycled,
so generating costs little CPU per message. The DECTRIS Stream V1 messages carry what a
real detector fills in and real consumers (libertem-dectris, ADEiger) require: the
configuration's ``trigger_mode`` and the other SIMPLON keys, and each image's ``hash``,
the hex MD5 of its data part. The DECTRIS headers (V1 configuration, V2 start message)
carry a geometry as an EIGER's does: wavelength, beam centre, pixel size, detector distance
and an omega rotation (start, increment), so a generated series written by ``mflow write``
imports into DIALS.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

import mflow
from mflow import codecs
from mflow.dispatch import SLS
from mflow.errors import ConfigurationError
from mflow.handlers import get_send_handler, stream2
from mflow.handlers.bsread import TYPES

__all__ = [
    "Spec",
    "SOURCES",
    "COMPRESSIONS",
    "make_source",
    "encode_with",
    "detector_images",
    "raw_messages",
    "array_messages",
    "dectris_messages",
    "stream2_messages",
    "bsread_messages",
    "sls_messages",
]

#: Compression choices (`Spec.compression`); each message type maps them to its own names.
COMPRESSIONS = ("none", "lz4", "bslz4")
_DISTINCT_FRAMES = 4


@dataclass(frozen=True)
class Spec:
    """What to generate; every field has a default, and each source uses the ones it needs.

    ``size``: raw-1.0 payload bytes. ``dtype``, ``shape`` (numpy order, rows first):
    arrays and images (``None``: the source's default, e.g. an EIGER2 500K for dectris).
    ``compression``: one of `COMPRESSIONS` (``None``: bslz4 for dectris and stream2, none
    for bsread). ``images``: images per series or acquisition. ``header_detail``: the
    dheader-1.0 detail (``all``, ``basic``, ``none``). ``channels``: bsread channels as
    (name, type, shape). ``legacy``: raw as psi-mflow 1.0's m_generate sent it.
    """

    size: int = 1 << 20
    dtype: str = "uint16"
    shape: tuple[int, ...] | None = None
    compression: str | None = None
    images: int = 100
    header_detail: str = "basic"
    channels: tuple[tuple[str, str, tuple[int, ...]], ...] = ()
    legacy: bool = False


def encode_with(htype: str, message: dict[str, Any]) -> list[Any]:
    """The parts the registered ``htype`` handler sends for ``message``."""
    parts: list[Any] = []
    get_send_handler(htype)(message, lambda part, send_more=False, block=True: parts.append(part))
    return parts


def detector_images(
    shape: tuple[int, ...], dtype: str, count: int = _DISTINCT_FRAMES, seed: int = 0
) -> list[np.ndarray]:
    """``count`` detector-like frames: Poisson counts on a smooth peak, some hot pixels."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape, dtype=np.float32)
    centre = [(n - 1) / 2 for n in shape]
    radius2 = sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True))
    background = 2.0 + 50.0 * np.exp(-radius2 / (2 * (0.1 * max(shape)) ** 2))
    kind = np.dtype(dtype)
    top = np.iinfo(kind).max if kind.kind in "iu" else 1e6
    frames = []
    for _ in range(count):
        frame = rng.poisson(background).astype(np.float64)
        hot = rng.integers(0, frame.size, size=max(1, frame.size // 10000))
        frame.flat[hot] = top
        frames.append(np.minimum(frame, top).astype(kind))
    return frames


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


# ------------------------------------------------------------------------------- sources


def raw_messages(spec: Spec) -> Iterator[list[Any]]:
    """raw-1.0: a header and one payload of ``spec.size`` bytes.

    The 1.0 form (``spec.legacy``) keeps m_generate's message, fixed (bug B22): a
    zero-filled int32 array (the size rounded down to whole values) described by its
    header, so its htype is array-1.0 (1.0 said raw-1.0) and its shape an integer.
    """
    htype = "array-1.0" if spec.legacy else "raw-1.0"
    if spec.legacy:
        count = spec.size // 4
        header: dict[str, Any] = {"htype": htype, "type": "int32", "shape": [1, count]}
        data: Any = bytes(4 * count)
    else:
        header = {"htype": htype}
        data = np.random.default_rng(0).integers(0, 256, spec.size, dtype=np.uint8).tobytes()
    for frame in itertools.count():
        yield encode_with(htype, {"header": {**header, "frame": frame}, "data": [data]})


def array_messages(spec: Spec) -> Iterator[list[Any]]:
    """array-1.0: a header with ``type`` and ``shape`` and one array."""
    shape = spec.shape or (1024,)
    frames = detector_images(shape, spec.dtype)
    header = {"htype": "array-1.0", "type": np.dtype(spec.dtype).name, "shape": list(shape)}
    for frame in itertools.count():
        message = {"header": {**header, "frame": frame}, "data": [frames[frame % len(frames)]]}
        yield encode_with("array-1.0", message)


_DECTRIS_ENCODINGS = {"none": "<", "lz4": "lz4<", "bslz4": None}

#: The simulated experiment's geometry: sample-detector distance (m) and an omega scan
#: (start and increment per image, degrees), so written files give DIALS a geometry.
_DISTANCE = 0.12
_OMEGA_START = 0.0
_OMEGA_INCREMENT = 0.1


def _dectris_header(spec: Spec, series: int, shape: tuple[int, int]) -> dict[str, Any]:
    y, x = shape
    header = {"htype": "dheader-1.0", "series": series, "header_detail": spec.header_detail}
    config = {
        "beam_center_x": x / 2,
        "beam_center_y": y / 2,
        "bit_depth_image": 8 * np.dtype(spec.dtype).itemsize,
        "compression": spec.compression or "bslz4",
        "bit_depth_readout": 12,
        "count_time": 0.001,
        "frame_time": 0.001,
        "nimages": spec.images,
        "ntrigger": 1,
        "trigger_mode": "ints",
        "x_pixels_in_detector": x,
        "y_pixels_in_detector": y,
        "x_pixel_size": 7.5e-5,
        "y_pixel_size": 7.5e-5,
        "sensor_material": "Si",
        "sensor_thickness": 4.5e-4,
        "photon_energy": 12398.4,
        "wavelength": 1.0,
        "detector_distance": _DISTANCE,
        "omega_start": _OMEGA_START,
        "omega_increment": _OMEGA_INCREMENT,
        "detector_number": "SIMULATED-0001",
        "description": "Simulated EIGER (mflow generate)",
        "software_version": mflow.__version__,
        "data_collection_date": _now(),
    }
    message: dict[str, Any] = {"header": header, "part_2": config}
    if spec.header_detail == "all":
        arrays = (
            ("part_3", "part_4_raw", "dflatfield-1.0", np.ones(shape, "<f4")),
            ("part_5", "part_6_raw", "dpixelmask-1.0", np.zeros(shape, "<u4")),
            ("part_7", "part_8_raw", "dcountrate_table-1.0", np.zeros((2, 1000), "<f4")),
        )
        for description, blob, htype, array in arrays:
            rows, columns = array.shape
            message[description] = {
                "htype": htype,
                "shape": [columns, rows],
                "type": array.dtype.name,
            }
            message[blob] = array.tobytes()
    return message


def dectris_messages(spec: Spec) -> Iterator[list[Any]]:
    """DECTRIS Stream V1 series: dheader-1.0, ``spec.images`` × dimage-1.0, dseries_end-1.0."""
    shape = _image_shape(spec, (514, 1030))
    encoding = _DECTRIS_ENCODINGS[spec.compression or "bslz4"]
    images = []
    for image in detector_images(shape, spec.dtype):
        part_2, blob = mflow.dimage_1_0.encode_image(image, encoding)
        images.append((part_2, blob, hashlib.md5(blob).hexdigest()))  # as DECTRIS fills it
    exposure_ns = 1_000_000
    for series in itertools.count(1):
        yield encode_with("dheader-1.0", _dectris_header(spec, series, shape))
        for frame in range(spec.images):
            part_2, blob, digest = images[frame % len(images)]
            start = frame * exposure_ns
            yield encode_with(
                "dimage-1.0",
                {
                    "header": {
                        "htype": "dimage-1.0",
                        "series": series,
                        "frame": frame,
                        "hash": digest,
                    },
                    "part_2": part_2,
                    "part_3_raw": blob,
                    "part_4": {
                        "htype": "dconfig-1.0",
                        "start_time": start,
                        "stop_time": start + exposure_ns,
                        "real_time": exposure_ns,
                    },
                },
            )
        yield encode_with(
            "dseries_end-1.0", {"header": {"htype": "dseries_end-1.0", "series": series}}
        )


def _image_shape(spec: Spec, default: tuple[int, int]) -> tuple[int, int]:
    shape = spec.shape or default
    if len(shape) != 2:
        raise ConfigurationError(f"an image has two dimensions, not {len(shape)}: {shape}")
    rows, columns = shape
    return rows, columns


def _stream2_image(frame: np.ndarray, compression: str) -> Any:
    if compression == "none":
        return frame
    flat = frame.reshape(-1)
    blob = codecs.encode_bslz4(flat) if compression == "bslz4" else codecs.encode_hdf5_lz4(flat)
    modifier = frame.itemsize if compression == "bslz4" else 0
    return stream2.CompressedData(
        algorithm=compression, modifier=modifier, data=blob, dtype=frame.dtype, shape=frame.shape
    )


def _stream2_start(spec: Spec, series: int, shape: tuple[int, int]) -> dict[str, Any]:
    y, x = shape
    return {
        "type": "start",
        "series_id": series,
        "series_unique_id": f"mflow-generate-{series}",
        "arm_date": datetime.datetime.now(datetime.timezone.utc),
        "channels": ["threshold_1"],
        "image_size_x": x,
        "image_size_y": y,
        "image_dtype": np.dtype(spec.dtype).name,
        "number_of_images": spec.images,
        "count_time": 0.001,
        "frame_time": 0.001,
        "beam_center_x": x / 2,
        "beam_center_y": y / 2,
        "pixel_size_x": 7.5e-5,
        "pixel_size_y": 7.5e-5,
        "incident_energy": 12398.4,
        "incident_wavelength": 1.0,
        "detector_translation": [0.0, 0.0, _DISTANCE],
        "goniometer": {"omega": {"start": _OMEGA_START, "increment": _OMEGA_INCREMENT}},
        "detector_description": "Simulated EIGER2 (mflow generate)",
        "detector_serial_number": "SIMULATED-0002",
        "threshold_energy": {"threshold_1": 6200.0},
        "sensor_material": "Si",
        "sensor_thickness": 4.5e-4,
        "saturation_value": 65535,
        "countrate_correction_enabled": False,
        "flatfield_enabled": False,
        "pixel_mask_enabled": False,
        "user_data": None,
    }


def stream2_messages(spec: Spec) -> Iterator[list[Any]]:
    """DECTRIS Stream V2 series: start, ``spec.images`` image messages, end (one CBOR part each)."""
    shape = _image_shape(spec, (514, 1030))
    compression = spec.compression or "bslz4"
    frames = [_stream2_image(frame, compression) for frame in detector_images(shape, spec.dtype)]
    tick = 50_000_000
    for series in itertools.count(1):
        unique = f"mflow-generate-{series}"
        yield [stream2.encode_stream2(_stream2_start(spec, series, shape), None)]
        date = datetime.datetime.now(datetime.timezone.utc)
        for image in range(spec.images):
            start = image * tick // 1000
            yield [
                stream2.encode_stream2(
                    {
                        "type": "image",
                        "series_id": series,
                        "series_unique_id": unique,
                        "image_id": image,
                        "real_time": [tick // 1000, tick],
                        "series_date": date,
                        "start_time": [start, tick],
                        "stop_time": [start + tick // 1000, tick],
                        "data": {"threshold_1": frames[image % len(frames)]},
                        "user_data": None,
                    },
                    None,
                )
            ]
        yield [
            stream2.encode_stream2(
                {"type": "end", "series_id": series, "series_unique_id": unique}, None
            )
        ]


_BSREAD_COMPRESSIONS = {"none": "none", "lz4": "lz4", "bslz4": "bitshuffle_lz4"}
_BSREAD_CHANNELS = (
    ("SIM:ENERGY", "float64", (1,)),
    ("SIM:CHARGE", "float32", (1,)),
    ("SIM:COUNTER", "int64", (1,)),
    ("SIM:STATUS", "string", (1,)),
    ("SIM:WAVEFORM", "float64", (1024,)),
    ("SIM:IMAGE", "uint16", (64, 64)),
)


def _bsread_values(kind: str, shape: tuple[int, ...]) -> Callable[[int], Any]:
    """A function pulse_id → value of a channel of ``kind`` and ``shape``."""
    if kind == "string":
        return lambda pulse: f"OK pulse {pulse}"
    if kind == "bool":
        return lambda pulse: bool(pulse % 2)
    if shape == (1,):
        dtype = np.dtype(TYPES.get(kind, "f8"))
        return lambda pulse: dtype.type(100 + 10 * np.sin(pulse / 100))
    frames = detector_images(shape, TYPES.get(kind, kind))
    return lambda pulse: frames[pulse % len(frames)]


def bsread_messages(spec: Spec) -> Iterator[list[Any]]:
    """bsread (bsr_m-1.1): one message per pulse id, values of ``spec.channels``."""
    compression = _BSREAD_COMPRESSIONS[spec.compression or "none"]
    channels = spec.channels or _BSREAD_CHANNELS
    values = {name: _bsread_values(kind, shape) for name, kind, shape in channels}
    data_header = {
        "channels": [
            {"name": name, "type": kind, "compression": compression} for name, kind, _ in channels
        ]
    }
    for pulse in itertools.count():
        yield encode_with(
            "bsr_m-1.1",
            {
                "pulse_id": pulse,
                "data_header": data_header,
                "data": {name: value(pulse) for name, value in values.items()},
            },
        )


_SLS_END = {
    "jsonversion": 5,
    "bitmode": 0,
    "fileIndex": 0,
    "detshape": [0, 0],
    "shape": [0, 0],
    "size": 0,
    "acqIndex": 0,
    "frameIndex": 0,
    "progress": 0,
    "fname": "",
    "data": 0,
    "completeImage": 0,
}


def sls_messages(spec: Spec) -> Iterator[list[Any]]:
    """SLS receiver frames (a JUNGFRAU module by default), an end message after each acquisition."""
    shape = _image_shape(spec, (512, 1024))
    frames = detector_images(shape, spec.dtype)
    for acquisition in itertools.count(1):
        for index in range(spec.images):
            header = {
                "jsonversion": 5,
                "fileIndex": 0,
                "detshape": [1, 1],
                "acqIndex": acquisition,
                "frameIndex": index,
                "progress": 100.0 * (index + 1) / spec.images,
                "fname": "/tmp/mflow-generate",
                "data": 1,
                "completeImage": 1,
                "frameNumber": index + 1,
                "expLength": 0,
                "packetNumber": 128,
                "detSpec1": 0,
                "timestamp": 0,
                "modId": 0,
                "row": 0,
                "column": 0,
                "detSpec2": 0,
                "detSpec3": 0,
                "detSpec4": 0,
                "detType": 3,
                "version": 1,
                "flipRows": 0,
                "quad": 0,
            }
            yield encode_with(SLS, {"header": header, "image": frames[index % len(frames)]})
        yield encode_with(SLS, {"header": dict(_SLS_END), "image": None})


SOURCES: dict[str, Callable[[Spec], Iterator[list[Any]]]] = {
    "raw": raw_messages,
    "array": array_messages,
    "dectris": dectris_messages,
    "stream2": stream2_messages,
    "bsread": bsread_messages,
    "sls": sls_messages,
}
"""Message type name (as ``mflow generate TYPE`` takes it) → source."""


def make_source(kind: str, spec: Spec) -> tuple[list[Any], Iterator[list[Any]]]:
    """The first message of ``kind`` (see `SOURCES`) and all of them (the first again).

    Making the first message checks the spec: a bad one raises `ConfigurationError`.
    """
    source = SOURCES[kind](spec)
    try:
        first = next(source)
    except (TypeError, ValueError) as error:
        raise ConfigurationError(f"cannot generate {kind} messages: {error}") from error
    return first, itertools.chain([first], source)
