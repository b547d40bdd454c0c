"""bsread receive with compressed channels: raw pyzmq against mflow's ``receive()``.

    python bench/bench_bsread.py [--runs 3] [--count 3000] [--compressions bitshuffle_lz4,lz4]
                                 [--psi-python PATH [--psi-threads 1,all]]

Messages of 10 float64 channels of 1000 values each (normally distributed, so about 7.4 KB
per compressed value), ``bitshuffle_lz4`` or ``lz4`` compressed, come from a sender in
another process over tcp on 127.0.0.1 and are received in this one by:

- ``raw pyzmq``: ``socket.recv_multipart()``, the frames as bytes, nothing decoded;
- ``mflow``: ``Stream.receive()``, every value decoded to a numpy array;
- ``psi-bsread`` (with ``--psi-python``, the interpreter of another environment with
  psi-bsread 2.0.1 on psi-mflow 1.0): its ``Source(...).receive()``, every channel's
  ``.value`` read (it decodes them all on receive); with ``OMP_NUM_THREADS=1`` (its fastest
  here), or as ``--psi-threads`` says (``all``: as installed, bitshuffle's OpenMP threads
  on every core, 5-30x slower under load).

The variants alternate within each run; ratios (mflow messages/s over raw pyzmq and over
psi-bsread) are taken per run, with the 1-minute load average before each run.
"""

from __future__ import annotations

import argparse
import json
import os
import socket as socket_module
import statistics
import subprocess
import sys
import time
from typing import cast

import numpy as np
import zmq

CHANNELS, VALUES = 10, 1000
VARIANTS = ("raw pyzmq", "mflow")
# psi-bsread's OMP_NUM_THREADS settings (--psi-threads) → variant name; "all": as installed.
PSI_NAMES = {"1": "psi-bsread 1 thread", "all": "psi-bsread"}


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
    """The sender process: one message over and over until the receiver ends it (or has been
    gone for a minute; a slow receiver under load may stall for seconds)."""
    parts = message_parts(compression)
    socket = zmq.Context().socket(zmq.PUSH)
    socket.sndhwm = 100
    socket.sndtimeo = 60_000
    socket.connect(endpoint)
    try:
        while True:
            socket.send_multipart(parts)
    except zmq.Again:
        socket.close(linger=0)


def psi_run(compression: str, count: int, sender_python: str) -> tuple[float, float]:
    """Messages per second and CPU µs per message of psi-bsread's ``Source`` receiving
    ``count`` messages (after 100 warm-up), every value read; runs under psi-bsread's
    interpreter, the sender under ``sender_python`` (this project's)."""
    from bsread import BIND, PULL, Source

    with socket_module.socket() as probe:  # a free port: psi-bsread binds to a given one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = Source(host="127.0.0.1", port=port, conn_type=BIND, mode=PULL, receive_timeout=30_000)
    source.connect()
    endpoint = f"tcp://127.0.0.1:{port}"
    sender = subprocess.Popen([sender_python, __file__, "--send", endpoint, compression])
    try:
        for _ in range(100):
            psi_check(source.receive())
        started, cpu = time.perf_counter(), time.process_time()
        for received in range(count):
            message = source.receive()
            if message is None:
                sys.exit(f"psi-bsread: receive gave None after {received} messages")
            for value in message.data.data.values():
                value.value  # noqa: B018 -- read as a user would
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        psi_check(message)
    finally:
        source.disconnect()
        sender.terminate()
        sender.wait(timeout=60)
    return count / elapsed, cpu / count * 1e6


def psi_check(message) -> None:
    values = [] if message is None else [value.value for value in message.data.data.values()]
    ok = len(values) == CHANNELS and all(
        isinstance(value, np.ndarray) and value.shape == (VALUES,) and value.dtype == np.float64
        for value in values
    )
    if not ok:
        sys.exit("psi-bsread: the bsread message did not arrive as expected")


def one_psi_run(psi_python: str, compression: str, count: int, threads: str) -> tuple[float, float]:
    """`psi_run` under ``psi_python``, with ``OMP_NUM_THREADS=threads`` unless ``"all"``."""
    environment = dict(os.environ)
    environment.pop("OMP_NUM_THREADS", None)
    environment.pop("PYTHONPATH", None)  # its own environment's packages only
    if threads != "all":
        environment["OMP_NUM_THREADS"] = threads
    output = subprocess.run(
        [psi_python, __file__, "--psi-receive", compression, str(count), sys.executable],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        env=environment,
    ).stdout
    rate, cpu = output.split()[-2:]
    return float(rate), float(cpu)


