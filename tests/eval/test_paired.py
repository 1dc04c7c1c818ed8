"""Paired bootstrap differences: significant when the interval excludes 0, a tie otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from lensr.errors import LensrError
from lensr.eval.paired import find_pair, paired_comparisons, paired_difference, paired_from_csv


def test_shared_image_spread_cancels_in_the_paired_difference():
    rng = np.random.default_rng(0)
    base = rng.normal(35, 5, size=40)  # image-to-image spread far larger than the gap
    a, b = base + 0.3 + rng.normal(0, 0.05, 40), base
    d = paired_difference(a, b)
    assert d["significant"] and 0.25 < d["ci_low"] < d["mean"] < d["ci_high"] < 0.35
    # unpaired intervals of the two means overlap widely, the paired one does not
    assert abs(a.mean() - b.mean()) < 5 * 2 / np.sqrt(40)


def test_equal_models_tie_and_order_is_by_mean():
    rng = np.random.default_rng(1)
    a = rng.normal(30, 1, 50)
    b = a + rng.normal(0, 0.2, 50)
    pairs = paired_comparisons({"x": {"psnr": a, "ssim": a / 40}, "y": {"psnr": b, "ssim": b / 40}})
    assert len(pairs) == 1
    p = pairs[0]
    assert p["psnr"]["mean"] >= 0 and not p["psnr"]["significant"]
    assert p["psnr"]["ci_low"] < 0 < p["psnr"]["ci_high"]
    found, sign = find_pair(pairs, p["b"], p["a"])
    assert found is p and sign == -1


def test_infinite_psnr_is_capped_and_lengths_must_match():
    assert paired_difference([np.inf, 40.0], [100.0, 40.0])["mean"] == 0.0
    with pytest.raises(LensrError, match="same images"):
        paired_difference([1.0, 2.0], [1.0])


def test_from_csv_matches_direct(tmp_path):
    rows = ["model,target,index,label,class,mse,psnr,ssim"]
    a, b = [31.0, 32.0, 33.5, 30.0], [30.0, 31.5, 33.0, 29.0]
    for name, vals in (("m1", a), ("m2", b)):
        rows += [f"{name},clean,{i},0,none,0.1,{v},0.9" for i, v in enumerate(vals)]
    (tmp_path / "metrics.csv").write_text("\n".join(rows) + "\n")
    got = paired_from_csv(tmp_path / "metrics.csv")["clean"][0]
    assert (got["a"], got["b"]) == ("m1", "m2")
    assert got["psnr"]["mean"] == pytest.approx(paired_difference(a, b)["mean"])
