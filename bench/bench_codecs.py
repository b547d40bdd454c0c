"""Time mflow's bitshuffle-LZ4 decoder against the bitshuffle library's own decompression.

Decodes one EIGER2-16M-sized frame (4148 x 4362 uint16, synthetic low photon counts so it
compresses like real data) both ways, alternating, and prints the median of each and their
ratio (mflow / bitshuffle). Run by hand:

    python bench/bench_codecs.py [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import bitshuffle
import numpy as np

from mflow.codecs import decode_bslz4, encode_bslz4

WIDTH, HEIGHT = 4148, 4362


def synthetic_frame(seed: int) -> np.ndarray:
    """Mostly 0-2 counts with a few bright spots and dead (0xFFFF-flagged) pixel rows."""
    rng = np.random.default_rng(seed)
    frame = rng.poisson(0.4, (HEIGHT, WIDTH)).astype(np.uint16)
    spots = rng.integers(0, frame.size, 2000)
    frame.flat[spots] = rng.integers(50, 5000, spots.size)
    frame[rng.integers(0, HEIGHT, 10)] = 0xFFFF
    return frame


def measure(runs: int, seed: int) -> dict:
    frame = synthetic_frame(seed)
    blob = encode_bslz4(frame)
    body = np.frombuffer(blob, np.uint8, offset=12)
    shape, dtype = frame.shape, frame.dtype

    def reference():
        return bitshuffle.decompress_lz4(body, shape, dtype, 0)

    def ours():
        return decode_bslz4(blob, dtype, shape)

    assert np.array_equal(ours(), frame) and np.array_equal(reference(), frame)
    times = {reference: [], ours: []}
    order = list(times)
    for _ in range(runs):
        order.reverse()  # neither side always runs right after the other
        for decode in order:
            start = time.perf_counter()
            decode()
            times[decode].append(time.perf_counter() - start)
    ref_s, ours_s = statistics.median(times[reference]), statistics.median(times[ours])
    return {
        "shape": list(shape),
        "dtype": str(dtype),
        "uncompressed_bytes": frame.nbytes,
        "compressed_bytes": len(blob),
        "runs": runs,
        "bitshuffle_s": ref_s,
        "mflow_s": ours_s,
        "ratio": ours_s / ref_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="timed runs of each (default 21)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    result = measure(args.runs, args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{result['shape'][1]}x{result['shape'][0]} {result['dtype']}: "
        f"{result['uncompressed_bytes']} -> {result['compressed_bytes']} bytes"
    )
    runs = f"(median of {args.runs})"
    print(f"bitshuffle.decompress_lz4  {result['bitshuffle_s'] * 1e3:8.2f} ms {runs}")
    print(f"mflow decode_bslz4         {result['mflow_s'] * 1e3:8.2f} ms")
    print(f"ratio                      {result['ratio']:8.3f}")


if __name__ == "__main__":
    main()
