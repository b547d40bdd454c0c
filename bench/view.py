"""Viewer speed: ``mflow view`` CPU (cores) and image latency (received → drawn in a browser).

Runs ``mflow generate`` into ``mflow view`` (separate processes) with a headless Chromium
watching the page, for a 16M EIGER (4362×4148 uint16, bitshuffle-LZ4) at 133 Hz and for
bsread with 1,000 scalar channels at 100 Hz. The viewer's CPU is its process's user+system
time over the measured window; latency is measured by the page itself (arrival time stamped
by the viewer → the browser's clock when the new image reached the plot; same machine).

    python bench/view.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.view_support import chromium  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def json_line(process: subprocess.Popen, event: str) -> dict:
    for line in process.stdout:
        if line.startswith("{") and json.loads(line).get("event") == event:
            return json.loads(line)
    raise RuntimeError(f"no {event} event")


def measure(name: str, generate: list[str], seconds: float, driver, variable: str) -> None:
    mflow = [sys.executable, "-m", "mflow"]
    generator = subprocess.Popen(
        [*mflow, "generate", *generate, "-a", "tcp://127.0.0.1:*", "--json", "-q"],
        stdout=subprocess.PIPE,
        text=True,
    )
    endpoint = json_line(generator, "start")["endpoint"]
    viewer = subprocess.Popen(
        [*mflow, "view", endpoint, "--json", "-i", "1"], stdout=subprocess.PIPE, text=True
    )
    try:
        driver.get(json_line(viewer, "serving")["url"])
        time.sleep(3)  # warm up: first frames, page loaded
        driver.execute_script(f"window.{variable} = []")
        before, start = cpu_seconds(viewer.pid), time.monotonic()
        time.sleep(seconds)
        cores = (cpu_seconds(viewer.pid) - before) / (time.monotonic() - start)
        latencies = sorted(driver.execute_script(f"return window.{variable} || []"))
        health = driver.execute_script("return Bokeh.documents[0].get_model_by_name('health').text")
    finally:
        viewer.terminate()
        generator.terminate()
        viewer.wait(10)
        generator.wait(10)
    rate = health.split("(", 1)[1].split(")", 1)[0] if "(" in health else "?"
    median = latencies[len(latencies) // 2] if latencies else float("nan")
    worst = latencies[-1] if latencies else float("nan")
    print(
        f"{name}: stream {rate}; viewer CPU {cores:.2f} cores; latency median "
        f"{median:.3f} s, max {worst:.3f} s over {len(latencies)} updates drawn"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    seconds = parser.parse_args().seconds
    channels = [f"--channel=CH{i:04d}:float64" for i in range(1000)]
    for driver in chromium():
        measure(
            "EIGER 16M bslz4 133 Hz",
            [
                "dectris",
                "--shape",
                "4362x4148",
                "--compression",
                "bslz4",
                "--rate",
                "133",
                "--images",
                "100000",
            ],
            seconds,
            driver,
            "mflow_latencies",
        )
        measure(
            "bsread 1,000 channels 100 Hz",
            ["bsread", *channels, "--rate", "100"],
            seconds,
            driver,
            "mflow_bsread_latencies",
        )


if __name__ == "__main__":
    main()
