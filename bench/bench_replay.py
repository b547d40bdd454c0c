"""Replay: ``mflow replay`` against a raw pyzmq sender reading the same recording.

    python bench/bench_replay.py [--runs 3] [--workdir DIR]

A recording (single-file format) of array-1.0 messages is made once per size (1 KiB and
1 MiB), in memory (/dev/shm) where there is one, so that the disk does not decide. Each
run starts one sender process that connects a PUSH socket to a PULL socket bound in this
process:

- ``raw pyzmq``: reads the recording with `mflow.recording` (the same reader, with its
  checksums) and sends every message with ``send_multipart(copy=False)``;
- ``mflow replay``: ``mflow replay FILE --connect``.

One clock for both: this process times from the first message received to the last, so
neither sender's start-up counts. Ratios (raw seconds / mflow seconds) are taken per run,
variants alternated, with the 1-minute load average before each run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zmq

SIZES = {"1 KiB": (1024, 20_000), "1 MiB": (1024 * 1024, 1_000)}
VARIANTS = ("raw pyzmq", "mflow replay")
TIMEOUT_MS = 30_000

RAW_SENDER = """
import sys, zmq
from mflow.recording import open_recording
context = zmq.Context()
socket = context.socket(zmq.PUSH)
socket.set_hwm(100)
socket.connect(sys.argv[2])
with open_recording(sys.argv[1]) as recording:
    for message in recording:
        socket.send_multipart(message.parts, copy=False)
socket.close(linger=-1)
context.term()  # before the interpreter frees the parts that are still being sent
"""


def make_recording(path: Path, size: int, count: int) -> None:
    """``count`` array-1.0 messages of ``size`` bytes each."""
    from mflow.recording import RecordingWriter

    payload = np.random.default_rng(1).integers(0, 255, size, dtype=np.uint8).tobytes()
    with RecordingWriter(path, overwrite=True) as writer:
        for frame in range(count):
            header = b'{"htype": "array-1.0", "type": "uint8", "shape": [%d], "frame": %d}' % (
                size,
                frame,
            )
            writer.write([header, payload], receive_time=1.0e9 + frame)


def sender_command(variant: str, path: Path, address: str) -> list[str]:
    if variant == "raw pyzmq":
        return [sys.executable, "-c", RAW_SENDER, str(path), address]
    return [sys.executable, "-m", "mflow", "replay", str(path), "-a", address, "--connect", "-q"]


def one_run(variant: str, path: Path, count: int) -> float:
    """Seconds from the first message received to the last."""
    socket = zmq.Context.instance().socket(zmq.PULL)
    socket.rcvtimeo = TIMEOUT_MS
    port = socket.bind_to_random_port("tcp://127.0.0.1")
    sender = subprocess.Popen(
        sender_command(variant, path, f"tcp://127.0.0.1:{port}"), stdout=subprocess.DEVNULL
    )
    try:
        socket.recv_multipart(copy=False)
        started = time.perf_counter()
        for _ in range(count - 1):
            socket.recv_multipart(copy=False)
        elapsed = time.perf_counter() - started
        if sender.wait(timeout=TIMEOUT_MS / 1000):
            raise RuntimeError(f"{variant} failed ({sender.returncode})")
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
        socket.close(linger=0)
    return elapsed * count / (count - 1)


def measure(runs: int = 3, scale: float = 1.0, workdir: Path | None = None) -> dict:
    """Every size's messages per second for both senders, ratio per run."""
    shm = Path("/dev/shm")
    parent = workdir or (shm if shm.is_dir() and os.access(shm, os.W_OK) else None)
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="mflow-replay-", dir=parent) as tmp:
        for name, (size, full_count) in SIZES.items():
            count = max(100, int(full_count * scale))
            path = Path(tmp) / f"replay-{size}.mflow"
            make_recording(path, size, count)
            seconds: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
            loads = []
            for run in range(runs):
                loads.append(os.getloadavg()[0])
                for variant in VARIANTS if run % 2 == 0 else reversed(VARIANTS):
                    seconds[variant].append(one_run(variant, path, count))
            ratios = [
                raw / replay
                for raw, replay in zip(seconds["raw pyzmq"], seconds["mflow replay"], strict=True)
            ]
            results[name] = {
                "count": count,
                "messages_per_s": {v: count / statistics.median(s) for v, s in seconds.items()},
                "seconds": seconds,
                "ratios": ratios,
                "ratio": statistics.median(ratios),
                "loads": loads,
                "directory": str(Path(tmp).parent),
            }
            path.unlink()
    return results


def print_results(results: dict) -> None:
    for name, point in results.items():
        rates = point["messages_per_s"]
        print(
            f"replay {name} from {point['directory']}: raw pyzmq {rates['raw pyzmq']:,.0f} msg/s"
            f" | mflow replay {rates['mflow replay']:,.0f} msg/s = {point['ratio']:.2f}x"
            f" (per run: {', '.join(f'{r:.2f}' for r in point['ratios'])};"
            f" load {', '.join(f'{x:.1f}' for x in point['loads'])})",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the messages")
    parser.add_argument("--workdir", type=Path, help="where the recordings go")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    results = measure(args.runs, args.scale, args.workdir)
    print_results(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
