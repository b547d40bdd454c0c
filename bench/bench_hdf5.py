"""Time mflow's HDF5 writer against a raw sequential write of the same compressed bytes.

For EIGER2 4M (2068 x 2162) and 16M (4148 x 4362) uint16 frames, bitshuffle-LZ4 compressed
once (synthetic low photon counts, so they compress like real data), this writes N
Stream V1 images (``bs16-lz4<``, as received with decode=False) through
`mflow.hdf5.DectrisWriter` (data files + master) and, separately, appends the same blobs to
one plain file; both to memory (/dev/shm) and to disk (a directory under the current one),
both ending with fsync-free close (the page cache, as the writer leaves it). Prints MB/s of
compressed bytes for each, their ratio, and the writer's CPU per frame. Nothing is
decompressed on the way: the writer's chunks are the received blobs. Run by hand:

    python bench/bench_hdf5.py [--frames N] [--disk DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time

import numpy as np

from mflow.codecs import encode_bslz4
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
        blobs.append(encode_bslz4(frame))
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


def time_writer(directory: str, messages: list[tuple[str, dict]]) -> tuple[float, float]:
    """Wall and CPU seconds to write ``messages`` as a series (files closed at the end)."""
    writer = DectrisWriter(directory, overwrite=True)
    wall, cpu = time.perf_counter(), time.process_time()
    for key, data in messages:
        writer.write(key, data)
    writer.close()
    return time.perf_counter() - wall, time.process_time() - cpu


def time_raw(directory: str, blobs: list[bytes], frames: int) -> float:
    """Wall seconds to append ``frames`` blobs to one file and close it."""
    wall = time.perf_counter()
    with open(os.path.join(directory, "raw.bin"), "wb", buffering=0) as f:
        f.writelines(blobs[frame % len(blobs)] for frame in range(frames))
    return time.perf_counter() - wall


def run(frames: int, disk: str) -> list[dict]:
    results = []
    for size, shape in SIZES.items():
        blobs = synthetic_blobs(shape)
        messages = _messages(shape, blobs, frames)
        nbytes = sum(len(blobs[i % len(blobs)]) for i in range(frames))
        for where, parent in (("memory", "/dev/shm"), ("disk", disk)):
            directory = tempfile.mkdtemp(prefix="mflow-bench-", dir=parent)
            try:
                raw = min(time_raw(directory, blobs, frames) for _ in range(3))
                wall, cpu = min(time_writer(directory, messages) for _ in range(3))
            finally:
                shutil.rmtree(directory)
            results.append(
                {
                    "size": size,
                    "to": where,
                    "frames": frames,
                    "mb_per_frame": nbytes / frames / 1e6,
                    "raw_mb_s": nbytes / raw / 1e6,
                    "writer_mb_s": nbytes / wall / 1e6,
                    "ratio": raw / wall,
                    "writer_frames_s": frames / wall,
                    "writer_cpu_ms_per_frame": 1000 * cpu / frames,
                }
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--disk", default=".")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = run(args.frames, args.disk)
    if args.json:
        print(json.dumps(results))
        return
    print(
        f"{'size':>4} {'to':>6} {'MB/frame':>8} {'raw MB/s':>9} {'writer MB/s':>11} "
        f"{'ratio':>6} {'frames/s':>8} {'CPU ms/frame':>12}"
    )
    for r in results:
        print(
            f"{r['size']:>4} {r['to']:>6} {r['mb_per_frame']:8.2f} {r['raw_mb_s']:9.0f} "
            f"{r['writer_mb_s']:11.0f} {r['ratio']:6.2f} {r['writer_frames_s']:8.0f} "
            f"{r['writer_cpu_ms_per_frame']:12.2f}"
        )


if __name__ == "__main__":
    main()
