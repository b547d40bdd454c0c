"""Stream V2 receive: raw pyzmq, mflow without and with decoding, the DECTRIS reference client.

    python bench/bench_stream2.py [--runs 3] [--count-4m 300] [--count-16m 100]

EIGER2 4M (2068×2162) and 16M (4148×4362) uint16 images, bitshuffle-LZ4 compressed in a
tag 56500 as a real detector sends them, come from a sender in another process over tcp on
127.0.0.1 and are received in this one by:

- ``raw pyzmq``: ``socket.recv()`` (a copy of the frame, as a plain client gets it);
- ``mflow decode=False``: ``Stream.receive(decode=False)``, the blob left compressed;
- ``mflow decode``: ``Stream.receive()``, the image decoded to a numpy array;
- ``reference``: DECTRIS' reference client recipe: ``recv()``, ``cbor2.loads`` with a tag
  hook that decompresses 56500 with dectris-compression and makes numpy arrays of 69 / 40.

Each point is the median of ``--runs`` runs of ``count`` messages; ratios are taken per
run (mflow without decoding against raw pyzmq, mflow with decoding against the reference
client), with the 1-minute load average before each run. mflow decodes bitshuffle-LZ4 with
the bitshuffle library, whose OpenMP threads suffer on a loaded machine: the environment's
``OMP_NUM_THREADS`` is recorded with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import cbor2
import numpy as np
import zmq

DETECTORS = {"4M": (2162, 2068), "16M": (4362, 4148)}  # numpy shape (y, x)
VARIANTS = ("raw pyzmq", "mflow decode=False", "mflow decode", "reference")


def image_frame(shape: tuple[int, int], seed: int = 1) -> bytes:
    """A Stream V2 image message holding a realistic (Poisson, mean 1) uint16 frame."""
    import mflow.codecs

    image = np.random.default_rng(seed).poisson(1.0, shape).astype("<u2")
    blob = mflow.codecs.encode_bslz4(image)
    content = cbor2.CBORTag(
        40, [list(shape), cbor2.CBORTag(69, cbor2.CBORTag(56500, ["bslz4", 2, blob]))]
    )
    message = {
        "type": "image",
        "series_id": 1,
        "series_unique_id": "bench",
        "image_id": 0,
        "real_time": [215873, 50000000],
        "series_date": cbor2.CBORTag(0, "2026-12-01T00:00:00.000+00:00"),
        "start_time": [0, 50000000],
        "stop_time": [215873, 50000000],
        "data": {"threshold_1": content},
    }
    return cbor2.dumps(cbor2.CBORTag(55799, message))


def send(endpoint: str, detector: str, count: int) -> None:
    """The sender process: ``count`` copies of one frame, then more until the peer is gone."""
    frame = zmq.Frame(image_frame(DETECTORS[detector]))
    socket = zmq.Context().socket(zmq.PUSH)
    socket.sndhwm = 8
    socket.connect(endpoint)
    for _ in range(count):
        socket.send(frame, copy=False)
    socket.sndtimeo = 2000
    try:
        while True:
            socket.send(frame, copy=False)
    except zmq.Again:
        socket.close(linger=0)


def reference_client(socket: zmq.Socket):
    from dectris.compression import decompress

    def hook(*args):
        tag = args[0] if isinstance(args[0], cbor2.CBORTag) else args[1]
        if tag.tag == 56500:
            algorithm, element_size, data = tag.value
            return decompress(data, algorithm, elem_size=element_size)
        if tag.tag == 69:
            return np.frombuffer(tag.value, "<u2")
        if tag.tag == 40:
            dims, array = tag.value
            return array.reshape(dims)
        return tag

    return lambda: cbor2.loads(socket.recv(), tag_hook=hook)


def one_run(variant: str, detector: str, count: int) -> float:
    """Seconds per message of ``variant`` receiving ``count`` images (after 3 warm-up ones)."""
    import mflow

    context = zmq.Context()
    stream = None
    if variant.startswith("mflow"):
        stream = mflow.connect(
            "tcp://127.0.0.1:*",
            conn_type=mflow.BIND,
            receive_timeout=30_000,
            queue_size=8,
            context=context,
        )
        endpoint = stream.endpoint
        decode = variant == "mflow decode"
        receive = lambda: stream.receive(decode=decode)  # noqa: E731
    else:
        socket = context.socket(zmq.PULL)
        socket.rcvhwm = 8
        socket.rcvtimeo = 30_000
        socket.bind("tcp://127.0.0.1:*")
        endpoint = socket.last_endpoint.decode()
        receive = socket.recv if variant == "raw pyzmq" else reference_client(socket)
    sender = subprocess.Popen(
        [sys.executable, __file__, "--send", endpoint, detector, str(count + 3)]
    )
    try:
        for _ in range(3):
            check(variant, receive(), detector)
        started = time.perf_counter()
        for _ in range(count):
            result = receive()
        elapsed = time.perf_counter() - started
        check(variant, result, detector)
    finally:
        if stream is not None:
            stream.disconnect()
        else:
            socket.close(linger=0)
        sender.wait(timeout=60)
        context.term()
    return elapsed / count


def check(variant: str, result, detector: str) -> None:
    """Fail loudly rather than time something that did not arrive or decode."""
    shape = DETECTORS[detector]
    if variant == "raw pyzmq":
        ok = isinstance(result, bytes) and len(result) > 1000
    elif variant == "mflow decode=False":
        ok = result is not None and result.data["data"]["threshold_1"].shape == shape
    elif variant == "mflow decode":
        ok = result is not None and result.data["data"]["threshold_1"].shape == shape
    else:
        result = result.value if isinstance(result, cbor2.CBORTag) else result
        ok = result["data"]["threshold_1"].shape == shape
    if not ok:
        sys.exit(f"{variant}: the {detector} image did not arrive as expected")


def measure(runs: int = 3, counts: dict[str, int] | None = None) -> dict:
    """Per detector: seconds per message of every variant (median) and per-run ratios."""
    counts = counts or {"4M": 300, "16M": 100}
    results = {}
    for detector, count in counts.items():
        times: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        loads = []
        for _ in range(runs):
            loads.append(os.getloadavg()[0])
            for variant in VARIANTS:
                times[variant].append(one_run(variant, detector, count))
        pass_through = [
            raw / mflow_
            for raw, mflow_ in zip(times["raw pyzmq"], times["mflow decode=False"], strict=True)
        ]
        decoding = [
            ref / mflow_
            for ref, mflow_ in zip(times["reference"], times["mflow decode"], strict=True)
        ]
        results[detector] = {
            "count": count,
            "load": loads,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "ms": {variant: statistics.median(values) * 1e3 for variant, values in times.items()},
            "ratio_no_decode_vs_raw": statistics.median(pass_through),
            "ratio_decode_vs_reference": statistics.median(decoding),
            "ratios_per_run": {"no_decode_vs_raw": pass_through, "decode_vs_reference": decoding},
        }
    return results


def print_results(results: dict) -> None:
    for detector, row in results.items():
        ms = row["ms"]
        print(
            f"Stream V2 {detector} bslz4 ({row['count']} msgs, load "
            f"{', '.join(f'{load:.1f}' for load in row['load'])}): "
            + " | ".join(f"{variant} {ms[variant]:.2f} ms" for variant in VARIANTS)
            + f" || no decode {row['ratio_no_decode_vs_raw']:.2f}x raw pyzmq, decode "
            f"{row['ratio_decode_vs_reference']:.2f}x reference",
            flush=True,
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--send":
        send(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--count-4m", type=int, default=300)
    parser.add_argument("--count-16m", type=int, default=100)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    results = measure(args.runs, {"4M": args.count_4m, "16M": args.count_16m})
    print_results(results)
    if args.json:
        with open(args.json, "w") as output:
            json.dump(results, output, indent=1)


if __name__ == "__main__":
    main()
