"""What CURVE costs: MB/s of 1 MiB messages through an mflow stream, plain and with CURVE.

A sender thread pushes pre-built zero-copy frames (pyzmq releases the GIL while sending;
encryption runs in libzmq's I/O threads) to an mflow PULL stream in the same process, over
tcp on 127.0.0.1; the two variants alternate and each repetition gives a ratio. Run by hand
or through ``bench/run.py --parts curve``:

    python bench/bench_curve.py [--count N] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time

import zmq

import mflow
from mflow.security import Curve

MIB = 1024 * 1024


def one_run(curve: bool, count: int, size: int) -> float:
    """MB/s of ``count`` messages of ``size`` bytes."""
    server_public, server_secret = zmq.curve_keypair()
    receiver_curve = Curve(server_public, server_secret) if curve else None
    receiver = mflow.connect(
        "tcp://127.0.0.1:*",
        conn_type=mflow.BIND,
        mode=mflow.PULL,
        receive_timeout=30_000,
        queue_size=100,
        curve=receiver_curve,
    )
    context = zmq.Context()
    sender = context.socket(zmq.PUSH)
    sender.linger = 0
    if curve:
        sender.curve_publickey, sender.curve_secretkey = zmq.curve_keypair()
        sender.curve_serverkey = server_public
    sender.connect(receiver.endpoint)
    header = b'{"htype": "array-1.0", "type": "uint8", "shape": [%d]}' % size
    payload = zmq.Frame(bytes(size))

    def send() -> None:
        for _ in range(count + 10):
            sender.send_multipart([header, payload], copy=False)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    for _ in range(10):
        receiver.receive()
    began = time.perf_counter()
    for _ in range(count):
        if receiver.receive() is None:
            raise SystemExit("a message was lost")
    seconds = time.perf_counter() - began
    thread.join()
    sender.close()
    context.term()
    receiver.disconnect()
    return count * size / seconds / 1e6


def measure(count: int, repeat: int, size: int = MIB) -> dict:
    """Alternating runs of both variants; medians and the per-repetition ratios."""
    plain, curve = [], []
    for repetition in range(repeat):
        for with_curve in (False, True) if repetition % 2 == 0 else (True, False):
            (curve if with_curve else plain).append(one_run(with_curve, count, size))
    ratios = [c / p for p, c in zip(plain, curve, strict=True)]
    return {
        "size": size,
        "count": count,
        "plain_mb_per_s": statistics.median(plain),
        "curve_mb_per_s": statistics.median(curve),
        "ratios": ratios,
        "ratio": statistics.median(ratios),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(measure(args.count, args.repeat)))


if __name__ == "__main__":
    main()
