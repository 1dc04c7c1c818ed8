"""Summary statistics of per-image metrics: mean, std and a bootstrap interval of the mean.

Example::

    from lensr.eval.stats import bootstrap_summary
    bootstrap_summary([31.2, 30.8, 32.0])   # {'mean': 31.33, 'std': 0.61, 'ci_low': ..., 'n': 3}
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from lensr.errors import LensrError

_MAX_DRAWS = 4_000_000  # resample indices drawn per chunk: bounds memory for large n


def bootstrap_summary(
    values: Iterable[float] | np.ndarray,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
) -> dict[str, float | int]:
    """Mean, sample std (ddof=1) and a percentile-bootstrap ``ci`` interval of the mean.

    ``n_boot`` resamples (default 2000) are drawn with ``np.random.default_rng(seed)``
    (default seed 0), so the result is deterministic. With one value the std is 0
    and the interval is the value itself. Empty or non-finite input raises a
    ``LensrError`` (cap infinite PSNR first: ``lensr.eval.metrics.summarize_scores``).

    Example::

        s = bootstrap_summary(np.array([0.91, 0.93, 0.95]), n_boot=1000)
        s["ci_low"] <= s["mean"] <= s["ci_high"]   # True
    """
    v = np.asarray(list(values) if not isinstance(values, np.ndarray) else values)
    v = v.astype(np.float64).ravel()
    n = v.size
    if n == 0:
        raise LensrError("cannot summarize an empty list of values")
    bad = int((~np.isfinite(v)).sum())
    if bad:
        raise LensrError(f"cannot summarize {bad} non-finite values out of {n}")
    if not 0 < ci < 1:
        raise LensrError(f"ci must lie strictly between 0 and 1, got {ci}")
    if n_boot < 1:
        raise LensrError(f"n_boot must be at least 1, got {n_boot}")
    mean = float(v.mean())
    if n == 1:
        return {"mean": mean, "std": 0.0, "ci_low": mean, "ci_high": mean, "n": 1}
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _MAX_DRAWS // n)
    means = np.concatenate(
        [
            v[rng.integers(0, n, size=(min(per_chunk, n_boot - i), n))].mean(axis=1)
            for i in range(0, n_boot, per_chunk)
        ]
    )
    alpha = (1.0 - ci) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return {
        "mean": mean,
        "std": float(v.std(ddof=1)),
        "ci_low": float(low),
        "ci_high": float(high),
        "n": int(n),
    }
