"""mflow's benchmark: every figure side by side with its baseline, measured in one run.

    ./dev bench [--quick] [--keep-freed-memory] [--psi-mflow-python PATH] [--json FILE]

Parts (each a table with ratios; all results also go to JSON):
- receive: raw pyzmq ``recv_multipart`` (copy and no copy), this mflow's ``receive()``
  (dynamic dispatch of array-1.0 into numpy arrays, full statistics) and, with
  ``--psi-mflow-python``, psi-mflow 1.0 under that interpreter; this mflow once more with
  glibc's allocator left at its defaults (``MFLOW_MALLOC_DEFAULTS=1``); tcp and ipc; 16 B
  to 8 MiB. Messages come from a C sender in another process (see sender.c); its CPU time per
  message is reported so that a sender-bound point would show.
- memory: resident size while mflow receives 1,000,000 small messages.
- split: ``mflow split`` against ``zmq.proxy`` at 1 KiB and 1 MiB, one output.
- dump: ``mflow dump`` (single-file format) against a raw receive-and-write loop, 1 MiB.
- replay: ``mflow replay`` against a raw pyzmq sender reading the same recording, 1 KiB
  and 1 MiB; see bench_replay.py.
- align: ``mflow merge --align frame`` of two inputs, 1 KiB, both sending and one silent
  (its cost must not grow with the groups waiting for the silent input).
- async: ``mflow.asyncio``'s receive against the synchronous one, 1 KiB and 1 MiB, on
  asyncio's own event loop and, where it is installed, on uvloop's; 5 × ``--repeat``
  repetitions, the median ratio with its 95 % confidence interval.
- curve: the same 1 MiB stream plain and CURVE-encrypted; see bench_curve.py.
- decode: bitshuffle-LZ4 decoding of an EIGER2 16M frame against the bitshuffle library.
- fanout: ``mflow fanout`` of 16M bslz4 images to 1, 2 and 3 consumers against ``mflow
  split`` to one; see bench_fanout.py.
- write_parts: the aggregate write rate of 1, 2 and 3 ``mflow write --part K/N``
  processes behind ``mflow fanout`` (16M bslz4), to /dev/shm and to disk; see
  bench_fanout.py.
- stream2: Stream V2 4M and 16M images: raw pyzmq, mflow ``receive(decode=False)``, mflow
  ``receive()`` and the DECTRIS reference client (cbor2 + dectris-compression); see
  bench_stream2.py.
- bsread: 10 float64 channels of 1000 values, ``bitshuffle_lz4`` and ``lz4``: raw pyzmq
  against mflow ``receive()`` and, when the ``--psi-mflow-python`` interpreter has
  psi-bsread, psi-bsread's ``Source`` (one OpenMP thread); see bench_bsread.py.
- import: a fresh interpreter's ``import mflow`` against its ``import zmq``, byte-compiled
  as installed; see bench_import.py.

Every point is the median of ``--repeat`` runs (default 3); the 1-minute load average
before each run is recorded so that noisy points can be recognised.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq

HERE = Path(__file__).resolve().parent
KIB, MIB = 1024, 1024 * 1024
SIZES = [16, KIB, 64 * KIB, MIB, 8 * MIB]
#: Messages per timed run, chosen for roughly half a second at each size.
COUNTS = {16: 200_000, KIB: 150_000, 64 * KIB: 30_000, MIB: 2_000, 8 * MIB: 300}
#: Messages of 1 MiB per dump run.
DUMP_COUNT = 1_000
RECEIVERS = ["raw-copy", "raw-nocopy", "mflow"]
#: glibc serves buffers up to 64 MiB from its heap and never trims it, instead of mapping
#: each large buffer anew (and page-faulting it in) once its heuristics give up.
GLIBC_KEEP_FREED_MEMORY = {
    "MALLOC_MMAP_THRESHOLD_": str(64 * MIB),
    "MALLOC_TRIM_THRESHOLD_": str(4096 * MIB),
}


# -- processes -------------------------------------------------------------------------


def build_sender(workdir: Path) -> list[str]:
    """Compile the C sender against pyzmq's libzmq; fall back to the Python sender."""
    libs = sorted(Path(zmq.__file__).parent.parent.glob("pyzmq.libs/libzmq*.so*"))
    compiler = shutil.which("cc") or shutil.which("gcc")
    if libs and compiler:
        binary = workdir / "sender"
        build = subprocess.run(
            [
                compiler,
                "-O2",
                "-o",
                str(binary),
                str(HERE / "sender.c"),
                str(libs[0]),
                f"-Wl,-rpath,{libs[0].parent}",
            ],
            capture_output=True,
            text=True,
        )
        if build.returncode == 0:
            return [str(binary)]
        print(
            f"note: C sender did not build ({build.stderr.strip()}); using Python", file=sys.stderr
        )
    return [sys.executable, str(HERE / "sender.py")]


