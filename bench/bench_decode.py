"""16M bitshuffle-LZ4 decode: mflow against the fastest C decoders, and on every core.

    python bench/bench_decode.py [--runs 9] [--workers-runs 3] [--count 40] [--json FILE]

Part 1, one core: one EIGER2 16M frame (4148 x 4362 uint16, bench_codecs' synthetic
data) decoded under the same memory conditions by every decoder, alternated, ``--runs``
times:

- fresh output (each decode gets new memory): ``bitshuffle.decompress_lz4``,
  ``dectris.compression.decompress`` (the ``reference`` extra), mflow ``decode_bslz4``;
- pre-allocated output (one array, written again and again): bitshuffle's C function
  ``bshuf_decompress_lz4`` and dectris-compression's ``compression_decompress_buffer``
  (both through ctypes, the only way their libraries write into a given buffer), mflow
  ``decode_bslz4(out=...)`` and mflow through a ``FramePool`` (acquire, decode, drop: what a
  stream with ``decode_pool`` does per image).

Every bitshuffle call runs on one OpenMP thread (mflow's default, see mflow._openmp).
Ratios (mflow / the fastest C decoder of the same condition) are taken per repetition.

Part 2, every core: ``--count`` 16M Stream V2 images (bench_stream2's, bslz4 in tag
56500) wait in an mflow stream's queue (inproc, one shared frame: no transport cost), which
then receives and decodes them with ``decode_workers=0`` (the receiving thread decodes) and
with ``decode_workers=2`` (both with ``decode_pool=8``), alternated per repetition; the
speed-up is taken per repetition, with the CPU time the process got (cores' worth: on a
shared machine the scheduler, not the stream, may be the limit). From the CPU time per
image (all threads, and the receiving thread's own) it also derives what the workers give
on free cores: ``min(N * serial CPU / parallel CPU, serial CPU / receiving thread's CPU)``.
The 1-minute load average is recorded before every repetition.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import sys
import time
from pathlib import Path

import bitshuffle
import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).parent))
from bench_codecs import synthetic_frame  # noqa: E402

import mflow  # noqa: E402
from mflow import _direct  # noqa: E402
from mflow.codecs import decode_bslz4, encode_bslz4  # noqa: E402
from mflow.framepool import FramePool  # noqa: E402

WARM_UP = 12  # images received before the clock starts: more than the workers' depth
_DECTRIS_BSLZ4_HDF5 = 0  # CompressionAlgorithm: bitshuffle-LZ4 in HDF5 framing


def _dectris_into():
    """dectris-compression's C decoder writing into a given array (ctypes), or None."""
    try:
        import dectris.compression as dectris
    except ImportError:
        return None, None
    function = ctypes.CDLL(dectris.__file__).compression_decompress_buffer
    function.restype = ctypes.c_size_t
    function.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t] + [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_size_t,
    ]
    return dectris.decompress, function


def decoders(frame: np.ndarray) -> dict[str, dict]:
    """The decoders of part 1 by condition, each a call that decodes the frame once."""
    blob = encode_bslz4(frame)
    source = np.frombuffer(blob, np.uint8)
    body = source[12:]
    shape, dtype = frame.shape, frame.dtype
    out = np.empty_like(frame)
    pool = FramePool(2)
    dectris_fresh, dectris_into = _dectris_into()

    fresh = {
        "bitshuffle": lambda: bitshuffle.decompress_lz4(body, shape, dtype, 0),
        "mflow": lambda: decode_bslz4(blob, dtype, shape),
    }
    preallocated = {
        "bitshuffle C": lambda: (
            _direct.bshuf_decompress_lz4(
                body.ctypes.data, out.ctypes.data, frame.size, frame.itemsize, 0
            )
            and out
        ),
        "mflow out=": lambda: decode_bslz4(blob, dtype, shape, out=out),
        "mflow pool": lambda: decode_bslz4(blob, dtype, shape, out=pool.acquire(dtype, shape)),
    }
    if dectris_fresh is not None:
        fresh["dectris"] = lambda: np.frombuffer(
            dectris_fresh(blob, "bslz4", elem_size=2), dtype
        ).reshape(shape)

        def dectris_c():
            dectris_into(
                _DECTRIS_BSLZ4_HDF5, out.ctypes.data, out.nbytes, source.ctypes.data, len(blob), 2
            )
            return out

        preallocated["dectris C"] = dectris_c
    for calls in (fresh, preallocated):
        for name, decode in calls.items():
            result = decode()
            if not np.array_equal(np.asarray(result).reshape(shape), frame):
                sys.exit(f"{name} did not decode the frame")
    return {"fresh": fresh, "preallocated": preallocated}


