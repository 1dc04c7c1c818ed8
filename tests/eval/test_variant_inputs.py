"""Each classification variant classifies its own images (a spy classifier records what it
is fed: HR, the bicubic upsampling of LR and an SR model's output, each recomputed here),
and `evaluate`'s sigma calibration equals a hand count on a case with a known sigma."""

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lensr.data.store import open_dataset
from lensr.eval import trust_measures
from lensr.eval.classification import evaluate_classifier, normalize_images
from lensr.eval.evaluate import evaluate

N = 6


class SpyClassifier(nn.Module):
    """Three classes from the image mean; records every batch it classifies."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(1, 3)
        self.seen: list[np.ndarray] = []

    def forward(self, x):
        self.seen.append(x[:, 0].detach().numpy().copy())
        return self.fc(x.mean(dim=(1, 2, 3))[:, None])


class NearestX2(nn.Module):
    """A stand-in SR model: nearest-neighbour x2 (unlike bicubic, blocky)."""

    scale = 2

    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode="nearest")


@pytest.mark.usefixtures("one_thread")
def test_each_variant_classifies_its_own_images(sim, tmp_path):
    spy = SpyClassifier()
    r = evaluate_classifier(
        spy, sim, sr_models={"nn": NearestX2()}, out_dir=tmp_path, max_images=N, progress=False
    )
    assert list(r["variants"]) == ["HR", "LR (bicubic)", "SR: nn"]
    assert len(spy.seen) == 3  # one batch per variant, in this order
    with open_dataset(sim) as ds:
        hr, lr = ds.hr[:N], ds.lr[:N].astype(np.float64)
    bicubic = F.interpolate(
        torch.from_numpy(lr)[:, None], scale_factor=2, mode="bicubic", align_corners=False
    )[:, 0].numpy()
    nearest = lr.repeat(2, axis=1).repeat(2, axis=2)
    expected = [normalize_images(x) for x in (hr, bicubic, nearest)]
    for seen, want, name in zip(spy.seen, expected, r["variants"], strict=True):
        np.testing.assert_allclose(seen, want, rtol=1e-5, atol=1e-6, err_msg=name)
    # The three inputs really differ (a variant fed another's images would fail above).
    assert not np.allclose(spy.seen[0], spy.seen[1], atol=1e-3)
    assert not np.allclose(spy.seen[1], spy.seen[2], atol=1e-3)


@pytest.mark.usefixtures("one_thread")
def test_evaluate_calibration_equals_a_hand_count(sim, tmp_path, monkeypatch):
    """With sigma fixed at s for every pixel (the TTA stubbed), the calibration is the
    fraction of pixels with |bicubic(LR) - noise-free HR| <= s (and 2 s), counted here."""
    with open_dataset(sim) as ds:
        lr, clean = ds.lr[:].astype(np.float64), ds.hr_clean[:].astype(np.float64)
        labels, names = ds.labels[:], ds.class_names
    bicubic = F.interpolate(
        torch.from_numpy(lr)[:, None], scale_factor=2, mode="bicubic", align_corners=False
    )[:, 0].numpy()
    err = np.abs(bicubic - clean)
    s = float(np.median(err))

    def fixed_sigma(lr, module, *, identity, **kwargs):
        return identity, np.full_like(identity, s)

    monkeypatch.setattr(trust_measures, "predict_with_uncertainty", fixed_sigma)
    result = evaluate(sim, ["bicubic"], out_dir=tmp_path, examples=0, n_boot=50, progress=False)
    calib = result["models"][0]["calibration"]
    for key, k in (("within_1sigma", 1), ("within_2sigma", 2)):
        per_image = (err <= k * s).mean(axis=(1, 2))
        assert calib["overall"][key]["mean"] == pytest.approx(per_image.mean(), abs=2e-3)
        for c, name in enumerate(names):
            got = calib["per_class"][name][key]["mean"]
            assert got == pytest.approx(per_image[labels == c].mean(), abs=2e-3), (key, name)
    # Half the pixels lie within the median error, by construction.
    assert calib["overall"]["within_1sigma"]["mean"] == pytest.approx(0.5, abs=0.01)
    with open(tmp_path / "metrics.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["target"] == "clean"]
    got = np.array([float(r["within_1sigma"]) for r in rows])
    np.testing.assert_allclose(got, (err <= s).mean(axis=(1, 2)), atol=2e-3)
    assert json.loads((tmp_path / "metrics.json").read_text()) == result