def start(command: list[str], environment: dict[str, str] | None = None) -> subprocess.Popen:
    env = None if environment is None else {**os.environ, **environment}
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)


def finish(process: subprocess.Popen, timeout: float = 120) -> str:
    """Wait for ``process`` and return its stdout."""
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as timed_out:
        process.kill()
        process.communicate()
        raise RuntimeError(f"{process.args[0]} did not finish within {timeout} s") from timed_out
    if process.returncode:
        raise RuntimeError(f"{' '.join(map(str, process.args))} failed ({process.returncode})")
    return out


def start_sender(sender: list[str], endpoint: str, size: int, count: int) -> subprocess.Popen:
    return start(sender + [endpoint, str(size), str(count)])


def stop_sender(process: subprocess.Popen) -> tuple[float, float]:
    """End a sender that is sending its tail; its timed seconds and CPU seconds."""
    timed = process.stdout.readline().strip()
    process.terminate()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    except ChildProcessError:  # already reaped elsewhere (seen now and then): no CPU figure
        cpu = float("nan")
    else:
        process.returncode = os.waitstatus_to_exitcode(status)
        cpu = usage.ru_utime + usage.ru_stime
    process.stdout.close()
    if not timed:
        raise RuntimeError(f"sender failed ({process.returncode})")
    return float(timed), cpu


def ipc_address(workdir: Path, name: str) -> str:
    return f"ipc://{workdir / name}.ipc"


# -- receive ---------------------------------------------------------------------------


def one_receive_run(
    python: str,
    variant: str,
    address: str,
    size: int,
    count: int,
    sender: list[str],
    rss_samples: int = 0,
    environment: dict[str, str] | None = None,
) -> dict:
    load = os.getloadavg()[0]
    receiver = start(
        [
            python,
            str(HERE / "receiver.py"),
            "--variant",
            variant,
            "--address",
            address,
            "--size",
            str(size),
            "--count",
            str(count),
            "--rss-samples",
            str(rss_samples),
        ],
        environment,
    )
    endpoint = receiver.stdout.readline().strip()
    source = start_sender(sender, endpoint, size, count + 100)
    try:
        out = finish(receiver)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
        sent, sender_cpu = stop_sender(source)
    result = json.loads(out.strip().splitlines()[-1])
    result.update(load=load, sender_cpu_per_message=sender_cpu / (count + 100), sender_wall=sent)
    return result


