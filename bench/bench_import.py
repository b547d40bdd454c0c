"""Start-up: a fresh interpreter's ``import mflow`` against its ``import zmq``.

    python bench/bench_import.py [--runs 21]

Each run starts ``python -c "import zmq"`` and ``python -c "import mflow"`` (in alternating
order) and times each from start to exit, as a user's command pays it. The modules are
byte-compiled first into a cache of this benchmark's own, as an installed package is, so
that an environment that writes no bytecode (``PYTHONDONTWRITEBYTECODE``) does not time
compiling mflow's sources. Prints the median of each and the median of the per-run ratios.
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

MODULES = ("zmq", "mflow")


def time_import(module: str, environment: dict[str, str]) -> float:
    """Seconds for a fresh interpreter to import ``module`` and exit."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], env=environment, check=True)
    return time.perf_counter() - started


def measure(runs: int = 21) -> dict:
    """Median seconds of each import and the median of their per-run ratio."""
    with tempfile.TemporaryDirectory(prefix="mflow-bench-pycache-") as cache:
        environment = dict(os.environ, PYTHONPYCACHEPREFIX=cache)
        environment.pop("PYTHONDONTWRITEBYTECODE", None)
        for module in MODULES:
            time_import(module, environment)  # writes the bytecode
        times: dict[str, list[float]] = {module: [] for module in MODULES}
        for run in range(runs):
            for module in MODULES[:: 1 if run % 2 == 0 else -1]:
                times[module].append(time_import(module, environment))
    ratios = [m / z for z, m in zip(times["zmq"], times["mflow"], strict=True)]
    return {
        "runs": runs,
        "load": os.getloadavg()[0],
        "ms": {module: statistics.median(values) * 1e3 for module, values in times.items()},
        "ratio": statistics.median(ratios),
    }


def print_results(result: dict) -> None:
    ms = result["ms"]
    print(
        f"start-up ({result['runs']} runs, load {result['load']:.1f}): import zmq "
        f"{ms['zmq']:.0f} ms | import mflow {ms['mflow']:.0f} ms = {result['ratio']:.2f}x",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    result = measure(args.runs)
    print_results(result)
    if args.json:
        with open(args.json, "w") as output:
            json.dump(result, output, indent=1)


if __name__ == "__main__":
    main()
