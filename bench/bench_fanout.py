"""Fan-out of EIGER2 16M Stream V2 bslz4 images to 1, 2 and 3 outputs vs ``mflow split``,
and the aggregate write rate of 1, 2 and 3 ``mflow write --part K/N`` processes behind it.

A sender process pushes a series (start, N images of 4148 x 4362 uint16 bslz4 numbered
``image_id`` 0, 1, ..., end) as fast as it can.

Forwarding: the middle (``mflow fanout`` or ``mflow split``) forwards it; each output is
a raw pyzmq consumer process that counts images until the series end. The rate is the
images that arrived over the time from the first image to the last end.

Writing (``--writers``): the fan-out divides the images by block among N writer processes
writing one dataset (data files of one block each) to a directory on /dev/shm and one on
disk; the rate is the images (and their compressed bytes) over the time from the sender's
start to the last writer's exit (the master file written), and on disk also to the files'
``fsync``. Every process's CPU time is recorded, and the load; repetitions alternate the
order.

All processes run on this machine. By hand or through ``bench/run.py --parts fanout,write_parts``:

    python bench/bench_fanout.py [--count N] [--repeat N] [--writers] [--disk DIRECTORY]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cbor2
import numpy as np
import zmq

from mflow.codecs import encode_bslz4

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT = 4148, 4362

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


def series_messages(image_id: int = 0, **start: object) -> tuple[dict[str, dict], int]:
    """The start, image and end messages of a 16M bslz4 series (``start``: more fields of
    the start message) and the image's compressed size."""
    rng = np.random.default_rng(1)
    frame = rng.poisson(0.4, (HEIGHT, WIDTH)).astype(np.uint16)
    blob = encode_bslz4(frame.reshape(-1))
    tagged = cbor2.CBORTag(
        40, [[HEIGHT, WIDTH], cbor2.CBORTag(69, cbor2.CBORTag(56500, ["bslz4", 2, blob]))]
    )
    return {
        "start": {
            "type": "start",
            "series_id": 1,
            "image_size_x": WIDTH,
            "image_size_y": HEIGHT,
            **start,
        },
        "image": {
            "type": "image",
            "series_id": 1,
            "image_id": image_id,
            "data": {"threshold_1": tagged},
        },
        "end": {"type": "end", "series_id": 1},
    }, len(blob)


def message_files(workdir: Path, messages: dict[str, dict]) -> tuple[Path, Path, Path]:
    """The start, image and end messages written to ``workdir`` as self-described CBOR."""
    paths = []
    for name, message in messages.items():
        path = workdir / f"{name}.cbor"
        path.write_bytes(b"\xd9\xd9\xf7" + cbor2.dumps(message))
        paths.append(path)
    return paths[0], paths[1], paths[2]


#: Sends the start, ``count`` images numbered 0, 1, ... (the image message's ``image_id``
#: is a 4-byte CBOR integer at a known offset, patched per image) and the end.
NUMBERED_SENDER = """
import sys, zmq
context = zmq.Context()
socket = context.socket(zmq.PUSH)
socket.sndhwm = 20
socket.connect(sys.argv[1])
start, image, end = (open(path, "rb").read() for path in sys.argv[2:5])
offset, count = int(sys.argv[5]), int(sys.argv[6])
socket.send(start)
image = bytearray(image)
for number in range(count):
    image[offset : offset + 4] = number.to_bytes(4, "big")
    socket.send(image)  # copied: the next image patches the buffer
socket.send(end)
socket.close(linger=-1)
context.term()
"""

#: The ``image_id`` placeholder: CBOR encodes it as 0x1a and 4 bytes, as any number < 2**32.
_ID_MARK = 0x5EED5EED


def numbered_series_files(workdir: Path, count: int) -> tuple[tuple[Path, Path, Path], int, int]:
    """The start, image and end of a 16M bslz4 series of ``count`` images (the start
    announces them), the offset of the image's ``image_id`` and its compressed size."""
    messages, image_bytes = series_messages(
        _ID_MARK, number_of_images=count, image_dtype="uint16", channels=["threshold_1"]
    )
    files = message_files(workdir, messages)
    offset = files[1].read_bytes().index(b"\x1a" + _ID_MARK.to_bytes(4, "big")) + 1
    return files, offset, image_bytes