def median_run(runs: list[dict]) -> dict:
    ordered = sorted(runs, key=lambda r: r["wall"])
    middle = dict(ordered[len(ordered) // 2])
    middle["walls"] = [r["wall"] for r in runs]
    middle["loads"] = [r["load"] for r in runs]
    return middle


#: The receives of the receive part that run mflow in an environment of their own.
RECEIVE_ENVIRONMENTS = {"mflow-malloc-defaults": {"MFLOW_MALLOC_DEFAULTS": "1"}}


def bench_receive(args, sender: list[str], workdir: Path) -> list[dict]:
    names = ["raw-copy", "raw-nocopy", "mflow", *RECEIVE_ENVIRONMENTS]
    pythons = {name: sys.executable for name in names}
    if args.psi_mflow_python:
        pythons["psi-mflow"] = args.psi_mflow_python
    rows = []
    for transport in args.transports:
        for size in args.sizes:
            count = max(50, int(COUNTS[size] * args.scale))
            runs: dict[str, list[dict]] = {name: [] for name in pythons}
            for repetition in range(args.repeat):
                order = list(pythons) if repetition % 2 == 0 else list(reversed(pythons))
                for name in order:
                    variant = "mflow" if name in ("psi-mflow", *RECEIVE_ENVIRONMENTS) else name
                    address = (
                        "tcp://127.0.0.1:*"
                        if transport == "tcp"
                        else ipc_address(workdir, f"{name}-{size}-{repetition}")
                    )
                    runs[name].append(
                        one_receive_run(
                            pythons[name],
                            variant,
                            address,
                            size,
                            count,
                            sender,
                            environment=RECEIVE_ENVIRONMENTS.get(name),
                        )
                    )
            row = {"transport": transport, "size": size, "count": count}
            for name, results in runs.items():
                best = median_run(results)
                row[name] = {
                    "messages_per_s": count / best["wall"],
                    "mb_per_s": count * size / best["wall"] / 1e6,
                    "cpu_us_per_message": best["cpu"] / count * 1e6,
                    "sender_cpu_us_per_message": best["sender_cpu_per_message"] * 1e6,
                    "walls": best["walls"],
                    "loads": best["loads"],
                    "decoded_ok": best["decoded_ok"],
                    "zero_copy": best.get("zero_copy"),
                }
            rows.append(row)
            print_receive_row(row)
    return rows


def print_receive_row(row: dict) -> None:
    size, transport = row["size"], row["transport"]
    raw = max(row["raw-copy"]["messages_per_s"], row["raw-nocopy"]["messages_per_s"])
    baseline = raw if size <= KIB else row["raw-nocopy"]["messages_per_s"]
    ours = row["mflow"]
    line = (
        f"{transport:4} {human_size(size):>7}"
        f" | raw copy {row['raw-copy']['messages_per_s']:>9,.0f}"
        f" | raw no-copy {row['raw-nocopy']['messages_per_s']:>9,.0f}"
        f" | mflow {ours['messages_per_s']:>9,.0f} ({ours['mb_per_s']:>7,.0f} MB/s)"
        f" = {ours['messages_per_s'] / baseline:4.2f}x"
        f" | cpu {ours['cpu_us_per_message']:6.1f} us"
        f" | sender cpu {ours['sender_cpu_us_per_message']:5.2f} us"
        f" | zero-copy {ours['zero_copy']}"
        f" | glibc defaults {row['mflow-malloc-defaults']['messages_per_s']:>9,.0f}"
    )
    if "psi-mflow" in row:
        psi = row["psi-mflow"]["messages_per_s"]
        line += f" | psi-mflow {psi:>9,.0f} = {psi / baseline:4.2f}x"
    print(line, flush=True)


# -- asyncio ---------------------------------------------------------------------------

ASYNC_SIZES = (KIB, MIB)
#: Repetitions of the async part per ``--repeat``: at 1 MiB one repetition's ratio spreads
#: from 0.6 to 1.6 (a receiver process either falls into glibc's page-faulting or not), and
#: the median of 3 or 9 of them moves by a tenth from run to run.
ASYNC_REPETITIONS_PER_REPEAT = 5


def async_variants() -> list[str]:
    """The receives the asyncio part compares: the synchronous one, then `mflow.asyncio` on
    asyncio's own event loop and, where it is installed, on uvloop's."""
    sys.path.insert(0, str(HERE))
    from receiver import EVENT_LOOPS

    return ["mflow"] + [
        variant
        for variant, event_loop in EVENT_LOOPS.items()
        if importlib.util.find_spec(event_loop) is not None
    ]


def bench_async(args, sender: list[str]) -> list[dict]:
    """`mflow.asyncio` receive against the synchronous receive, ratio per repetition."""
    from receiver import EVENT_LOOPS

    variants = async_variants()
    rows = []
    for size in ASYNC_SIZES:
        # Three times the receive part's messages: a run of about a second is at the mercy
        # of the scheduler on a small machine, and asyncio's cost is a few percent.
        count = max(50, int(3 * COUNTS[size] * args.scale))
        loads = []
        ratios: dict[str, list[float]] = {variant: [] for variant in variants[1:]}
        rates: dict[str, list[float]] = {variant: [] for variant in variants}
        cpus: dict[str, list[float]] = {variant: [] for variant in variants}
        faults: dict[str, list[float]] = {variant: [] for variant in variants}
        for repetition in range(ASYNC_REPETITIONS_PER_REPEAT * args.repeat):
            # Each variant goes first in turn: none always meets the machine in one state.
            turn = repetition % len(variants)
            walls = {}
            for variant in variants[turn:] + variants[:turn]:
                run = one_receive_run(
                    sys.executable, variant, "tcp://127.0.0.1:*", size, count, sender
                )
                walls[variant] = run["wall"]
                cpus[variant].append(run["cpu"] / count)
                faults[variant].append(run["page_faults"] / count)
                loads.append(run["load"])
                rates[variant].append(count / walls[variant])
            for variant in variants[1:]:
                ratios[variant].append(walls["mflow"] / walls[variant])
        row = {
            "size": size,
            "count": count,
            "ratios": ratios,
            "ratio": {k: statistics.median(v) for k, v in ratios.items()},
            "ratio_interval": {k: median_interval(v) for k, v in ratios.items()},
            "messages_per_s": {k: statistics.median(v) for k, v in rates.items()},
            "cpu_us_per_message": {k: statistics.median(v) * 1e6 for k, v in cpus.items()},
            "page_faults_per_message": {k: statistics.median(v) for k, v in faults.items()},
            "loads": loads,
        }
        rows.append(row)
        print(
            f"async {human_size(size):>7} | sync {row['messages_per_s']['mflow']:>9,.0f} msg/s,"
            f" receiver CPU {row['cpu_us_per_message']['mflow']:.1f} µs/msg,"
            f" {row['page_faults_per_message']['mflow']:.1f} page faults/msg"
            f" (load {min(loads):.1f}-{max(loads):.1f})",
            flush=True,
        )
        for variant in variants[1:]:
            interval = row["ratio_interval"][variant]
            print(
                f"      {EVENT_LOOPS[variant]:>13}"
                f" {row['messages_per_s'][variant]:>9,.0f} msg/s = {row['ratio'][variant]:4.2f}x"
                + (f" (95% CI {interval[0]:.2f}-{interval[1]:.2f})" if interval else "")
                + f", receiver CPU {row['cpu_us_per_message'][variant]:.1f} µs/msg,"
                f" {row['page_faults_per_message'][variant]:.1f} page faults/msg (per"
                f" repetition: {', '.join(f'{r:.2f}' for r in ratios[variant])})",
                flush=True,
            )
    return rows


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """A distribution-free confidence interval of the median of ``values``: the order
    statistics whose ranks the binomial(n, 1/2) distribution bounds. None for too few
    values (fewer than 6 at 95 %)."""
    ordered = sorted(values)
    count = len(ordered)
    tail = (1 - confidence) / 2
    outside, below = 0, 1 / 2**count  # P(at most `outside` values below the median)
    while below <= tail:
        outside += 1
        below += math.comb(count, outside) / 2**count
    if outside == 0:
        return None
    return ordered[outside - 1], ordered[count - outside]


def human_size(size: int) -> str:
    for unit, factor in (("MiB", MIB), ("KiB", KIB)):
        if size >= factor:
            return f"{size // factor} {unit}"
    return f"{size} B"


# -- memory ----------------------------------------------------------------------------


def bench_memory(args, sender: list[str]) -> dict:
    count = max(10_000, int(1_000_000 * args.scale))
    result = one_receive_run(
        sys.executable, "mflow", "tcp://127.0.0.1:*", 16, count, sender, rss_samples=10
    )
    rss = result["rss"]
    growth = (rss[-1] - rss[1]) / rss[1]
    print(
        f"memory: {count:,} messages of 16 B, resident size {rss[1] / MIB:.1f} MiB after 10 % "
        f"-> {rss[-1] / MIB:.1f} MiB at the end ({growth:+.1%})",
        flush=True,
    )
    return {"messages": count, "rss": rss, "growth": growth}


# -- split and dump --------------------------------------------------------------------


def free_tcp_address() -> str:
    probe = zmq.Context.instance().socket(zmq.PUSH)
    port = probe.bind_to_random_port("tcp://127.0.0.1")
    probe.close(linger=0)
    return f"tcp://127.0.0.1:{port}"


PROXY = """
import sys, zmq
context = zmq.Context()
frontend, backend = context.socket(zmq.PULL), context.socket(zmq.PUSH)
frontend.bind(sys.argv[1]); backend.connect(sys.argv[2])
zmq.proxy(frontend, backend)
"""


def one_forward_run(kind: str, size: int, count: int, sender: list[str]) -> dict:
    load = os.getloadavg()[0]
    receiver = start(
        [
            sys.executable,
            str(HERE / "receiver.py"),
            "--variant",
            "raw-nocopy",
            "--address",
            "tcp://127.0.0.1:*",
            "--size",
            str(size),
            "--count",
            str(count),
        ]
    )
    output = receiver.stdout.readline().strip()
    source = free_tcp_address()
    if kind == "zmq.proxy":
        middle = subprocess.Popen([sys.executable, "-c", PROXY, source, output])
    else:
        middle = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mflow",
                "split",
                source,
                output,
                "--bind",
                "--queue-size",
                "1000",
                "-q",
            ],
            stdout=subprocess.DEVNULL,
        )
    source_process = start_sender(sender, source, size, count + 100)
    try:
        out = finish(receiver)
    finally:
        stop_sender(source_process)
        middle.terminate()
        middle.wait(timeout=10)
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
    result = json.loads(out.strip().splitlines()[-1])
    result["load"] = load
    return result


