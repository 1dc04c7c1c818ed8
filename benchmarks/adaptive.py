"""Adaptive supersampling: speed-up over supersampling every HR pixel, and the error it costs.

    python benchmarks/adaptive.py                  # sim and ground, 6 lenses per class
    python benchmarks/adaptive.py --presets ground --n 10

For each preset with ``adaptive_threshold`` > 0 and each class, renders the same lenses
with the preset as shipped (adaptive) and with ``adaptive_threshold: 0`` (every pixel at
``supersampling``), one process, one thread, warm; prints the time per render of both, the
speed-up, and the largest relative L2 difference of the noise-free HR images (the README's
"within 5e-5" and "x faster" are these columns).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from lensr.sim.config import load_sim_config  # noqa: E402
from lensr.sim.render import Renderer  # noqa: E402


def timed(renderer: Renderer, label: int, n: int, repeats: int):
    """Best-of-``repeats`` seconds per render of lenses 0..n-1, and the renders."""
    renderer.render(0, 0, label)  # warm caches
    best, images = np.inf, []
    for _ in range(repeats):
        start = time.perf_counter()
        images = [renderer.render(0, i, label).hr_clean for i in range(n)]
        best = min(best, (time.perf_counter() - start) / n)
    return best, images


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="sim,ground")
    parser.add_argument("--n", type=int, default=6, help="lenses per class")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many timings")
    args = parser.parse_args()
    head = ("preset", "class", "full ms", "adapt ms", "speed-up", "max rel L2")
    print("{:8} {:6} {:>8} {:>9} {:>8} {:>10}".format(*head))
    for preset in args.presets.split(","):
        adaptive = load_sim_config(preset)
        if adaptive.adaptive_threshold <= 0:
            print(f"{preset:8} (no adaptive_threshold: skipped)")
            continue
        full = adaptive.model_copy(update={"adaptive_threshold": 0.0})
        fast, slow = Renderer(adaptive), Renderer(full)
        for label, name in enumerate(adaptive.classes):
            t_fast, a = timed(fast, label, args.n, args.repeats)
            t_slow, b = timed(slow, label, args.n, args.repeats)
            err = max(np.linalg.norm(x - y) / np.linalg.norm(y) for x, y in zip(a, b, strict=True))
            print(
                f"{preset:8} {name:6} {1e3 * t_slow:8.1f} {1e3 * t_fast:9.1f} "
                f"{t_slow / t_fast:7.2f}x {err:10.1e}"
            )


if __name__ == "__main__":
    main()
