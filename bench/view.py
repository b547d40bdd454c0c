"""Viewer speed: ``mflow view`` CPU (cores) and image latency (received → drawn in a browser).

Runs ``mflow generate`` into ``mflow view`` (separate processes) with a headless Chromium
watching the page, for a 16M EIGER (4362×4148 uint16, bitshuffle-LZ4) at 133 Hz and for
bsread with 1,000 scalar channels at 100 Hz. The viewer's CPU is its process's user+system
time over the measured window. Latency is measured by the page itself: from the arrival
time the viewer stamps on the message to the moment the browser has painted the plot (or
the bsread table) with it; same machine, same clock. Also shown: the updates the browser
drew per second, the images the page skipped while the browser drew (flow control), and
the browser's main-thread time per drawn update (script, layout, all tasks).

    python bench/view.py [--seconds 10] [--repeat 1] [--only 16m|bsread]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.view_support import chromium  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
_BROWSER_METRICS = ("ScriptDuration", "LayoutDuration", "TaskDuration")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def json_line(process: subprocess.Popen, event: str) -> dict:
    for line in process.stdout:
        if line.startswith("{") and json.loads(line).get("event") == event:
            return json.loads(line)
    raise RuntimeError(f"no {event} event")


def browser_seconds(driver) -> dict[str, float]:
    metrics = driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]
    return {m["name"]: m["value"] for m in metrics if m["name"] in _BROWSER_METRICS}


def skipped(driver) -> int:
    text = driver.execute_script("return Bokeh.documents[0].get_model_by_name('status').text")
    found = re.search(r"([\d,]+) skipped", text or "")
    return int(found.group(1).replace(",", "")) if found else 0


def measure(name: str, generate: list[str], seconds: float, driver, variable: str) -> None:
    mflow = [sys.executable, "-m", "mflow"]
    load = os.getloadavg()[0]
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
        driver.execute_cdp_cmd("Performance.enable", {})
        browser_before, skipped_before = browser_seconds(driver), skipped(driver)
        before, start = cpu_seconds(viewer.pid), time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - start
        cores = (cpu_seconds(viewer.pid) - before) / elapsed
        latencies = sorted(driver.execute_script(f"return window.{variable} || []"))
        browser_after, skipped_after = browser_seconds(driver), skipped(driver)
        health = driver.execute_script("return Bokeh.documents[0].get_model_by_name('health').text")
    finally:
        viewer.terminate()
        generator.terminate()
        viewer.wait(10)
        generator.wait(10)
    rate = health.split("(", 1)[1].split(")", 1)[0] if "(" in health else "?"
    drawn = len(latencies)
    median = latencies[drawn // 2] if latencies else float("nan")
    worst = latencies[-1] if latencies else float("nan")
    per_update = ", ".join(
        f"{key.removesuffix('Duration').lower()} "
        f"{1000 * (browser_after[key] - browser_before[key]) / max(1, drawn):.0f} ms"
        for key in _BROWSER_METRICS
    )
    print(
        f"{name}: load {load:.1f}; stream {rate}; viewer CPU {cores:.2f} cores; latency "
        f"median {median:.3f} s, max {worst:.3f} s; {drawn / elapsed:.1f} updates/s drawn, "
        f"{skipped_after - skipped_before} images skipped; browser per update: {per_update}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--only", choices=("16m", "bsread"))
    arguments = parser.parse_args()
    channels = [f"--channel=CH{i:04d}:float64" for i in range(1000)]
    for driver in chromium():
        for _ in range(arguments.repeat):
            if arguments.only != "bsread":
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
                    arguments.seconds,
                    driver,
                    "mflow_latencies",
                )
            if arguments.only != "16m":
                measure(
                    "bsread 1,000 channels 100 Hz",
                    ["bsread", *channels, "--rate", "100"],
                    arguments.seconds,
                    driver,
                    "mflow_bsread_latencies",
                )


if __name__ == "__main__":
    main()