def bench_split(args, sender: list[str]) -> list[dict]:
    rows = []
    for size in (KIB, MIB):
        count = max(50, int(COUNTS[size] * args.scale))
        runs = {"zmq.proxy": [], "mflow split": []}
        for repetition in range(args.repeat):
            for kind in runs if repetition % 2 == 0 else reversed(list(runs)):
                runs[kind].append(one_forward_run(kind, size, count, sender))
        row = {"size": size, "count": count}
        for kind, results in runs.items():
            best = median_run(results)
            row[kind] = {
                "messages_per_s": count / best["wall"],
                "walls": best["walls"],
                "loads": best["loads"],
            }
        ratio = row["mflow split"]["messages_per_s"] / row["zmq.proxy"]["messages_per_s"]
        print(
            f"split {human_size(size):>7}: zmq.proxy {row['zmq.proxy']['messages_per_s']:>9,.0f}"
            f" msg/s | mflow split {row['mflow split']['messages_per_s']:>9,.0f} msg/s"
            f" = {ratio:4.2f}x",
            flush=True,
        )
        row["ratio"] = ratio
        rows.append(row)
    return rows


def one_align_run(inputs: int, max_wait: float, count: int, sender: list[str]) -> dict:
    """``mflow merge --align frame`` of two inputs, ``inputs`` of them sending."""
    load = os.getloadavg()[0]
    receiver = start(
        [
            sys.executable,
            str(HERE / "receiver.py"),
            "--variant",
            "raw-nocopy",
            "--address",
            "tcp://127.0.0.1:*",
            "--size",
            str(KIB),
            "--count",
            str(count),
        ]
    )
    output = receiver.stdout.readline().strip()
    sources = [free_tcp_address(), free_tcp_address()]
    middle = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mflow",
            "merge",
            *sources,
            "-o",
            output,
            "--connect",
            "--align",
            "frame",
            "--max-wait",
            str(max_wait),
            "--queue-size",
            "1000",
            "-q",
        ],
        stdout=subprocess.DEVNULL,
    )
    senders = [start_sender(sender, "@" + source, KIB, count + 100) for source in sources[:inputs]]
    try:
        out = finish(receiver)
    finally:
        for process in (middle, *senders):  # merge first: the senders may be held up
            process.terminate()
            process.wait(timeout=30)
        for source_process in senders:
            source_process.stdout.close()
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
    result = json.loads(out.strip().splitlines()[-1])
    result["load"] = load
    return result