def measure_single_core(runs: int, seed: int = 0) -> dict:
    frame = synthetic_frame(seed)
    conditions = decoders(frame)
    times = {c: {name: [] for name in calls} for c, calls in conditions.items()}
    loads = []
    order = [(c, name, decode) for c, calls in conditions.items() for name, decode in calls.items()]
    for _ in range(runs):
        loads.append(os.getloadavg()[0])
        order.reverse()  # no decoder always runs right after the same other one
        for condition, name, decode in order:
            start = time.perf_counter()
            decode()
            times[condition][name].append(time.perf_counter() - start)
    result: dict = {"runs": runs, "load": loads, "omp_threads_per_call": 1, "conditions": {}}
    for condition, by_name in times.items():
        c_names = [name for name in by_name if not name.startswith("mflow")]
        ratios = {}
        for name in by_name:
            if name.startswith("mflow"):
                ratios[name] = [
                    mine / min(by_name[c][run] for c in c_names)
                    for run, mine in enumerate(by_name[name])
                ]
        result["conditions"][condition] = {
            "ms": {name: statistics.median(values) * 1e3 for name, values in by_name.items()},
            "ratio_vs_fastest_c": {name: statistics.median(r) for name, r in ratios.items()},
            "ratios_per_run": ratios,
        }
    return result


def one_stream_run(
    workers: int, count: int, frame: zmq.Frame, context: zmq.Context
) -> tuple[float, float]:
    """Images per second a stream with ``workers`` decode workers receives and decodes, and
    the cores' worth of CPU time the process got meanwhile (all its threads).

    The ``count`` messages (one shared frame) wait in the stream's queue before the clock
    starts (inproc: nothing is copied), so the time is the stream's own: receive, parse,
    decode, deliver.
    """
    address = f"inproc://bench-decode-{workers}-{time.monotonic_ns()}"
    sender = context.socket(zmq.PUSH)
    sender.sndhwm = count + WARM_UP + 8
    sender.bind(address)
    stream = mflow.connect(
        address,
        context=context,
        receive_timeout=30_000,
        queue_size=count + WARM_UP + 8,
        decode_pool=8,
        decode_workers=workers,
    )
    try:
        for _ in range(count + WARM_UP):
            sender.send(frame, copy=False)
        for _ in range(WARM_UP):  # every buffer of the pool in use once: no first touch later
            stream.receive()
        started, cpu, own = time.perf_counter(), time.process_time(), time.thread_time()
        for _ in range(count):
            message = stream.receive()
            if message is None or message.data["data"]["threshold_1"] is None:
                sys.exit("an image did not arrive decoded")
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        own = time.thread_time() - own
    finally:
        stream.disconnect()
        sender.close(linger=0)
    return count / elapsed, cpu / elapsed, cpu / count, own / count


