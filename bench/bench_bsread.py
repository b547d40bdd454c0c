"""bsread receive with compressed channels: raw pyzmq against mflow's ``receive()``.

    python bench/bench_bsread.py [--runs 3] [--count 3000] [--compressions bitshuffle_lz4,lz4]

Messages of 10 float64 channels of 1000 values each (normally distributed, so about 7.4 KB
per compressed value), ``bitshuffle_lz4`` or ``lz4`` compressed, come from a sender in
another process over tcp on 127.0.0.1 and are received in this one by:

- ``raw pyzmq``: ``socket.recv_multipart()``, the frames as bytes, nothing decoded;
- ``mflow``: ``Stream.receive()``, every value decoded to a numpy array.

The variants alternate within each run; ratios (mflow messages/s over raw) are taken per run,
with the 1-minute load average before each run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import zmq

CHANNELS, VALUES = 10, 1000
VARIANTS = ("raw pyzmq", "mflow")


def message_parts(compression: str) -> list[bytes]:
    """One bsread message of ``CHANNELS`` float64 channels in ``compression``."""
    from mflow.handlers.bsread import encode_message

    names = [f"BENCH:CHANNEL{index}" for index in range(CHANNELS)]
    rng = np.random.default_rng(1)
    return encode_message(
        {
            "pulse_id": 1,
            "data": {name: rng.normal(size=VALUES) for name in names},
            "data_header": {
                "channels": [
                    {"name": name, "type": "float64", "shape": [VALUES], "compression": compression}
                    for name in names
                ]
            },
        }
    )


def send(endpoint: str, compression: str) -> None:
    """The sender process: one message over and over until the peer is gone."""
    parts = message_parts(compression)
    socket = zmq.Context().socket(zmq.PUSH)
    socket.sndhwm = 100
    socket.sndtimeo = 2000
    socket.connect(endpoint)
    try:
        while True:
            socket.send_multipart(parts)
    except zmq.Again:
        socket.close(linger=0)


def one_run(variant: str, compression: str, count: int) -> float:
    """Messages per second of ``variant`` receiving ``count`` messages (after 100 warm-up)."""
    import mflow

    context = zmq.Context()
    stream = None
    if variant == "mflow":
        stream = mflow.connect(
            "tcp://127.0.0.1:*",
            conn_type=mflow.BIND,
            receive_timeout=30_000,
            queue_size=100,
            context=context,
        )
        endpoint = stream.endpoint
        receive = stream.receive
    else:
        socket = context.socket(zmq.PULL)
        socket.rcvhwm = 100
        socket.rcvtimeo = 30_000
        socket.bind("tcp://127.0.0.1:*")
        endpoint = socket.last_endpoint.decode()
        receive = socket.recv_multipart
    sender = subprocess.Popen([sys.executable, __file__, "--send", endpoint, compression])
    try:
        for _ in range(100):
            check(variant, receive())
        started = time.perf_counter()
        for _ in range(count):
            result = receive()
        elapsed = time.perf_counter() - started
        check(variant, result)
    finally:
        if stream is not None:
            stream.disconnect()
        else:
            socket.close(linger=0)
        sender.wait(timeout=60)
        context.term()
    return count / elapsed


def check(variant: str, result) -> None:
    """Fail loudly rather than time something that did not arrive or decode."""
    if variant == "raw pyzmq":
        ok = len(result) == 2 + 2 * CHANNELS
    else:
        data = result.data["data"] if result is not None else {}
        ok = len(data) == CHANNELS and all(
            value.shape == (VALUES,) and value.dtype == np.float64 for value in data.values()
        )
    if not ok:
        sys.exit(f"{variant}: the bsread message did not arrive as expected")


def measure(
    runs: int = 3, count: int = 3000, compressions: tuple[str, ...] = ("bitshuffle_lz4", "lz4")
) -> dict:
    """Per compression: messages/s of both variants (median) and the per-run ratios."""
    results = {}
    for compression in compressions:
        rates: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        loads = []
        for run in range(runs):
            loads.append(os.getloadavg()[0])
            for variant in VARIANTS if run % 2 == 0 else VARIANTS[::-1]:
                rates[variant].append(one_run(variant, compression, count))
        ratios = [
            mflow_ / raw for raw, mflow_ in zip(rates["raw pyzmq"], rates["mflow"], strict=True)
        ]
        results[compression] = {
            "count": count,
            "load": loads,
            "rates": rates,
            "msgs_per_s": {variant: statistics.median(values) for variant, values in rates.items()},
            "ratio_vs_raw": statistics.median(ratios),
            "ratios_per_run": ratios,
        }
    return results


def print_results(results: dict) -> None:
    for compression, row in results.items():
        rates = row["msgs_per_s"]
        print(
            f"bsread {CHANNELS}x{VALUES} float64 {compression} ({row['count']} msgs, load "
            f"{', '.join(f'{load:.1f}' for load in row['load'])}): "
            + " | ".join(f"{variant} {rates[variant]:,.0f} msg/s" for variant in VARIANTS)
            + f" || mflow {row['ratio_vs_raw']:.2f}x raw pyzmq (per run: "
            + ", ".join(f"{ratio:.2f}" for ratio in row["ratios_per_run"])
            + ")",
            flush=True,
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--send":
        send(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--compressions", default="bitshuffle_lz4,lz4")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    results = measure(args.runs, args.count, tuple(args.compressions.split(",")))
    print_results(results)
    if args.json:
        with open(args.json, "w") as output:
            json.dump(results, output, indent=1)


if __name__ == "__main__":
    main()
