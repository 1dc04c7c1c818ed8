import numpy as np
import pytest

from lensr.errors import LensrError
from lensr.eval.stats import bootstrap_summary


def test_bootstrap_interval_covers_true_mean_about_95_percent():
    hits = 0
    for seed in range(200):
        values = np.random.default_rng(1000 + seed).normal(3.0, 2.0, size=40)
        s = bootstrap_summary(values, n_boot=500, seed=seed)
        assert s["ci_low"] <= s["mean"] <= s["ci_high"]
        hits += s["ci_low"] <= 3.0 <= s["ci_high"]
    # Percentile bootstrap slightly under-covers at n=40; 200 trials have ~1.6 % sd.
    assert 0.88 <= hits / 200 <= 0.99


def test_summary_values_and_determinism():
    values = np.random.default_rng(0).normal(size=30)
    a = bootstrap_summary(values, seed=7)
    assert a == bootstrap_summary(list(values), seed=7)
    assert a != bootstrap_summary(values, seed=8)
    assert a["mean"] == pytest.approx(values.mean())
    assert a["std"] == pytest.approx(values.std(ddof=1))
    assert a["n"] == 30
    narrow = bootstrap_summary(values, seed=7, ci=0.5)
    assert a["ci_low"] < narrow["ci_low"] < narrow["ci_high"] < a["ci_high"]


def test_single_value_and_bad_input():
    one = {"mean": 0.93, "std": 0.0, "ci_low": 0.93, "ci_high": 0.93, "n": 1}
    assert bootstrap_summary([0.93]) == one
    with pytest.raises(LensrError, match="empty"):
        bootstrap_summary([])
    with pytest.raises(LensrError, match="1 non-finite"):
        bootstrap_summary([1.0, np.inf])