def measure_workers(runs: int, count: int, workers: int = 2) -> dict:
    from bench_stream2 import DETECTORS, image_frame

    frame = zmq.Frame(image_frame(DETECTORS["16M"]))
    context = zmq.Context()
    rates: dict[int, list[float]] = {0: [], workers: []}
    cores: dict[int, list[float]] = {0: [], workers: []}
    cpu_ms: dict[int, list[float]] = {0: [], workers: []}
    receiving_ms: dict[int, list[float]] = {0: [], workers: []}
    loads = []
    order = [0, workers]
    for _ in range(runs):
        loads.append(os.getloadavg()[0])
        order.reverse()
        for n in order:
            rate, share, cpu, own = one_stream_run(n, count, frame, context)
            rates[n].append(rate)
            cores[n].append(share)
            cpu_ms[n].append(cpu * 1e3)
            receiving_ms[n].append(own * 1e3)
    context.term()
    speedups = [many / one for one, many in zip(rates[0], rates[workers], strict=True)]
    one_core_ms = statistics.median(cpu_ms[0])
    parallel_cpu_ms = statistics.median(cpu_ms[workers])
    receiving = statistics.median(receiving_ms[workers])
    # What ``workers`` free cores would give: the CPU time per image spread over them, unless
    # the receiving thread's own share (receive, parse, deliver) is the longer of the two.
    bound = min(workers, workers * one_core_ms / parallel_cpu_ms, one_core_ms / receiving)
    return {
        "runs": runs,
        "count": count,
        "load": loads,
        "cpus": os.cpu_count(),
        "images_per_s": {str(n): statistics.median(values) for n, values in rates.items()},
        "rates_per_run": {str(n): values for n, values in rates.items()},
        "cores_used": {str(n): statistics.median(values) for n, values in cores.items()},
        "cores_used_per_run": {str(n): values for n, values in cores.items()},
        "speedup": statistics.median(speedups),
        "speedups_per_run": speedups,
        "cpu_ms_per_image": {"0": one_core_ms, str(workers): parallel_cpu_ms},
        "receiving_thread_cpu_ms_per_image": receiving,
        "speedup_on_free_cores": bound,
        "ms_per_image_one_thread": one_core_ms,
        "cores_for_133_hz": 133 * one_core_ms / 1e3,
    }


def print_results(results: dict) -> None:
    single = results.get("single_core")
    if single:
        print(
            f"16M bslz4 decode, one core ({single['runs']} runs, load "
            f"{min(single['load']):.1f}-{max(single['load']):.1f}):"
        )
        for condition, row in single["conditions"].items():
            times = " | ".join(f"{name} {ms:.2f} ms" for name, ms in row["ms"].items())
            ratios = ", ".join(
                f"{name} {ratio:.2f}x" for name, ratio in row["ratio_vs_fastest_c"].items()
            )
            print(f"  {condition:12} {times} || vs fastest C: {ratios}")
    parallel = results.get("workers")
    if parallel:
        rates = parallel["images_per_s"]
        print(
            f"16M Stream V2 receive+decode, inproc ({parallel['count']} msgs x "
            f"{parallel['runs']} runs, "
            f"{parallel['cpus']} CPUs, load {', '.join(f'{x:.1f}' for x in parallel['load'])}): "
            + " | ".join(
                f"workers={n} {rate:.1f}/s on {parallel['cores_used'][n]:.2f} cores"
                for n, rate in rates.items()
            )
            + f" || speed-up {parallel['speedup']:.2f}x (per run: "
            + ", ".join(f"{s:.2f}" for s in parallel["speedups_per_run"])
            + f"); CPU per image {parallel['cpu_ms_per_image']['0']:.1f} ms serial, "
            f"{parallel['cpu_ms_per_image'][str(max(map(int, rates)))]:.1f} ms with workers "
            f"({parallel['receiving_thread_cpu_ms_per_image']:.1f} ms of it in the receiving "
            f"thread): on free cores {parallel['speedup_on_free_cores']:.2f}x; "
            f"133 Hz needs {parallel['cores_for_133_hz']:.1f} cores"
        )


def measure(runs: int = 9, workers_runs: int = 3, count: int = 40) -> dict:
    results = {"single_core": measure_single_core(runs)}
    if workers_runs:
        results["workers"] = measure_workers(workers_runs, count)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="part 1 repetitions (default 9)")
    parser.add_argument("--workers-runs", type=int, default=3, help="part 2 (0: skip)")
    parser.add_argument("--count", type=int, default=40, help="part 2 images per run")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    results = measure(args.runs, args.workers_runs, args.count)
    print_results(results)
    if args.json:
        with open(args.json, "w") as output:
            json.dump(results, output, indent=1)


if __name__ == "__main__":
    main()
