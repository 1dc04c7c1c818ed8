"""Models compared with each other directly: paired bootstrap differences over the same images.

Two models scored on the same test images are compared image by image: the per-image
difference of their scores (PSNR capped as in the summaries, SSIM as is) is bootstrapped
over the images, so the image-to-image spread that both share cancels. A difference is
*significant* when its 95 % interval excludes 0; otherwise the two models *tie*.
:func:`paired_comparisons` makes the ``paired`` entry of ``metrics.json`` (written by
:func:`lensr.eval.evaluate.evaluate`); :func:`paired_from_csv` recomputes it from a run's
``metrics.csv`` (runs made before the entry existed), so the report and the API read the
same numbers.

Example::

    from lensr.eval.paired import paired_difference
    d = paired_difference([31.0, 32.5, 30.1], [30.2, 32.0, 30.0], metric="psnr")
    d["mean"], d["significant"]
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from itertools import combinations
from pathlib import Path

import numpy as np

from lensr.errors import LensrError
from lensr.eval.metrics import PSNR_CAP_DB
from lensr.eval.stats import bootstrap_summary

PAIRED_METRICS = ("psnr", "ssim")


def _capped(values, metric: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return np.minimum(v, PSNR_CAP_DB) if metric == "psnr" else v


def significant(summary: Mapping) -> bool:
    """True when the interval of a difference excludes 0 (``ci_low > 0`` or ``ci_high < 0``).

    Example::

        significant({"mean": 0.3, "ci_low": 0.1, "ci_high": 0.5})   # True
    """
    low, high = summary.get("ci_low"), summary.get("ci_high")
    if low is None or high is None:
        return False
    return float(low) > 0 or float(high) < 0


def paired_difference(a, b, *, metric: str = "psnr", n_boot: int = 2000, seed: int = 0) -> dict:
    """Bootstrap summary of the per-image difference ``a - b`` plus ``significant``.

    ``a`` and ``b`` are the per-image scores of two models on the same images, in the same
    order (PSNR is capped at ``PSNR_CAP_DB`` first). Raises ``LensrError`` when the lengths
    differ.

    Example::

        paired_difference(psnr_rcan, psnr_srresnet)["significant"]
    """
    a, b = _capped(a, metric), _capped(b, metric)
    if a.shape != b.shape:
        raise LensrError(f"paired scores need the same images, got {a.size} and {b.size} values")
    summary = bootstrap_summary(a - b, n_boot=n_boot, seed=seed)
    return {**summary, "significant": significant(summary)}


def paired_comparisons(
    per_image: Mapping[str, Mapping[str, Iterable[float]]], *, n_boot: int = 2000, seed: int = 0
) -> list[dict]:
    """Every pair of models, each as ``{"a", "b", "psnr": D, "ssim": D}`` with ``a`` the one
    of higher mean PSNR and ``D`` a :func:`paired_difference` (``a - b``).

    ``per_image`` maps a model name to ``{"psnr": values, "ssim": values}`` (same images).

    Example::

        paired_comparisons({"x": {"psnr": p1, "ssim": s1}, "y": {"psnr": p2, "ssim": s2}})
    """
    means = {n: float(_capped(s["psnr"], "psnr").mean()) for n, s in per_image.items()}
    out = []
    for x, y in combinations(per_image, 2):
        a, b = (x, y) if means[x] >= means[y] else (y, x)
        out.append(
            {
                "a": a,
                "b": b,
                **{
                    m: paired_difference(
                        per_image[a][m], per_image[b][m], metric=m, n_boot=n_boot, seed=seed
                    )
                    for m in PAIRED_METRICS
                },
            }
        )
    return out


def find_pair(paired: list[dict], a: str, b: str) -> tuple[dict, int] | None:
    """The comparison of models ``a`` and ``b`` and the sign (+1 if stored as a - b, -1 if
    as b - a), or None.

    Example::

        comparison, sign = find_pair(metrics["paired"]["clean"], "rcan-tiny", "fsrcnn-tiny")
    """
    for p in paired:
        if (p["a"], p["b"]) == (a, b):
            return p, 1
        if (p["a"], p["b"]) == (b, a):
            return p, -1
    return None


def paired_from_csv(path: str | Path, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """``{target: paired_comparisons(...)}`` recomputed from an evaluation's ``metrics.csv``.

    Example::

        paired_from_csv("runs/demo/eval/sim-test/metrics.csv")["clean"][0]["psnr"]["mean"]
    """
    scores: dict[str, dict[str, dict[str, list[float]]]] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            per = scores.setdefault(row["target"], {}).setdefault(
                row["model"], {m: [] for m in PAIRED_METRICS}
            )
            for m in PAIRED_METRICS:
                value = float(row[m])
                per[m].append(value if math.isfinite(value) or m == "psnr" else 0.0)
    return {t: paired_comparisons(models, n_boot=n_boot, seed=seed) for t, models in scores.items()}
