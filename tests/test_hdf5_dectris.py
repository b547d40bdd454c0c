"""mflow.hdf5 DECTRIS writer: files read back with the real readers (h5py + hdf5plugin, the
bitshuffle library, dectris-compression, nxmx, nexusformat's nxvalidate, silx)."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
pytest.importorskip("hdf5plugin")

import mflow
from mflow.synthetic import SOURCES, Spec, detector_images, encode_with
from mflow.dispatch import dispatch_key
from mflow.errors import ConfigurationError
from mflow.handlers import get_receive_handler, stream2
from mflow.hdf5 import (
    DectrisWriter,
    HDF5WriteError,
    chunks,
)
from mflow.receiver import ReceiveHandler

SHAPE = (40, 56)
NAMES = {"instrument": "TEST BEAMLINE", "source": "TEST SOURCE", "sample": "lysozyme"}


def received(parts: list[Any]) -> tuple[str, Any]:
    """(dispatch key, data) as a stream receives ``parts`` with decode=False."""
    receiver = ReceiveHandler(None)
    receiver.load(parts)
    receiver.decode = False
    key = dispatch_key(receiver)
    return key, get_receive_handler(key)(receiver)


def decoded(parts: list[Any]) -> Any:
    receiver = ReceiveHandler(None)
    receiver.load(parts)
    return get_receive_handler(dispatch_key(receiver))(receiver)


def series(kind: str, images: int, **spec: Any) -> list[list[Any]]:
    """One generated series: header (with the generator's distance and omega scan), images,
    end."""
    source = SOURCES[kind](Spec(images=images, shape=SHAPE, **spec))
    return list(itertools.islice(source, images + 2))


def sent_images(messages: list[list[Any]]) -> list[np.ndarray]:
    """The images of ``messages`` decoded by mflow (V2: channels stacked)."""
    images = []
    for parts in messages[1:-1]:
        data = decoded(parts)
        if "image" in data:
            images.append(data["image"])
        else:
            images.append(
                np.stack(list(data["data"].values())).squeeze(0)
                if len(data["data"]) == 1
                else np.stack(list(data["data"].values()))
            )
    return images


def write_all(directory: Path, messages: list[list[Any]], **options: Any) -> DectrisWriter:
    writer = DectrisWriter(str(directory), names=NAMES, **options)
    for parts in messages:
        writer.write(*received(parts))
    writer.close()
    return writer


CASES = [
    ("dectris", {"compression": c, "header_detail": d})
    for c in ("bslz4", "lz4", "none")
    for d in ("all", "basic", "none")
]
CASES += [("stream2", {"compression": c}) for c in ("bslz4", "lz4", "none")]
CASES += [
    ("dectris", {"compression": "bslz4", "dtype": "uint32"}),
    ("dectris", {"compression": "bslz4", "dtype": "uint8"}),
]


@pytest.mark.parametrize("kind, spec", CASES)
def test_every_image_reads_back_pixel_exact(tmp_path: Path, kind: str, spec: dict) -> None:
    messages = series(kind, 7, **spec)
    writer = write_all(tmp_path, messages, frames_per_file=3)
    assert writer.images_written == 7 and not writer.discarded
    sent = sent_images(messages)
    with h5py.File(tmp_path / "series_1_master.h5") as f:
        data = f["/entry/data/data"]
        assert data.shape == (7, *SHAPE) and data.is_virtual
        for index, image in enumerate(sent):
            np.testing.assert_array_equal(data[index], image)
        assert sorted(k for k in f["/entry/data"] if k.startswith("data_")) == [
            "data_000001",
            "data_000002",
            "data_000003",
        ]
        np.testing.assert_array_equal(f["/entry/data/data_000003"][:], np.stack(sent[6:]))


@pytest.mark.parametrize("compression", ["bslz4", "lz4"])
def test_compressed_images_are_stored_as_they_came(tmp_path: Path, compression: str) -> None:
    messages = series("dectris", 2, compression=compression)
    write_all(tmp_path, messages)
    blob = bytes(decoded(messages[1])["part_3_raw"])
    with h5py.File(tmp_path / "series_1_data_000001.h5") as f:
        data = f["/entry/data/data"]
        filter_id = data.id.get_create_plist().get_filter(0)[0]
        stored = data.id.read_direct_chunk((0, 0, 0))[1]
    if compression == "bslz4":
        assert filter_id == 32008 and stored == blob  # not a byte recompressed
    else:
        assert filter_id == 32004 and stored[16:] == blob  # only framed for the filter


def test_independent_decoders_agree_on_the_stored_chunks(tmp_path: Path) -> None:
    bitshuffle = pytest.importorskip("bitshuffle")
    dectris = pytest.importorskip("dectris.compression")
    messages = series("stream2", 3, compression="bslz4")
    write_all(tmp_path, messages)
    with h5py.File(tmp_path / "series_1_data_000001.h5") as f:
        data = f["/entry/data/data"]
        for row, image in enumerate(sent_images(messages)):
            chunk = data.id.read_direct_chunk((row, 0, 0))[1]
            ours = bitshuffle.decompress_lz4(
                np.frombuffer(chunk[12:], np.uint8), SHAPE, np.dtype("<u2"), 0
            )
            theirs = np.frombuffer(dectris.decompress(chunk, "bslz4", elem_size=2), "<u2")
            np.testing.assert_array_equal(ours, image)
            np.testing.assert_array_equal(theirs.reshape(SHAPE), image)


def _bslz4_dimage(blob: bytes, image: np.ndarray) -> list[Any]:
    y, x = image.shape
    return encode_with(
        "dimage-1.0",
        {
            "header": {"htype": "dimage-1.0", "series": 1, "frame": 0, "hash": ""},
            "part_2": {
                "htype": "dimage_d-1.0",
                "shape": [x, y],
                "type": "uint16",
                "encoding": "bs16-lz4<",
                "size": len(blob),
            },
            "part_3_raw": blob,
            "part_4": {"htype": "dconfig-1.0"},
        },
    )


@pytest.mark.parametrize("variant", ["zeroed", "headerless"])
def test_blobs_without_a_usable_header_get_a_correct_one(tmp_path: Path, variant: str) -> None:
    image = detector_images(SHAPE, "uint16", 1)[0]
    blob = mflow.codecs.encode_bslz4(image)
    blob = bytes(12) + blob[12:] if variant == "zeroed" else blob[12:]
    header = encode_with(
        "dheader-1.0", {"header": {"htype": "dheader-1.0", "series": 1, "header_detail": "none"}}
    )
    write_all(tmp_path, [header, _bslz4_dimage(blob, image)])
    with h5py.File(tmp_path / "series_1_master.h5") as f:
        np.testing.assert_array_equal(f["/entry/data/data"][0], image)


def test_multi_threshold_images_are_one_chunk_per_channel(tmp_path: Path) -> None:
    frames = detector_images(SHAPE, "uint16", 4)
    start = {
        "type": "start",
        "series_id": 3,
        "series_unique_id": "u3",
        "channels": ["threshold_1", "threshold_2"],
        "image_size_x": SHAPE[1],
        "image_size_y": SHAPE[0],
        "number_of_images": 2,
        "image_dtype": "uint16",
        "threshold_energy": {"threshold_1": 6000.0, "threshold_2": 9000.0},
    }
    messages = [[stream2.encode_stream2(start, None)]]
    for image_id in range(2):
        data = {f"threshold_{c + 1}": frames[2 * image_id + c] for c in range(2)}
        messages.append(
            [
                stream2.encode_stream2(
                    {
                        "type": "image",
                        "series_id": 3,
                        "series_unique_id": "u3",
                        "image_id": image_id,
                        "data": data,
                    },
                    "bslz4",
                )
            ]
        )
    messages.append([stream2.encode_stream2({"type": "end", "series_id": 3}, None)])
    write_all(tmp_path, messages)
    with h5py.File(tmp_path / "series_3_master.h5") as f:
        data = f["/entry/data/data"]
        assert data.shape == (2, 2, *SHAPE)
        np.testing.assert_array_equal(data[:], np.stack(frames).reshape(2, 2, *SHAPE))
        np.testing.assert_array_equal(
            f["/entry/instrument/detector/threshold_energy"][:], [6000.0, 9000.0]
        )
    with h5py.File(tmp_path / "series_3_data_000001.h5") as f:
        assert f["/entry/data/data"].chunks == (1, 1, *SHAPE)


def test_master_follows_the_neggia_rules(tmp_path: Path) -> None:
    write_all(tmp_path, series("dectris", 5, header_detail="all"), frames_per_file=2)
    with h5py.File(tmp_path / "series_1_master.h5") as f:
        assert f.id.get_create_plist().get_version()[0] in (0, 2, 3)  # superblock
        specific = f["/entry/instrument/detector/detectorSpecific"]
        assert specific["nimages"][()] == 5 and specific["ntrigger"][()] == 1
        mask = specific["pixel_mask"]
        assert mask.dtype == np.uint32 and mask.chunks is None and mask.shape == SHAPE
        for number in (1, 2, 3):
            data = f[f"/entry/data/data_{number:06d}"]
            assert data.chunks == (1, *SHAPE) and data.dtype.kind == "u"
            assert data.id.get_create_plist().get_filter(0)[0] in (32008, 32004)
            assert data.attrs["image_nr_low"] == 2 * number - 1
            assert data.attrs["image_nr_high"] == min(2 * number, 5)
        assert f["/entry/data/data_000001"].maxshape[0] == 2  # fixed frames per data file


def test_master_is_valid_nxmx_for_the_nxmx_reader(tmp_path: Path) -> None:
    nxmx = pytest.importorskip("nxmx")
    write_all(tmp_path, series("dectris", 4))
    with h5py.File(tmp_path / "series_1_master.h5") as f:
        entry = nxmx.NXmx(f).entries[0]
        assert entry.definition == "NXmx"
        detector = entry.instruments[0].detectors[0]
        assert detector.sensor_material == "Si"
        module = detector.modules[0]
        assert list(module.data_size) == list(SHAPE)
        chain = nxmx.get_dependency_chain(module.fast_pixel_direction)
        assert [t.path.rsplit("/", 1)[1] for t in chain] == [
            "fast_pixel_direction",
            "module_offset",
            "translation",
        ]
        sample_chain = nxmx.get_dependency_chain(entry.samples[0].depends_on)
        omega = sample_chain[0]
        assert omega.path.endswith("omega") and omega[()].shape == (4,)
        np.testing.assert_allclose(omega[()].magnitude, [0.0, 0.1, 0.2, 0.3])
        assert entry.instruments[0].beams[0].incident_wavelength.magnitude == 1.0


@pytest.mark.parametrize("kind", ["dectris", "stream2"])
def test_nxvalidate_reports_no_errors(tmp_path: Path, kind: str) -> None:
    nxvalidate = shutil.which("nxvalidate", path=os.path.dirname(sys.executable))
    if nxvalidate is None:
        pytest.skip("nexusformat's nxvalidate is not installed")
    write_all(tmp_path, series(kind, 3))
    result = subprocess.run(
        [nxvalidate, "-a", "NXmx", str(tmp_path / "series_1_master.h5")],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert "Total number of errors: 0" in result.stdout + result.stderr, result.stdout


def test_silx_finds_the_default_nxdata(tmp_path: Path) -> None:
    pytest.importorskip("silx")
    from silx.io import nxdata
    from silx.io import open as silx_open

    write_all(tmp_path, series("stream2", 3))
    with silx_open(str(tmp_path / "series_1_master.h5")) as f:
        default = nxdata.get_default(f)
        assert default is not None and default.is_valid
        assert default.signal.shape == (3, *SHAPE) and default.interpretation == "image"


def test_missing_images_are_fill_values_and_listed(tmp_path: Path) -> None:
    messages = series("dectris", 6)
    kept = [m for i, m in enumerate(messages) if i not in (2, 6)]  # images 2 and 6 lost
    writer = write_all(tmp_path, kept)
    assert writer.series[0].missing == [2, 6]
    with h5py.File(tmp_path / "series_1_master.h5") as f:
        data = f["/entry/data/data"]
        assert data.shape[0] == 5  # exactly the frames up to the last one written
        assert (data[1] == np.iinfo(np.uint16).max).all()
        specific = f["/entry/instrument/detector/detectorSpecific"]
        assert list(specific["missing_images"][:]) == [2, 6]
    with h5py.File(tmp_path / "series_1_data_000001.h5") as f:
        assert list(f["/entry/data/image_nr"][:]) == [1, 0, 3, 4, 5]


def test_stray_images_of_an_old_series_are_discarded_and_counted(tmp_path: Path) -> None:
    first, second = series("dectris", 3), series("dectris", 2)
    second = [received(m) for m in second]
    for _, data in second:
        data["header"]["series"] = 2
    writer = DectrisWriter(str(tmp_path), names=NAMES)
    for parts in first[:2]:  # series 1 aborted after one image
        writer.write(*received(parts))
    writer.write(*second[0])
    writer.write(*received(first[2]))  # a late image of series 1
    for message in second[1:]:
        writer.write(*message)
    writer.close()
    assert writer.discarded == {"stray": 1}
    assert [(s.series, s.images_written, s.ended) for s in writer.series] == [
        (1, 1, False),
        (2, 2, True),
    ]
    assert writer.series[0].missing == [2, 3]


def test_a_series_number_used_again_gets_new_files(tmp_path: Path) -> None:
    messages = series("dectris", 2)
    writer = write_all(tmp_path, messages + messages)
    assert [Path(s.master).name for s in writer.series] == [
        "series_1_master.h5",
        "series_1_r2_master.h5",
    ]


def test_existing_files_are_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "series_1_master.h5").write_bytes(b"precious")
    with pytest.raises(HDF5WriteError, match="exists"):
        write_all(tmp_path, series("dectris", 1))
    assert (tmp_path / "series_1_master.h5").read_bytes() == b"precious"
    write_all(tmp_path, series("dectris", 1), overwrite=True)
    assert h5py.is_hdf5(tmp_path / "series_1_master.h5")


@pytest.mark.parametrize(
    "pattern, series_id", [("{series}", "../escape"), ("{series}", "/tmp/abs"), ("../{series}", 1)]
)
def test_names_cannot_leave_the_directory(tmp_path: Path, pattern: str, series_id: Any) -> None:
    writer = DectrisWriter(str(tmp_path / "out"), name=pattern)
    with pytest.raises(ConfigurationError):
        writer.write("dseries_end-1.0", {"header": {}})  # nothing open: fine
        writer.write(
            *received(
                encode_with(
                    "dheader-1.0",
                    {
                        "header": {
                            "htype": "dheader-1.0",
                            "series": series_id,
                            "header_detail": "none",
                        }
                    },
                )
            )
        )
    assert list(tmp_path.iterdir()) == []


def test_a_swmr_reader_sees_frames_arrive(tmp_path: Path) -> None:
    messages = series("dectris", 4)
    writer = DectrisWriter(str(tmp_path), names=NAMES)
    for parts in messages[:3]:
        writer.write(*received(parts))
    writer.flush()
    path = tmp_path / "series_1_data_000001.h5"
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        data = f["/entry/data/data"]
        assert data.shape[0] == 2
        writer.write(*received(messages[3]))
        writer.flush()
        data.refresh()
        assert data.shape[0] == 3
        np.testing.assert_array_equal(data[2], sent_images(messages)[2])
    writer.close()


def test_chunk_framing_of_a_plain_lz4_block() -> None:
    image = detector_images(SHAPE, "uint16", 1)[0]
    chunk = chunks.dimage_chunk(
        {"shape": [SHAPE[1], SHAPE[0]], "type": "uint16", "encoding": "lz4<"},
        mflow.codecs.encode_lz4_block(image),
        "bslz4",
    )
    np.testing.assert_array_equal(mflow.codecs.decode_hdf5_lz4(chunk.data, "<u2", SHAPE), image)


def _iter_cases() -> Iterator[str]:  # keeps the parameter list honest
    yield from (kind for kind, _ in CASES)


def test_every_generated_type_of_dectris_stream_is_covered() -> None:
    assert set(_iter_cases()) == {"dectris", "stream2"}


def test_a_part_alone_leaves_a_master_that_names_the_other_parts_images(tmp_path: Path) -> None:
    writer = write_all(tmp_path, series("dectris", 5), frames_per_file=2, part=(1, 2))
    assert writer.images_written == 3 and writer.other_parts == 2
    assert writer.series[0].missing == [3, 4]  # data file 2 belongs to the part that is absent
    with h5py.File(tmp_path / "series_1_master.h5") as f:
        data = f["/entry/data/data"]
        assert data.shape[0] == 5 and (data[2] == np.iinfo(np.uint16).max).all()


def test_a_scalar_header_array_is_kept_without_chunks(tmp_path):
    from mflow.hdf5.nexus import SeriesHeader
    from mflow.hdf5.series_files import read_header, store_header

    header = SeriesHeader(values={}, arrays={"flatfield": np.array(1.5, np.float32)})
    with h5py.File(tmp_path / "data.h5", "w") as f:
        store_header(f, header, {}, 10)
    with h5py.File(tmp_path / "data.h5") as f:
        kept = read_header(f)
    assert kept is not None and kept[0].arrays["flatfield"][()] == np.float32(1.5)