def bench_align(args, sender: list[str]) -> list[dict]:
    """``merge --align``: both inputs sending, and one silent (every group waits
    ``--max-wait`` seconds, so thousands of groups are pending)."""
    rows = []
    count = max(500, int(20_000 * args.scale))
    for inputs, max_wait in ((2, 1.0), (1, 1.0), (1, 10.0)):
        runs = [one_align_run(inputs, max_wait, count, sender) for _ in range(args.repeat)]
        best = median_run(runs)
        row = {
            "inputs_sending": inputs,
            "max_wait": max_wait,
            "count": count,
            "messages_per_s": count / best["wall"],
            "walls": best["walls"],
            "loads": best["loads"],
        }
        print(
            f"merge --align, {inputs} of 2 inputs sending, --max-wait {max_wait:g}: "
            f"{row['messages_per_s']:>9,.0f} msg/s",
            flush=True,
        )
        rows.append(row)
    return rows


RAW_DUMP = """
import sys, zmq
socket = zmq.Context().socket(zmq.PULL)
socket.set_hwm(1000)
socket.bind(sys.argv[1])
with open(sys.argv[2], "wb") as out:
    for _ in range(int(sys.argv[3])):
        for part in socket.recv_multipart(copy=False):
            out.write(part.buffer)
"""


