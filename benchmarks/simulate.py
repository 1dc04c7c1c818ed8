"""Simulation throughput: pairs/s per preset, class and engine on this machine.

    python benchmarks/simulate.py                          # every preset, 1 process, per class
    python benchmarks/simulate.py --reference              # + the old per-profile path
    python benchmarks/simulate.py --caustics --batch 16    # + the caustics engine (CPU/GPU)
    python benchmarks/simulate.py --presets sim --e2e-n 2000 --workers 2 --reference

Per-class rows time whole pairs (scene, sky, PSFs, noise) in one process, warm. ``fast`` is
the default lenstronomy path (point masses as one deflection); ``reference`` renders each
subhalo as its own lenstronomy POINT_MASS profile (the path before issue 15, same images);
``caustics`` renders batches of ``--batch`` images on ``--device``. The end-to-end line times
`lensr.sim.run.simulate` with worker start-up and HDF5 writing. The load average is printed:
the machine is shared, measure with `nice` and compare rows of one run.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from lensr.sim import run as sim_run  # noqa: E402
from lensr.sim.config import load_sim_config, preset_names  # noqa: E402
from lensr.sim.render import Renderer  # noqa: E402


def per_class(preset: str, n: int, reference: bool) -> dict[str, float]:
    cfg = load_sim_config(preset)
    renderer = Renderer(cfg, reference=reference)
    rates = {}
    for label, name in enumerate(cfg.classes):
        renderer.render(0, 0, label)  # warm caches
        start = time.perf_counter()
        for i in range(n):
            renderer.render(0, i, label)
        rates[name] = n / (time.perf_counter() - start)
    return rates


def per_class_caustics(preset: str, n: int, batch: int, device: str) -> dict[str, float]:
    from lensr.sim.caustics_render import CausticsRenderer

    cfg = load_sim_config(preset)
    renderer = CausticsRenderer(cfg, device)
    k = len(cfg.classes)
    rates = {}
    for label, name in enumerate(cfg.classes):
        indices = [label + k * i for i in range(n)]  # image i has class i % k
        renderer.samples(0, indices[:batch])  # warm up (and CUDA kernels)
        start = time.perf_counter()
        for j in range(0, n, batch):
            renderer.samples(0, indices[j : j + batch])
        if device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
        rates[name] = n / (time.perf_counter() - start)
    return rates


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the workers)."""
    own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def end_to_end(preset: str, n: int, workers: int, reference: bool) -> tuple[float, float]:
    """(pairs/s wall, CPU seconds per pair over every process) of one `simulate` run."""
    sim_run.REFERENCE_POINT_MASSES = reference
    try:
        with tempfile.TemporaryDirectory() as tmp:
            start, cpu = time.perf_counter(), _cpu_seconds()
            sim_run.simulate(preset, n=n, out=Path(tmp) / "b.h5", workers=workers, progress=False)
            return n / (time.perf_counter() - start), (_cpu_seconds() - cpu) / n
    finally:
        sim_run.REFERENCE_POINT_MASSES = False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=",".join(preset_names()))
    parser.add_argument("--n", type=int, default=30, help="renders per class")
    parser.add_argument("--e2e-n", type=int, default=0, help="pairs of the end-to-end run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reference", action="store_true", help="also the old path")
    parser.add_argument("--caustics", action="store_true", help="also the caustics engine")
    parser.add_argument("--batch", type=int, default=16, help="caustics batch size")
    parser.add_argument("--device", default="cpu", help="caustics device (cpu, cuda)")
    args = parser.parse_args()
    console = Console()
    console.print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")

    table = Table(
        "preset",
        "path",
        "HR px",
        "none",
        "cdm",
        "axion",
        "mean pairs/s (1 process)",
        title=f"lensr simulate throughput ({os.cpu_count()} cores)",
    )
    presets = args.presets.split(",")
    for preset in presets:
        cfg = load_sim_config(preset)
        runs = [("fast", lambda p=preset: per_class(p, args.n, False))]
        if args.reference:
            runs.append(("reference", lambda p=preset: per_class(p, args.n, True)))
        if args.caustics:
            runs.append(
                (
                    f"caustics {args.device} b{args.batch}",
                    lambda p=preset: per_class_caustics(p, args.n, args.batch, args.device),
                )
            )
        for path, fn in runs:
            rates = fn()
            mean = len(rates) / sum(1 / r for r in rates.values())  # balanced classes
            table.add_row(
                preset,
                path,
                str(cfg.hr_size),
                *(f"{rates.get(c, 0):.1f}" for c in ("none", "cdm", "axion")),
                f"{mean:.1f}",
            )
    console.print(table)
    if args.e2e_n:
        for preset in presets:
            for reference in (False, True) if args.reference else (False,):
                rate, cpu = end_to_end(preset, args.e2e_n, args.workers, reference)
                console.print(
                    f"end to end, {preset}, {'reference' if reference else 'fast'}, "
                    f"{args.e2e_n} pairs, {args.workers} workers: {rate:.1f} pairs/s -> "
                    f"10,000 pairs in {10000 / rate:.0f} s; {cpu * 1e3:.1f} CPU ms per pair "
                    f"(all processes: {args.workers / cpu:.0f} pairs/s on {args.workers} "
                    "free cores)"
                )
    console.print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
