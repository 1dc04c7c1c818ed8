"""Classification metrics (vs scikit-learn), evaluate_classifier, and its errors (the classify
commands: tests/cli; the hallucination audit: test_audit.py; shared fixtures: conftest.py)."""

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from lensr.errors import LensrError
from lensr.eval.classification import HR, LR, evaluate_classifier, normalize_images, predict
from lensr.eval.classification_metrics import (
    auc_pseudo_values,
    downsample_curve,
    prediction_shift,
    roc_curves,
    score_intervals,
)
from lensr.models import create_model
from lensr.models.checkpoint import save_checkpoint

NAMES = ["none", "cdm", "axion"]

pytestmark = pytest.mark.usefixtures("one_thread")


def fake_classifier(path, *, num_classes=3, class_names=NAMES, input_size=(64, 64)):
    model = create_model("resnet18", num_classes=num_classes, small_input=False)
    meta = {"task": "classification", "class_names": class_names, "input_size": list(input_size)}
    return save_checkpoint(model, path, metadata=meta)


# roc_curves ---------------------------------------------------------------------------------


def test_roc_matches_scikit_learn_on_random_scores():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 200)
    logits = rng.normal(size=(200, 3)) + 1.5 * np.eye(3)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    r = roc_curves(labels, probs, NAMES)
    for k, name in enumerate(NAMES):
        assert r["auc"][name] == pytest.approx(roc_auc_score(labels == k, probs[:, k]), abs=1e-12)
        assert r["roc"][name]["fpr"][0] == 0 and r["roc"][name]["tpr"][-1] == 1
    macro = roc_auc_score(labels, probs, multi_class="ovr", average="macro")
    assert r["macro_auc"] == pytest.approx(macro, abs=1e-12)


def test_roc_known_values_perfect_and_random():
    # scikit-learn's documented example: AUC 0.75.
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    assert roc_curves([0, 0, 1, 1], probs, ["a", "b"])["auc"]["b"] == pytest.approx(0.75)
    perfect = roc_curves([0, 1, 2, 0, 1, 2], np.eye(3)[[0, 1, 2, 0, 1, 2]], NAMES)
    assert perfect["macro_auc"] == 1.0 and set(perfect["auc"].values()) == {1.0}
    constant = roc_curves([0, 1, 2, 0, 1, 2], np.full((6, 3), 1 / 3), NAMES)
    assert constant["macro_auc"] == 0.5


def test_roc_absent_class_is_nan_and_left_out_of_the_macro_average():
    probs = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    r = roc_curves([0, 1, 0, 1], probs, NAMES)
    assert np.isnan(r["auc"]["axion"]) and len(r["roc"]["axion"]["fpr"]) == 0
    assert r["macro_auc"] == pytest.approx((r["auc"]["none"] + r["auc"]["cdm"]) / 2)
    with pytest.raises(LensrError, match=r"probs must be \(N, 3\)"):
        roc_curves([0, 1], np.ones((2, 2)), NAMES)


def _scores(n, seed=0, strength=1.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + strength * np.eye(3)[labels]
    probs = np.round(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), 2)  # with ties
    return labels, probs


def test_auc_pseudo_values_average_to_the_macro_auc_and_match_a_direct_bootstrap():
    labels, probs = _scores(300)
    pseudo = auc_pseudo_values(labels, probs, NAMES)
    assert pseudo.mean() == pytest.approx(roc_curves(labels, probs, NAMES)["macro_auc"], abs=1e-12)
    s = score_intervals(labels, probs, NAMES, n_boot=1000)
    rng = np.random.default_rng(1)
    direct = [
        roc_curves(labels[i], probs[i], NAMES)["macro_auc"]
        for i in rng.integers(0, 300, (1000, 300))
    ]
    low, high = np.quantile(direct, [0.025, 0.975])
    assert s["macro_auc"]["ci_low"] == pytest.approx(low, abs=0.01)
    assert s["macro_auc"]["ci_high"] == pytest.approx(high, abs=0.01)
    assert s["accuracy"]["mean"] == pytest.approx((probs.argmax(1) == labels).mean())


def test_score_intervals_clip_the_auc_to_its_range_and_refuse_no_images():
    labels = np.array([0, 1, 2] * 4)
    probs = np.eye(3)[labels] * 0.8 + 0.1
    probs[0] = [0.05, 0.9, 0.05]  # one confident mistake: pseudo-values above 1
    assert auc_pseudo_values(labels, probs, NAMES).max() > 1
    s = score_intervals(labels, probs, NAMES, n_boot=200)
    assert 0 <= s["macro_auc"]["ci_low"] < s["macro_auc"]["mean"] < s["macro_auc"]["ci_high"] <= 1
    assert s["accuracy"]["mean"] == pytest.approx(11 / 12)
    with pytest.raises(LensrError, match="empty"):
        score_intervals(np.zeros(0, int), np.zeros((0, 3)), NAMES)


def test_downsample_curve_keeps_ends():
    fpr, tpr = np.linspace(0, 1, 1000), np.sqrt(np.linspace(0, 1, 1000))
    f, t = downsample_curve(fpr, tpr)
    assert len(f) <= 200 and f[0] == 0 and f[-1] == 1 and t[-1] == 1


def test_prediction_shift_rows_are_fractions():
    shift = prediction_shift([0, 0, 1, 1], np.eye(3)[[0, 1, 1, 1]], NAMES)
    assert shift["none"] == {"none": 0.5, "cdm": 0.5, "axion": 0.0}
    assert shift["cdm"]["cdm"] == 1.0 and np.isnan(shift["axion"]["none"])


