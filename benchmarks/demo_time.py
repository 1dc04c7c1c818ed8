"""Wall time of the demo study (`lensr demo`), the number the README quotes.

    python benchmarks/demo_time.py                 # runs the demo into a temporary folder
    python benchmarks/demo_time.py --keep runs/demo-timed

Runs ``lensr run demo`` from scratch (no cached stages) with the machine's default threads
and prints the seconds of each stage (from the run's ``stages.json``) and of each group
(data, training, transfer, ...), then the wall time, the CPU count and the 1-minute load
average at start and end: a busy machine inflates the time. ``make demo`` adds the one-off
set-up (venv, pip) on top.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def print_stages(stages: dict) -> None:
    """One line per stage and a total per group (the name before the first ':')."""
    groups: dict[str, float] = {}
    for name, info in stages.items():
        seconds = float(info.get("seconds", 0.0))
        groups[name.split(":")[0]] = groups.get(name.split(":")[0], 0.0) + seconds
        print(f"{name:45s} {seconds:7.1f} s")
    print("  ".join(f"{g} {s:.0f} s" for g, s in groups.items()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="run folder to keep")
    args = parser.parse_args()
    lensr = Path(sys.executable).parent / "lensr"
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp) / "demo"
        load0 = os.getloadavg()[0]
        start = time.perf_counter()
        subprocess.run([str(lensr), "run", "demo", "--out", str(out)], check=True)
        minutes = (time.perf_counter() - start) / 60
        print_stages(json.loads((out / "stages.json").read_text())["stages"])
    print(
        f"demo study: {minutes:.1f} min on {os.cpu_count()} CPUs "
        f"(load average {load0:.1f} at start, {os.getloadavg()[0]:.1f} at end)"
    )


if __name__ == "__main__":
    main()
