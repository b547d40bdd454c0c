"""Time mflow's HDF5 writer against a raw sequential write of the same compressed bytes.

For EIGER2 4M (2068 x 2162) and 16M (4148 x 4362) uint16 frames, bitshuffle-LZ4 compressed
once (synthetic low photon counts, so they compress like real data), this writes about
``--mb`` MB of Stream V1 images (``bs16-lz4<``, as received with decode=False) through
`mflow.hdf5.DectrisWriter` (data files + master) and, as the reference, writes the same
blobs with plain ``write`` calls, to memory (/dev/shm), to the page cache of a disk (a
directory under the current one, the files left for the kernel to write back) and to the
disk itself (the same, timed until ``os.sync`` has written them). A run is a series of
``--mb`` MB (1600: 360 16M frames, 1411 4M ones), so that opening and finishing a series
(~9 ms: the files, the NeXus master) weighs as little as in a real one. The comparison is
kept fair:

- the same bytes: the raw side writes exactly the blobs the writer stores as chunks;
- the same files: the raw side opens a new file every ``--frames-per-file`` images and
  closes it, as the writer does its data files;
- the same flush policy: neither side calls fsync; for "disk" both are timed until
  ``os.sync`` returns;
- the same page-cache state: before every timed run the files of the last one are
  removed and ``os.sync`` writes back all dirty pages, so no run pays for another's;
- alternated: each repetition times both sides, in alternating order, and the ratio is
  taken per repetition (median, min and max printed), besides the ratio of each side's
  best run (the one least disturbed by other processes).

Prints MB/s of compressed bytes for each side, the ratios, the CPU per frame of each side,
how many images it decompressed (0: chunks are the received blobs) and the load average
(the machine is shared). Run by hand:

    python bench/bench_hdf5.py [--mb MB] [--repeat R] [--frames-per-file N] [--disk DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mflow import codecs
from mflow.hdf5 import DectrisWriter

SIZES = {"4M": (2162, 2068), "16M": (4362, 4148)}


def synthetic_blobs(shape: tuple[int, int], count: int = 4) -> list[bytes]:
    """A few distinct compressed frames: mostly 0-2 counts, some bright spots."""
    rng = np.random.default_rng(0)
    blobs = []
    for _ in range(count):
        frame = rng.poisson(0.4, shape).astype(np.uint16)
        spots = rng.integers(0, frame.size, 2000)
        frame.flat[spots] = rng.integers(50, 5000, spots.size)
        blobs.append(codecs.encode_bslz4(frame))
    return blobs


def _messages(shape: tuple[int, int], blobs: list[bytes], frames: int) -> list[tuple[str, dict]]:
    y, x = shape
    header = {
        "header": {"htype": "dheader-1.0", "series": 1, "header_detail": "basic"},
        "part_2": {
            "nimages": frames,
            "ntrigger": 1,
            "x_pixels_in_detector": x,
            "y_pixels_in_detector": y,
        },
    }
    messages = [("dheader-1.0", header)]
    for frame in range(frames):
        blob = blobs[frame % len(blobs)]
        messages.append(
            (
                "dimage-1.0",
                {
                    "header": {"htype": "dimage-1.0", "series": 1, "frame": frame},
                    "part_2": {
                        "shape": [x, y],
                        "type": "uint16",
                        "encoding": "bs16-lz4<",
                        "size": len(blob),
                    },
                    "part_3_raw": blob,
                },
            )
        )
    messages.append(("dseries_end-1.0", {"header": {"htype": "dseries_end-1.0", "series": 1}}))
    return messages


class DecodeCounter:
    """Counts calls of mflow's image decoders while it is active (the writer makes none)."""

    NAMES = ("decode_bslz4", "decode_hdf5_lz4", "decode_lz4_block")

    def __init__(self) -> None:
        self.calls = 0
        self._saved = {name: getattr(codecs, name) for name in self.NAMES}

    def __enter__(self) -> DecodeCounter:
        for name, function in self._saved.items():
            setattr(codecs, name, self._counting(function))
        return self

    def _counting(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return function(*args, **kwargs)

        return counted

    def __exit__(self, *exc: object) -> None:
        for name, function in self._saved.items():
            setattr(codecs, name, function)


def time_writer(
    directory: str, messages: list[tuple[str, dict]], frames_per_file: int, synced: bool
) -> tuple[float, float]:
    """Wall and CPU seconds to write ``messages`` as a series (files closed at the end;
    with ``synced`` until they are on the disk)."""
    writer = DectrisWriter(directory, overwrite=True, frames_per_file=frames_per_file)
    wall, cpu = time.perf_counter(), time.process_time()
    for key, data in messages:
        writer.write(key, data)
    writer.close()
    if synced:
        os.sync()
    return time.perf_counter() - wall, time.process_time() - cpu


def time_raw(
    directory: str, blobs: list[bytes], frames: int, frames_per_file: int, synced: bool
) -> tuple[float, float]:
    """Wall and CPU seconds to write ``frames`` blobs, a new file every ``frames_per_file``
    (with ``synced`` until they are on the disk)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for first in range(0, frames, frames_per_file):
        path = os.path.join(directory, f"raw_{first // frames_per_file + 1:06d}.bin")
        with open(path, "wb", buffering=0) as f:
            for frame in range(first, min(first + frames_per_file, frames)):
                f.write(blobs[frame % len(blobs)])
    if synced:
        os.sync()
    return time.perf_counter() - wall, time.process_time() - cpu


def _clean(directory: str) -> None:
    """Remove the files of the last run and write back every dirty page."""
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    os.sync()


def _stored_bytes(directory: str) -> int:
    return sum(os.path.getsize(os.path.join(directory, name)) for name in os.listdir(directory))


def run(megabytes: float, repeat: int, frames_per_file: int, disk: str) -> list[dict]:
    results = []
    for size, shape in SIZES.items():
        blobs = synthetic_blobs(shape)
        frames = max(1, round(megabytes * 1e6 * len(blobs) / sum(map(len, blobs))))
        messages = _messages(shape, blobs, frames)
        nbytes = sum(len(blobs[i % len(blobs)]) for i in range(frames))
        targets = (("memory", "/dev/shm", False), ("page cache", disk, False), ("disk", disk, True))
        for where, parent, synced in targets:
            directory = tempfile.mkdtemp(prefix="mflow-bench-", dir=parent)
            raws, raw_cpus, walls, cpus, stored = [], [], [], [], 0
            load = os.getloadavg()[0]
            try:
                with DecodeCounter() as decodes:
                    for repetition in range(repeat):
                        for side in ("raw", "writer")[:: 1 if repetition % 2 == 0 else -1]:
                            _clean(directory)
                            if side == "raw":
                                wall, cpu = time_raw(
                                    directory, blobs, frames, frames_per_file, synced
                                )
                                raws.append(wall)
                                raw_cpus.append(cpu)
                            else:
                                wall, cpu = time_writer(
                                    directory, messages, frames_per_file, synced
                                )
                                walls.append(wall)
                                cpus.append(cpu)
                                stored = _stored_bytes(directory)
            finally:
                shutil.rmtree(directory)
            ratios = [raw / wall for raw, wall in zip(raws, walls, strict=True)]
            results.append(
                {
                    "size": size,
                    "to": where,
                    "frames": frames,
                    "repeat": repeat,
                    "mb_per_frame": nbytes / frames / 1e6,
                    "writer_file_overhead": stored / nbytes - 1,
                    "raw_mb_s": nbytes / statistics.median(raws) / 1e6,
                    "writer_mb_s": nbytes / statistics.median(walls) / 1e6,
                    "ratio": statistics.median(ratios),
                    "ratio_min": min(ratios),
                    "ratio_max": max(ratios),
                    "ratio_of_best": min(raws) / min(walls),
                    "writer_frames_s": frames / statistics.median(walls),
                    "writer_cpu_ms_per_frame": 1000 * statistics.median(cpus) / frames,
                    "raw_cpu_ms_per_frame": 1000 * statistics.median(raw_cpus) / frames,
                    "images_decoded": decodes.calls,
                    "load": [load, os.getloadavg()[0]],
                }
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mb", type=float, default=1600, help="compressed MB per run (frames to match)"
    )
    parser.add_argument("--repeat", type=int, default=6)
    parser.add_argument("--frames-per-file", type=int, default=1000)
    parser.add_argument("--disk", default=".")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = run(args.mb, args.repeat, args.frames_per_file, args.disk)
    if args.json:
        print(json.dumps(results))
        return
    print(
        f"{'size':>4} {'to':>10} {'frames':>6} {'MB/frame':>8} {'raw MB/s':>9} {'writer MB/s':>11} "
        f"{'ratio':>6} {'min-max':>10} {'best':>5} {'CPU ms/frame raw, writer':>24} {'decoded':>7} "
        f"{'load':>9}"
    )
    for r in results:
        print(
            f"{r['size']:>4} {r['to']:>10} {r['frames']:6d} {r['mb_per_frame']:8.2f} "
            f"{r['raw_mb_s']:9.0f} "
            f"{r['writer_mb_s']:11.0f} {r['ratio']:6.2f} "
            f"{r['ratio_min']:4.2f}-{r['ratio_max']:4.2f} {r['ratio_of_best']:5.2f} "
            f"{r['raw_cpu_ms_per_frame']:16.2f}, {r['writer_cpu_ms_per_frame']:5.2f} "
            f"{r['images_decoded']:7d} "
            f"{r['load'][0]:4.1f}/{r['load'][1]:4.1f}"
        )


if __name__ == "__main__":
    main()
