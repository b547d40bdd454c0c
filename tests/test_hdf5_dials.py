"""DIALS (dxtbx) imports a written series and reads every frame as sent.

Runs when ``dials.import`` is on PATH (Debian: ``apt-get install python3-dials``); the
system HDF5 has no bitshuffle filter, so it gets hdf5plugin's through HDF5_PLUGIN_PATH.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

hdf5plugin = pytest.importorskip("hdf5plugin")

from .test_hdf5_dectris import sent_images, series, write_all

DIALS_IMPORT = shutil.which("dials.import")
pytestmark = pytest.mark.skipif(
    DIALS_IMPORT is None, reason="dials.import is not on PATH (Debian: python3-dials)"
)

_READ_FRAMES = """
import sys, numpy
from dxtbx.model.experiment_list import ExperimentListFactory
experiment = ExperimentListFactory.from_filenames([sys.argv[1]])[0]
imageset, detector = experiment.imageset, experiment.detector[0]
frames = [imageset.get_raw_data(i)[0].as_numpy_array() for i in range(len(imageset))]
numpy.save(sys.argv[2], numpy.stack(frames))
print(repr((detector.get_image_size(), detector.get_distance(),
            experiment.beam.get_wavelength(),
            detector.get_beam_centre_px(experiment.beam.get_s0()),
            experiment.scan.get_oscillation())))
"""


def _python_of(script: str) -> str:
    with open(script) as f:
        first = f.readline()
    return first[2:].strip() if first.startswith("#!") else "python3"


def _dials(master: Path) -> tuple[tuple, np.ndarray]:
    """dials.import of ``master`` (it must import one sweep); then dxtbx's geometry
    (image size, distance, wavelength, beam centre, oscillation) and frames."""
    env = {**os.environ, "HDF5_PLUGIN_PATH": hdf5plugin.PLUGIN_PATH}
    assert DIALS_IMPORT is not None
    imported = subprocess.run(
        [DIALS_IMPORT, str(master)],
        cwd=master.parent,
        env=env,
        text=True,
        capture_output=True,
        timeout=55,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    assert "sweep:    1" in imported.stdout, imported.stdout
    frames = master.parent / "frames.npy"
    read = subprocess.run(
        [_python_of(DIALS_IMPORT), "-c", _READ_FRAMES, str(master), str(frames)],
        env=env,
        text=True,
        capture_output=True,
        timeout=55,
        check=False,
    )
    assert read.returncode == 0, read.stderr
    return ast.literal_eval(read.stdout.strip().splitlines()[-1]), np.load(frames)


def _check_geometry(geometry: tuple) -> None:
    """The generator's geometry: 120 mm, 1 Å, centre in the middle, omega 0° + 0.1°."""
    size, distance, wavelength, centre, oscillation = geometry
    assert size == (56, 40) and distance == pytest.approx(120.0)
    assert wavelength == pytest.approx(1.0) and centre == pytest.approx((28.0, 20.0))
    assert oscillation == pytest.approx((0.0, 0.1))


@pytest.mark.parametrize("kind", ["dectris", "stream2"])
def test_dials_imports_the_series_and_reads_every_frame(tmp_path: Path, kind: str) -> None:
    messages = series(kind, 5, header_detail="all") if kind == "dectris" else series(kind, 5)
    write_all(tmp_path, messages, frames_per_file=2)
    geometry, frames = _dials(tmp_path / "series_1_master.h5")
    _check_geometry(geometry)
    np.testing.assert_array_equal(frames, np.stack(sent_images(messages)))


@pytest.mark.parametrize("kind", ["dectris", "stream2"])
def test_a_plain_generated_stream_gives_dials_a_geometry(tools, tmp_path: Path, kind: str) -> None:
    generate = tools(
        "generate", kind, "--shape", "40x56", "--images", "4", "-n", "6", "--wait-for-peer",
        "-a", "tcp://127.0.0.1:*", "--json",
    )  # fmt: skip
    endpoint = generate.endpoint()
    write = tools("write", endpoint, str(tmp_path), "-n", "6", "--json")
    assert write.wait() == 0, write.stderr
    assert generate.wait() == 0, generate.stderr
    geometry, frames = _dials(tmp_path / "series_1_master.h5")
    _check_geometry(geometry)
    assert frames.shape == (4, 40, 56)