def one_dump_run(kind: str, count: int, sender: list[str], workdir: Path) -> float:
    """Seconds from the sender's start to the writer's exit: one clock for both writers,
    each bound and listening before the sender starts."""
    path = workdir / f"dump-{kind.replace(' ', '-')}"
    writer, address = start_dump_writer(kind, path, count)
    try:
        started = time.perf_counter()
        source = start_sender(sender, address, MIB, count)
        finish(writer)
        elapsed = time.perf_counter() - started
        stop_sender(source)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    return elapsed


def start_dump_writer(kind: str, path: Path, count: int) -> tuple[subprocess.Popen, str]:
    """The writer process of ``kind``, listening, and its address.

    A free port can be taken by another process's outgoing connection before the writer
    binds it: a writer that exits before it listens is started again on another port.
    """
    for _ in range(3):
        address = free_tcp_address()
        if kind == "raw write":
            command = [sys.executable, "-c", RAW_DUMP, address, str(path), str(count)]
        else:
            command = [sys.executable, "-m", "mflow", "dump", address, str(path), "--bind"]
            command += ["--count", str(count), "--queue-size", "1000", "-q"]
        writer = start(command)
        deadline = time.monotonic() + 10
        while writer.poll() is None and not _listening(address) and time.monotonic() < deadline:
            time.sleep(0.01)
        if writer.poll() is None:
            return writer, address
        writer.communicate()
    raise RuntimeError(f"the {kind} writer could not bind a port three times")


def _listening(address: str) -> bool:
    probe = zmq.Context.instance().socket(zmq.PUSH)
    try:
        probe.bind(address)
    except zmq.ZMQError:
        return True
    finally:
        probe.close(linger=0)
    return False