def one_run(variant: str, compression: str, count: int) -> tuple[float, float]:
    """Messages per second and CPU µs per message (of this process, zmq's I/O thread
    included) of ``variant`` receiving ``count`` messages (after 100 warm-up)."""
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
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            result = receive()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        check(variant, result)
    finally:
        if stream is not None:
            stream.disconnect()
        else:
            socket.close(linger=0)
        sender.terminate()
        sender.wait(timeout=60)
        context.term()
    return count / elapsed, cpu / count * 1e6


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
    runs: int = 3,
    count: int = 3000,
    compressions: tuple[str, ...] = ("bitshuffle_lz4", "lz4"),
    psi_python: str | None = None,
    psi_threads: tuple[str, ...] = ("1",),
) -> dict:
    """Per compression: messages/s of every variant (median) and mflow's ratios per run to
    each of the others (``ratio_vs_raw`` and ``ratios_per_run`` for raw pyzmq)."""
    psi_variants = {
        PSI_NAMES.get(threads, f"psi-bsread {threads} threads"): threads for threads in psi_threads
    }
    variants = VARIANTS + (tuple(psi_variants) if psi_python else ())
    results = {}
    for compression in compressions:
        rates: dict[str, list[float]] = {variant: [] for variant in variants}
        cpu: dict[str, list[float]] = {variant: [] for variant in variants}
        loads = []
        for run in range(runs):
            loads.append(os.getloadavg()[0])
            for variant in variants if run % 2 == 0 else variants[::-1]:
                if variant in psi_variants:
                    threads = psi_variants[variant]
                    rate, us = one_psi_run(cast(str, psi_python), compression, count, threads)
                else:
                    rate, us = one_run(variant, compression, count)
                rates[variant].append(rate)
                cpu[variant].append(us)
        anchors = [variant for variant in variants if variant != "mflow"]
        ratios = {
            anchor: [m / a for a, m in zip(rates[anchor], rates["mflow"], strict=True)]
            for anchor in anchors
        }
        # How many times the CPU time per message mflow's receiver takes the anchor takes
        # (free of the sender's limit on the rates).
        cpu_ratios = {
            anchor: [a / m for a, m in zip(cpu[anchor], cpu["mflow"], strict=True)]
            for anchor in anchors
        }
        results[compression] = {
            "count": count,
            "load": loads,
            "rates": rates,
            "msgs_per_s": {variant: statistics.median(values) for variant, values in rates.items()},
            "ratio_vs_raw": statistics.median(ratios["raw pyzmq"]),
            "ratios_per_run": ratios["raw pyzmq"],
            "mflow_ratios_per_run": ratios,
            "mflow_ratio_vs": {
                anchor: statistics.median(values) for anchor, values in ratios.items()
            },
            "cpu_us_per_msg": cpu,
            "cpu_ratios_per_run": cpu_ratios,
        }
    return results


def _per_run(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.2f}x (per run: {', '.join(f'{r:.2f}' for r in ratios)})"


def print_results(results: dict) -> None:
    for compression, row in results.items():
        rates, cpu = row["msgs_per_s"], row["cpu_us_per_msg"]
        print(
            f"bsread {CHANNELS}x{VALUES} float64 {compression} ({row['count']} msgs, load "
            f"{', '.join(f'{load:.1f}' for load in row['load'])}): "
            + " | ".join(
                f"{variant} {rate:,.0f} msg/s {statistics.median(cpu[variant]):,.0f} µs CPU/msg"
                for variant, rate in rates.items()
            )
            + "\n  mflow msg/s: "
            + ", ".join(
                f"{_per_run(ratios)} {anchor}"
                for anchor, ratios in row["mflow_ratios_per_run"].items()
            )
            + "\n  CPU/msg of the others over mflow's: "
            + ", ".join(
                f"{anchor} {_per_run(ratios)}"
                for anchor, ratios in row["cpu_ratios_per_run"].items()
            ),
            flush=True,
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--send":
        send(sys.argv[2], sys.argv[3])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--psi-receive":
        print(*psi_run(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--compressions", default="bitshuffle_lz4,lz4")
    parser.add_argument(
        "--psi-python",
        metavar="PATH",
        help="the python of an environment with psi-bsread 2.0.1 on psi-mflow 1.0: adds it",
    )
    parser.add_argument(
        "--psi-threads",
        default="1",
        metavar="LIST",
        help="OMP_NUM_THREADS for psi-bsread's bitshuffle, one variant each; 'all': as installed "
        "(every core; under load a bitshuffle_lz4 run then takes minutes)",
    )
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    results = measure(
        args.runs,
        args.count,
        tuple(args.compressions.split(",")),
        args.psi_python,
        tuple(args.psi_threads.split(",")),
    )
    print_results(results)
    if args.json:
        with open(args.json, "w") as output:
            json.dump(results, output, indent=1)


if __name__ == "__main__":
    main()
