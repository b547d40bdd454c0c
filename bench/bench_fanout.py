"""Fan-out of EIGER2 16M Stream V2 bslz4 images to 1, 2 and 3 outputs vs ``mflow split``.

A sender process pushes a series (start, N images of 4148 x 4362 uint16 bslz4, end) as fast
as it can; the middle (``mflow fanout`` or ``mflow split``) forwards it; each output is a
raw pyzmq consumer process that counts images until the series end. The rate is the images
that arrived over the time from the first image to the last end, all processes on this
machine. Run by hand or through ``bench/run.py --parts fanout``:

    python bench/bench_fanout.py [--count N] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import cbor2
import numpy as np
import zmq

from mflow.codecs import encode_bslz4

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT = 4148, 4362

SENDER = """
import sys, zmq
context = zmq.Context()
socket = context.socket(zmq.PUSH)
socket.sndhwm = 20
socket.connect(sys.argv[1])
start, image, end = (open(path, "rb").read() for path in sys.argv[2:5])
count = int(sys.argv[5])
socket.send(start)
for _ in range(count):
    socket.send(image, copy=False)  # a new zero-copy frame over the same bytes each time
socket.send(end)
socket.close(linger=-1)
context.term()  # waits until everything left, while the image's bytes are still alive
"""

CONSUMER = """
import json, sys, time, zmq
socket = zmq.Context().socket(zmq.PULL)
socket.rcvhwm = 20
socket.bind("tcp://127.0.0.1:*")
print(socket.last_endpoint.decode(), flush=True)
images, first = 0, None
while True:
    message = socket.recv(copy=False)
    kind = bytes(message.buffer[:16])  # the first key is "type": text "image" or "end"
    if b"\x64type\x65image" in kind:
        images += 1
        first = first or time.time()
    elif b"\x64type\x63end" in kind:
        break
print(json.dumps({"images": images, "first": first, "last": time.time()}), flush=True)
"""


def series_files(workdir: Path) -> tuple[Path, Path, Path]:
    """The start, image and end messages of a 16M bslz4 series, written to ``workdir``."""
    rng = np.random.default_rng(1)
    frame = rng.poisson(0.4, (HEIGHT, WIDTH)).astype(np.uint16)
    blob = encode_bslz4(frame.reshape(-1))
    tagged = cbor2.CBORTag(
        40, [[HEIGHT, WIDTH], cbor2.CBORTag(69, cbor2.CBORTag(56500, ["bslz4", 2, blob]))]
    )
    messages = {
        "start": {"type": "start", "series_id": 1, "image_size_x": WIDTH, "image_size_y": HEIGHT},
        "image": {"type": "image", "series_id": 1, "image_id": 0, "data": {"threshold_1": tagged}},
        "end": {"type": "end", "series_id": 1},
    }
    paths = []
    for name, message in messages.items():
        path = workdir / f"{name}.cbor"
        path.write_bytes(b"\xd9\xd9\xf7" + cbor2.dumps(message))
        paths.append(path)
    return paths[0], paths[1], paths[2]


def free_address() -> str:
    probe = zmq.Context.instance().socket(zmq.PULL)
    port = probe.bind_to_random_port("tcp://127.0.0.1")
    probe.close(linger=0)
    return f"tcp://127.0.0.1:{port}"


def one_run(middle: str, outputs: int, count: int, files: tuple[Path, Path, Path]) -> dict:
    consumers = [
        subprocess.Popen([sys.executable, "-c", CONSUMER], stdout=subprocess.PIPE, text=True)
        for _ in range(outputs)
    ]
    addresses = [consumer.stdout.readline().strip() for consumer in consumers]
    source = free_address()
    source_bind = source.replace("127.0.0.1", "*")
    command = [
        sys.executable,
        "-m",
        "mflow",
        middle,
        source_bind,
        *addresses,
        "-q",
        "--queue-size",
        "20",
    ]
    if middle == "fanout":
        command += ["--block", "10", "--output-queue-size", "20"]
    forwarder = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    sender = subprocess.Popen([sys.executable, "-c", SENDER, source, *map(str, files), str(count)])
    try:
        results = [
            json.loads(consumer.communicate(timeout=120)[0].splitlines()[-1])
            for consumer in consumers
        ]
    finally:
        sender.wait(timeout=60)
        forwarder.terminate()
        forwarder.wait(timeout=30)
    images = sum(r["images"] for r in results)
    seconds = max(r["last"] for r in results) - min(r["first"] for r in results if r["first"])
    return {
        "images": images,
        "images_per_s": images / seconds,
        "per_output": [r["images"] for r in results],
        "load": os.getloadavg()[0],
    }


def measure(count: int, repeat: int, workdir: Path) -> dict:
    """Split to one output and fan-out to 1, 2, 3 outputs, alternating; ratios per run."""
    files = series_files(workdir)
    variants = [("split", 1), ("fanout", 1), ("fanout", 2), ("fanout", 3)]
    rates: dict[str, list[float]] = {f"{m} {n}": [] for m, n in variants}
    for repetition in range(repeat):
        for middle, outputs in variants if repetition % 2 == 0 else variants[::-1]:
            run = one_run(middle, outputs, count, files)
            if run["images"] != count:
                raise SystemExit(f"{middle} to {outputs}: {run['images']} of {count} images")
            rates[f"{middle} {outputs}"].append(run["images_per_s"])
    split = rates.pop("split 1")
    result: dict = {"count": count, "split_images_per_s": statistics.median(split)}
    for name, values in rates.items():
        ratios = [v / s for v, s in zip(values, split, strict=True)]
        result[name] = {
            "images_per_s": statistics.median(values),
            "ratios": ratios,
            "ratio": statistics.median(ratios),
        }
    return result


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(measure(args.count, args.repeat, Path(tmp)), indent=1))


if __name__ == "__main__":
    main()
