"""Simulation throughput: pairs/s per preset and class on this machine.

    python benchmarks/simulate.py                 # every preset, 1 process, per class
    python benchmarks/simulate.py --e2e-n 2000 --workers 2   # plus an end-to-end run each

Prints a table; the per-class rows time `Renderer.render` in one process (warm), the
end-to-end row times `lensr.sim.run.simulate` with writing to HDF5 and worker start-up.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from lensr.sim.config import load_sim_config, preset_names  # noqa: E402
from lensr.sim.render import Renderer  # noqa: E402
from lensr.sim.run import simulate  # noqa: E402


def per_class(preset: str, n: int) -> dict[str, float]:
    cfg = load_sim_config(preset)
    renderer = Renderer(cfg)
    rates = {}
    for label, name in enumerate(cfg.classes):
        renderer.render(0, 0, label)  # warm caches
        start = time.perf_counter()
        for i in range(n):
            renderer.render(0, i, label)
        rates[name] = n / (time.perf_counter() - start)
    return rates


def end_to_end(preset: str, n: int, workers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        simulate(preset, n=n, out=Path(tmp) / "b.h5", workers=workers, progress=False)
        return n / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=",".join(preset_names()))
    parser.add_argument("--n", type=int, default=30, help="renders per class")
    parser.add_argument("--e2e-n", type=int, default=0, help="pairs of the end-to-end run")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    table = Table(
        "preset",
        "HR px",
        "none",
        "cdm",
        "axion",
        "mean pairs/s (1 process)",
        title=f"lensr simulate throughput ({os.cpu_count()} cores)",
    )
    for preset in args.presets.split(","):
        rates = per_class(preset, args.n)
        mean = len(rates) / sum(1 / r for r in rates.values())  # balanced classes
        cfg = load_sim_config(preset)
        table.add_row(
            preset,
            str(cfg.hr_size),
            *(f"{rates.get(c, 0):.1f}" for c in ("none", "cdm", "axion")),
            f"{mean:.1f}",
        )
    Console().print(table)
    if args.e2e_n:
        for preset in args.presets.split(","):
            rate = end_to_end(preset, args.e2e_n, args.workers)
            Console().print(
                f"end to end, {preset}, {args.e2e_n} pairs, {args.workers} workers: "
                f"{rate:.1f} pairs/s -> 10,000 pairs in {10000 / rate / 60:.1f} min"
            )


if __name__ == "__main__":
    main()