def bench_dump(args, sender: list[str], workdir: Path) -> dict:
    """Both write to memory (/dev/shm) where there is one: a disk's write-back would decide."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        workdir = Path(tempfile.mkdtemp(prefix="mflow-bench-", dir=shm))
    count = max(50, int(DUMP_COUNT * args.scale))
    times: dict[str, list[float]] = {"raw write": [], "mflow dump": []}
    loads = []
    for repetition in range(args.repeat):
        loads.append(os.getloadavg()[0])
        for kind in times if repetition % 2 == 0 else reversed(list(times)):
            times[kind].append(one_dump_run(kind, count, sender, workdir))
    rates = {kind: count * MIB / statistics.median(t) / 1e6 for kind, t in times.items()}
    ratios = [raw / dump for raw, dump in zip(times["raw write"], times["mflow dump"], strict=True)]
    ratio = statistics.median(ratios)
    print(
        f"dump 1 MiB to {workdir.parent}: raw receive+write {rates['raw write']:,.0f} MB/s | "
        f"mflow dump {rates['mflow dump']:,.0f} MB/s = {ratio:4.2f}x (per repetition: "
        f"{', '.join(f'{r:.2f}' for r in ratios)}; load {', '.join(f'{x:.1f}' for x in loads)})",
        flush=True,
    )
    if workdir.parent == shm:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "count": count,
        "mb_per_s": rates,
        "times": times,
        "ratios": ratios,
        "ratio": ratio,
        "loads": loads,
        "directory": str(workdir.parent),
    }


# -- decode ----------------------------------------------------------------------------


def bench_decode(args) -> dict:
    sys.path.insert(0, str(HERE))
    from bench_codecs import measure

    result = measure(runs=max(5, args.repeat * 3), seed=1)
    print(
        f"decode bitshuffle-LZ4 4148x4362 uint16: mflow {result['mflow_s'] * 1e3:.1f} ms | "
        f"bitshuffle {result['bitshuffle_s'] * 1e3:.1f} ms = {result['ratio']:.2f}x",
        flush=True,
    )
    return result


def bench_replay(args) -> dict:
    sys.path.insert(0, str(HERE))
    from bench_replay import measure, print_results

    results = measure(runs=args.repeat, scale=args.scale)
    print_results(results)
    return results


def bench_curve(args) -> dict:
    sys.path.insert(0, str(HERE))
    from bench_curve import measure

    result = measure(count=max(100, int(1000 * args.scale)), repeat=args.repeat)
    print(
        f"curve 1 MiB: plain {result['plain_mb_per_s']:,.0f} MB/s | CURVE "
        f"{result['curve_mb_per_s']:,.0f} MB/s = {result['ratio']:.2f}x (per repetition: "
        f"{', '.join(f'{r:.2f}' for r in result['ratios'])})",
        flush=True,
    )
    return result


def bench_fanout(args, workdir: Path) -> dict:
    sys.path.insert(0, str(HERE))
    from bench_fanout import measure

    result = measure(count=max(100, int(300 * args.scale)), repeat=args.repeat, workdir=workdir)
    line = f"fanout 16M bslz4: split to 1 {result['split_images_per_s']:,.0f} images/s"
    for outputs in (1, 2, 3):
        point = result[f"fanout {outputs}"]
        line += (
            f" | fanout to {outputs} {point['images_per_s']:,.0f} = {point['ratio']:.2f}x"
            f" ({', '.join(f'{r:.2f}' for r in point['ratios'])})"
        )
    print(line, flush=True)
    return result


def bench_write_parts(args, workdir: Path) -> dict:
    sys.path.insert(0, str(HERE))
    from bench_fanout import measure_writers, print_writers

    shm = Path(tempfile.mkdtemp(prefix="mflow-bench-", dir="/dev/shm"))
    try:
        targets = {"shm": shm, "disk": workdir / "write_parts"}
        result = measure_writers(max(20, int(100 * args.scale)), args.repeat, workdir, targets)
    finally:
        shutil.rmtree(shm, ignore_errors=True)
    print_writers(result)
    return result


def bench_stream2(args) -> dict:
    sys.path.insert(0, str(HERE))
    from bench_stream2 import measure, print_results

    counts = {"4M": max(10, int(300 * args.scale)), "16M": max(5, int(100 * args.scale))}
    results = measure(runs=args.repeat, counts=counts)
    print_results(results)
    return results


def bench_decode_pool(args) -> dict:
    sys.path.insert(0, str(HERE))
    from bench_decode import measure, print_results

    results = measure(
        runs=max(5, args.repeat * 3), workers_runs=args.repeat, count=max(10, int(40 * args.scale))
    )
    print_results(results)
    return results


def bench_bsread(args) -> dict:
    sys.path.insert(0, str(HERE))
    from bench_bsread import measure, print_results

    psi_python = args.psi_mflow_python
    probe = [psi_python, "-c", "import bsread"]
    if psi_python and subprocess.run(probe, stderr=subprocess.DEVNULL).returncode:
        psi_python = None  # that interpreter has psi-mflow without psi-bsread
    results = measure(
        runs=args.repeat, count=max(500, int(3000 * args.scale)), psi_python=psi_python
    )
    print_results(results)
    return results


def bench_import(args) -> dict:
    sys.path.insert(0, str(HERE))
    from bench_import import measure, print_results

    result = measure(runs=max(7, args.repeat * 7))
    print_results(result)
    return result


# -- main ------------------------------------------------------------------------------


def machine() -> dict:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--psi-mflow-python",
        metavar="PATH",
        help="an interpreter with psi-mflow 1.0 installed, to compare with",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per point (median)")
    parser.add_argument("--quick", action="store_true", help="a fifth of the messages")
    parser.add_argument(
        "--parts",
        default="receive,memory,split,dump,replay,decode,align,async,curve,fanout,write_parts,"
        "stream2,bsread,decode_pool,import",
        help="comma-separated parts to run",
    )
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--transports", default="tcp,ipc")
    parser.add_argument("--json", metavar="FILE", default=str(HERE / "results.json"))
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="run every process with glibc's allocator set to keep freed "
        "buffers instead of returning them to the kernel (large "
        "messages then cost no page faults; see the README)",
    )
    args = parser.parse_args()
    if args.keep_freed_memory:
        os.environ.update(GLIBC_KEEP_FREED_MEMORY)
    args.scale = 0.2 if args.quick else 1.0
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.transports = args.transports.split(",")
    parts = args.parts.split(",")

    results: dict = {
        "machine": machine(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "keep_freed_memory": args.keep_freed_memory,
    }
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mflow-bench-") as tmp:
        workdir = Path(tmp)
        sender = build_sender(workdir)
        results["sender"] = "C" if sender[0].endswith("sender") else "Python"
        if "receive" in parts:
            results["receive"] = bench_receive(args, sender, workdir)
        if "memory" in parts:
            results["memory"] = bench_memory(args, sender)
        if "split" in parts:
            results["split"] = bench_split(args, sender)
        if "dump" in parts:
            results["dump"] = bench_dump(args, sender, workdir)
        if "replay" in parts:
            results["replay"] = bench_replay(args)
        if "decode" in parts:
            results["decode"] = bench_decode(args)
        if "async" in parts:
            results["async"] = bench_async(args, sender)
        if "curve" in parts:
            results["curve"] = bench_curve(args)
        if "fanout" in parts:
            results["fanout"] = bench_fanout(args, workdir)
        if "write_parts" in parts:
            results["write_parts"] = bench_write_parts(args, workdir)
        if "align" in parts:
            results["align"] = bench_align(args, sender)
        if "stream2" in parts:
            results["stream2"] = bench_stream2(args)
        if "bsread" in parts:
            results["bsread"] = bench_bsread(args)
        if "decode_pool" in parts:
            results["decode_pool"] = bench_decode_pool(args)
        if "import" in parts:
            results["import"] = bench_import(args)
    results["seconds"] = time.monotonic() - began
    Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    print(f"took {results['seconds']:.0f} s; results in {args.json}")


if __name__ == "__main__":
    main()
