"""DIALS (dxtbx) imports the master of a series fanned out over three writer processes and
reads every frame as the detector sent it, in image order.

Runs when ``dials.import`` is on PATH (Debian: ``apt-get install python3-dials``).
"""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from .conftest import send_messages
from .test_distributed import FannedOut, plain
from .test_hdf5_dectris import sent_images, series
from .test_hdf5_dials import _READ_FRAMES, DIALS_IMPORT, _python_of, hdf5plugin

pytestmark = pytest.mark.skipif(
    DIALS_IMPORT is None, reason="dials.import is not on PATH (Debian: python3-dials)"
)


@pytest.mark.parametrize("kind", ["dectris", "stream2"])
def test_dials_imports_a_series_written_by_three_parts(tools, zmq_context, tmp_path: Path, kind):
    spec = {"header_detail": "all"} if kind == "dectris" else {}
    messages = plain(series(kind, 6, **spec))
    # Each writer gets the header, its block of 2 images (one data file) and the end.
    run = FannedOut(tools, zmq_context, tmp_path, messages, [4, 4, 4])
    send_messages(run.detector, messages)
    assert run.fanout.wait() == 0, run.fanout.stderr
    for writer in run.writers.values():
        assert writer.wait() == 0, writer.stderr
    master = str(tmp_path / "series_1_master.h5")
    assert run.writers[1].summary()["series"][0]["missing"] == 0

    assert DIALS_IMPORT is not None
    env = {**os.environ, "HDF5_PLUGIN_PATH": hdf5plugin.PLUGIN_PATH}
    frames = tmp_path / "frames.npy"
    # Both start at once: each takes seconds to load dxtbx.
    imported, read = (
        subprocess.Popen(
            args, cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for args in (
            [DIALS_IMPORT, master],
            [_python_of(DIALS_IMPORT), "-c", _READ_FRAMES, master, str(frames)],
        )
    )
    import_out, import_err = imported.communicate(timeout=45)
    read_out, read_err = read.communicate(timeout=45)
    assert imported.returncode == 0, import_err
    assert "num images: 6" in import_out and "sweep:    1" in import_out
    assert read.returncode == 0, read_err
    size, distance, wavelength, centre, oscillation = ast.literal_eval(
        read_out.strip().splitlines()[-1]
    )
    assert size == (56, 40) and distance == pytest.approx(120.0)
    assert wavelength == pytest.approx(1.0) and centre == pytest.approx((28.0, 20.0))
    assert oscillation == pytest.approx((0.0, 0.1))
    np.testing.assert_array_equal(np.load(frames), np.stack(sent_images(messages)))