# predict ------------------------------------------------------------------------------------


def test_predict_is_scale_free_and_normalised():
    torch.manual_seed(0)
    model = create_model("resnet18", small_input=False)
    images = np.random.default_rng(0).random((5, 32, 32)).astype(np.float32) + 0.1
    p = predict(model, images, batch_size=2)
    assert p.shape == (5, 3) and np.allclose(p.sum(1), 1)
    assert np.allclose(predict(model, images * 250.0), p, atol=1e-5)
    assert model.training  # mode restored


def test_normalisation_removes_the_sky_pedestal_and_old_classifiers_keep_their_rule():
    """DeepLense's min-max [0, 1] images carry a sky pedestal; the classifier's input
    subtracts the border median, so a pedestal and a scale change nothing. A checkpoint
    saved under the old rule (no subtraction) is still fed that rule by predict."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[:48, :48] - 24
    ring = np.exp(-((np.hypot(x, y) - 10) ** 2) / 4)
    images = (ring + rng.normal(0, 0.02, (4, 48, 48))).astype(np.float32)
    minmax = (images - images.min((1, 2), keepdims=True)) / np.ptp(images, (1, 2), keepdims=True)
    a, b = normalize_images(images), normalize_images(minmax)
    np.testing.assert_allclose(a, b, atol=2e-4)
    assert np.percentile(a[0], 99.5) == pytest.approx(1, abs=1e-3)
    assert abs(float(np.median(a[:, :4, :]))) < 0.02  # the sky is at zero
    legacy = {"name": "image-percentile", "percentile": 99.5}
    old = normalize_images(minmax, spec=legacy)
    assert np.median(old[:, :4, :]) > 0.05  # the old rule keeps the pedestal (~4 sigma)
    torch.manual_seed(0)
    model = create_model("resnet18", small_input=False)
    model.metadata = {"normalization": legacy}
    spy = []
    model.register_forward_pre_hook(lambda m, args: spy.append(args[0][:, 0].numpy().copy()))
    predict(model, minmax)
    np.testing.assert_allclose(spy[0], old, atol=1e-6)


# evaluate_classifier --------------------------------------------------------------------------


def test_evaluate_classifier_end_to_end(sim, models, tmp_path):
    out = tmp_path / "cls"
    r = evaluate_classifier(
        models["classifier"],
        sim,
        sr_models={"fsrcnn": str(models["sr_all"])},
        out_dir=out,
        progress=False,
    )
    assert list(r["variants"]) == [HR, LR, "SR: fsrcnn"]
    assert r["n"] == 30 and r["class_names"] == NAMES
    assert r["class_counts"] == {"none": 10, "cdm": 10, "axion": 10}
    for v in r["variants"].values():
        assert set(v) == {
            "n",
            "accuracy",
            "auc",
            "macro_auc",
            "confusion",
            "predicted_fraction",
            "roc",
        }
        confusion = np.array(v["confusion"])
        assert confusion.sum(1).tolist() == [10, 10, 10]
        assert v["accuracy"] == pytest.approx(np.trace(confusion) / 30)
        assert sum(v["predicted_fraction"].values()) == pytest.approx(1)
        assert list(confusion.sum(0) / 30) == pytest.approx(list(v["predicted_fraction"].values()))
        assert set(v["auc"]) == set(NAMES) and 0 <= v["macro_auc"] <= 1
        assert all(len(c["fpr"]) == len(c["tpr"]) <= 200 for c in v["roc"].values())
    assert json.loads((out / "classification.json").read_text()) == r
    assert r["figures"] == {"roc": "roc.png", "confusion": "confusion.png"}
    for name in r["figures"].values():
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in out.iterdir()) == [
        "classification.json",
        "confusion.png",
        "roc.png",
    ]
    small = evaluate_classifier(
        models["classifier"], sim, out_dir=tmp_path / "s", max_images=6, progress=False
    )
    assert small["n"] == 6 and list(small["variants"]) == [HR, LR]


# One-line errors --------------------------------------------------------------------------------


def test_sr_checkpoint_is_not_a_classifier(sim, models, tmp_path):
    with pytest.raises(LensrError, match="not a classifier"):
        evaluate_classifier(models["sr_all"], sim, out_dir=tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


def test_class_count_mismatch(sim, tmp_path):
    clf = fake_classifier(tmp_path / "two.safetensors", num_classes=2, class_names=["a", "b"])
    with pytest.raises(LensrError, match="predicts 2 classes, but dataset .* has 3"):
        evaluate_classifier(clf, sim, out_dir=tmp_path / "x", progress=False)


def test_image_size_mismatch(sim, tmp_path):
    clf = fake_classifier(tmp_path / "small.safetensors", input_size=(32, 32))
    with pytest.raises(LensrError, match="trained on 32x32 px images, but .* are 64x64 px"):
        evaluate_classifier(clf, sim, out_dir=tmp_path / "x", progress=False)


def test_missing_dataset_and_classifier(sim, models, tmp_path):
    with pytest.raises(LensrError, match="does not exist"):
        evaluate_classifier(models["classifier"], tmp_path / "no.h5", out_dir=tmp_path / "x")
    with pytest.raises(LensrError, match="not found"):
        evaluate_classifier(tmp_path / "no.safetensors", sim, out_dir=tmp_path / "x")
    with pytest.raises(LensrError, match="is a classifier, not an SR model"):
        evaluate_classifier(
            models["classifier"],
            sim,
            sr_models={"c": str(models["classifier"])},
            out_dir=tmp_path / "x",
        )
    assert not (tmp_path / "x").exists()