def free_address() -> str:
    probe = zmq.Context.instance().socket(zmq.PULL)
    port = probe.bind_to_random_port("tcp://127.0.0.1")
    probe.close(linger=0)
    return f"tcp://127.0.0.1:{port}"


def one_run(
    middle: str, outputs: int, count: int, files: tuple[Path, Path, Path], offset: int
) -> dict:
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
    sender = subprocess.Popen(
        [sys.executable, "-c", NUMBERED_SENDER, source, *map(str, files), str(offset), str(count)]
    )
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
    files, offset, _ = numbered_series_files(workdir, count)
    variants = [("split", 1), ("fanout", 1), ("fanout", 2), ("fanout", 3)]
    rates: dict[str, list[float]] = {f"{m} {n}": [] for m, n in variants}
    for repetition in range(repeat):
        for middle, outputs in variants if repetition % 2 == 0 else variants[::-1]:
            run = one_run(middle, outputs, count, files, offset)
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


def _cpu_of(process: subprocess.Popen, timeout: float) -> float:
    """Wait for ``process`` to end (at most ``timeout`` s); its CPU seconds (user + system)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"{process.args[:4]} did not end within {timeout} s")
        time.sleep(0.01)  # a benchmark's process watch, not a test's synchronisation


def _wait_until_connected(fanout: subprocess.Popen, outputs: int) -> None:
    """Read the fan-out's ``--json`` lines until every output has its consumer; then keep
    draining them (a full pipe would stop it)."""
    assert fanout.stdout is not None
    for line in fanout.stdout:
        event = json.loads(line)
        if event.get("event") == "progress" and all(o["connected"] for o in event["outputs"]):
            break
    else:
        raise SystemExit("the fan-out ended before its outputs were connected")
    threading.Thread(target=fanout.stdout.read, daemon=True).start()


def write_run(
    writers: int, count: int, block: int, files: tuple, offset: int, directory: Path
) -> dict:
    """One series through ``mflow fanout`` to ``writers`` writer processes in ``directory``."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    load = os.getloadavg()[0]
    source, outputs = free_address(), [free_address() for _ in range(writers)]
    fanout = subprocess.Popen(
        [sys.executable, "-m", "mflow", "fanout", source.replace("127.0.0.1", "*")]
        + [o.replace("127.0.0.1", "*") for o in outputs]
        + ["--block", str(block), "--output-queue-size", "20", "--queue-size", "20"]
        + ["--json", "-i", "0.1", "-n", str(count + 2)],
        stdout=subprocess.PIPE,
        text=True,
    )
    own = [sum(1 for f in range(count) if f // block % writers == k) for k in range(writers)]
    parts = [
        subprocess.Popen(
            [sys.executable, "-m", "mflow", "write", output, str(directory), "-q"]
            + ["--part", f"{k + 1}/{writers}", "--frames-per-file", str(block)]
            + ["--queue-size", "20", "-n", str(own[k] + 2)],
            stdout=subprocess.DEVNULL,
        )
        for k, output in enumerate(outputs)
    ]
    _wait_until_connected(fanout, writers)
    began = time.monotonic()
    sender = subprocess.Popen(
        [sys.executable, "-c", NUMBERED_SENDER, source, *map(str, files), str(offset), str(count)]
    )
    writer_cpu = [_cpu_of(part, 300) for part in parts]
    written = time.monotonic() - began
    fanout_cpu, sender_cpu = _cpu_of(fanout, 60), _cpu_of(sender, 60)
    if any(part.returncode for part in parts) or fanout.returncode:
        raise SystemExit(f"{writers} writers: a process failed")
    data_files = sorted(directory.glob("*_data_*.h5"))
    for path in data_files:
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
    synced = time.monotonic() - began
    return {
        "seconds": written,
        "seconds_to_fsync": synced,
        "file_bytes": sum(p.stat().st_size for p in data_files),
        "cpu_s": {"sender": sender_cpu, "fanout": fanout_cpu, "writers": writer_cpu},
        "load": load,
    }


def measure_writers(
    count: int, repeat: int, workdir: Path, targets: dict[str, Path], block: int = 10
) -> dict:
    """1, 2 and 3 writers behind the fan-out in each target directory, alternating. The
    processes' CPU time per image leaves out their start-up (measured once, on a series
    without images)."""
    files, offset, image_bytes = numbered_series_files(workdir, count)
    # The processes' CPU time for a series without images: their start-up, not per image.
    empty = workdir / "empty"
    empty.mkdir(exist_ok=True)
    empty_files = numbered_series_files(empty, 0)[0]
    idle_directory = next(iter(targets.values())) / "idle"
    idle = [write_run(1, 0, block, empty_files, offset, idle_directory) for _ in range(3)]
    start_cpu = {  # the least of three: the first start reads cold files
        "sender": min(r["cpu_s"]["sender"] for r in idle),
        "fanout": min(r["cpu_s"]["fanout"] for r in idle),
        "writers": min(r["cpu_s"]["writers"][0] for r in idle),
    }
    variants = [(target, writers) for target in targets for writers in (1, 2, 3)]
    runs: dict[str, list[dict]] = {f"{t} {n}": [] for t, n in variants}
    for repetition in range(repeat):
        for target, writers in variants if repetition % 2 == 0 else variants[::-1]:
            directory = targets[target] / f"writers{writers}"
            run = write_run(writers, count, block, files, offset, directory)
            shutil.rmtree(directory)
            runs[f"{target} {writers}"].append(run)
    result: dict = {
        "count": count,
        "image_bytes": image_bytes,
        "block": block,
        "start_cpu_s": start_cpu,
    }
    for name, values in runs.items():
        target, writers = name.split()
        seconds = statistics.median(r["seconds"] for r in values)
        result[name] = {
            "images_per_s": count / seconds,
            "mb_per_s": count * image_bytes / seconds / 1e6,
            "per_run_images_per_s": [count / r["seconds"] for r in values],
            "vs_one_writer": None,
            "cpu_s_per_image": {
                process: statistics.median(
                    (sum(r["cpu_s"]["writers"]) if process == "writers" else r["cpu_s"][process])
                    - start_cpu[process] * (int(writers) if process == "writers" else 1)
                    for r in values
                )
                / count
                for process in ("sender", "fanout", "writers")
            },
            "loads": [r["load"] for r in values],
        }
        if target == "disk":
            to_fsync = statistics.median(r["seconds_to_fsync"] for r in values)
            result[name]["images_per_s_to_fsync"] = count / to_fsync
        one = result[f"{target} 1"]["images_per_s"]
        result[name]["vs_one_writer"] = result[name]["images_per_s"] / one
    return result


def print_writers(result: dict) -> None:
    """One line per target: images/s and MB/s (compressed) of 1, 2, 3 writers."""
    for target in ("shm", "disk"):
        if f"{target} 1" not in result:
            continue
        line = f"write 16M bslz4 to {target}:"
        for writers in (1, 2, 3):
            point = result[f"{target} {writers}"]
            cpu = point["cpu_s_per_image"]
            line += (
                f" | {writers} writer(s) {point['images_per_s']:.0f} images/s"
                f" {point['mb_per_s']:.0f} MB/s = {point['vs_one_writer']:.2f}x"
                f" (cpu ms/image: sender {1e3 * cpu['sender']:.0f}, fanout"
                f" {1e3 * cpu['fanout']:.0f}, writers {1e3 * cpu['writers']:.0f})"
            )
            if "images_per_s_to_fsync" in point:
                line += f", {point['images_per_s_to_fsync']:.0f} images/s to fsync"
        print(line + f"; load {max(max(result[f'{target} {n}']['loads']) for n in (1, 2, 3)):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--writers", action="store_true", help="measure the writers instead")
    parser.add_argument("--disk", default=None, help="a directory on disk (default: the cwd)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.writers:
            print(json.dumps(measure(args.count, args.repeat, Path(tmp)), indent=1))
            return
        with (
            tempfile.TemporaryDirectory(dir="/dev/shm") as shm,
            tempfile.TemporaryDirectory(dir=args.disk or ".") as disk,
        ):
            targets = {"shm": Path(shm), "disk": Path(disk)}
            result = measure_writers(args.count, args.repeat, Path(tmp), targets)
        print(json.dumps(result, indent=1))
        print_writers(result)


if __name__ == "__main__":
    main()
