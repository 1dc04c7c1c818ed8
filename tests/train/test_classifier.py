"""Classifier training: learns a separable set, is deterministic, exports full sidecars."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lensr.config import validate
from lensr.data.torch_data import dihedral
from lensr.data.writer import DatasetWriter
from lensr.errors import LensrError
from lensr.eval.classification import NORMALIZATION
from lensr.models.checkpoint import load_checkpoint
from lensr.train.classifier import train_classifier
from lensr.train.classifier_data import LabelledImages, stratified_split
from lensr.train.classifier_module import build_classifier
from lensr.train.config import ClassifierConfig

# The ImageNet stem (stride 4) makes ResNet-18 ~15x cheaper on CPU; the data is easy.
FAST = {"model_kwargs": {"small_input": False}, "batch_size": 16, "val_fraction": 0.25}


def write_rings(path, *, per_class=30, size=64, seed=0):
    """Three clearly separable lens-like classes: blank sky + noise, an Einstein ring, a
    ring with a bright clump on it (a crude subhalo)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = np.hypot(yy, xx)
    n = 3 * per_class
    with DatasetWriter(
        path,
        n=n,
        hr_shape=(size, size),
        lr_shape=(size // 2, size // 2),
        class_names=["blank", "ring", "ring+spot"],
        attrs={"seed": seed, "producer": "test"},
        with_clean=True,
    ) as w:
        for i in range(n):
            k = i % 3
            clean = np.full((size, size), 0.2)
            radius = rng.uniform(0.2, 0.32) * size
            if k >= 1:
                clean += np.exp(-0.5 * ((r - radius) / (0.04 * size)) ** 2)
            if k == 2:
                a = rng.uniform(0, 2 * np.pi)
                d2 = (yy - radius * np.sin(a)) ** 2 + (xx - radius * np.cos(a)) ** 2
                clean += 3 * np.exp(-0.5 * d2 / (0.03 * size) ** 2)
            hr = clean + rng.normal(0, 0.1, clean.shape)
            lr = hr.reshape(size // 2, 2, size // 2, 2).mean((1, 3))
            w.write(i, hr=hr, lr=lr, label=k, hr_clean=clean)
        return w.finish()


@pytest.fixture(scope="module")
def rings(tmp_path_factory):
    return write_rings(tmp_path_factory.mktemp("rings") / "rings.h5")


def test_learns_a_separable_set_and_exports_sidecars(rings, tmp_path):
    cfg = ClassifierConfig(**FAST, max_epochs=3)
    result = train_classifier(cfg, data=rings, out_dir=tmp_path, progress=False)
    assert result.metrics["val_acc"] > 0.9
    assert result.metrics["val_auc"] > 0.95
    model, meta = load_checkpoint(result.best)
    assert meta["arch"] == "resnet18" and meta["task"] == "classification"
    assert meta["class_names"] == ["blank", "ring", "ring+spot"]
    assert meta["input_size"] == [64, 64]
    assert meta["normalization"] == NORMALIZATION
    assert meta["data"]["n_train"] == 66 and meta["data"]["n_val"] == 24
    assert meta["metrics"]["val_acc"] == pytest.approx(result.metrics["val_acc"])
    assert meta["training"]["max_epochs"] == 3
    assert (tmp_path / "last.safetensors").is_file()
    assert result.history.read_text().startswith("epoch,step")
    assert model(torch.rand(2, 1, 64, 64)).shape == (2, 3)


def test_same_seed_same_weights(rings, tmp_path):
    cfg = ClassifierConfig(**FAST, max_steps=3, bn_recalibration_images=16)
    a = train_classifier(cfg, data=rings, out_dir=tmp_path / "a", progress=False)
    b = train_classifier(cfg, data=rings, out_dir=tmp_path / "b", progress=False)
    wa, wb = load_file(str(a.last)), load_file(str(b.last))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    other = cfg.model_copy(update={"seed": 1})
    c = train_classifier(other, data=rings, out_dir=tmp_path / "c", progress=False)
    wc = load_file(str(c.last))
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_resume_after_interruption_gives_identical_weights(rings, tmp_path, crash_at_epoch):
    cfg = ClassifierConfig(**FAST, max_epochs=3, bn_recalibration_images=16)
    straight = train_classifier(cfg, data=rings, out_dir=tmp_path / "a", progress=False)
    out = tmp_path / "b"
    with pytest.raises(RuntimeError, match="simulated crash"):
        crash = [crash_at_epoch(2)]
        train_classifier(cfg, data=rings, out_dir=out, progress=False, callbacks=crash)
    state = torch.load(out / "lightning" / "last.ckpt", weights_only=True)["callbacks"]
    best = json.loads((out / "best.json").read_text())["metrics"]
    assert state["ExportClassifier"]["best_metrics"]["val_acc"] == best["val_acc"]
    with pytest.raises(LensrError, match="--resume"):
        train_classifier(cfg, data=rings, out_dir=out, progress=False)
    other = cfg.model_copy(update={"lr": 0.5})
    with pytest.raises(LensrError, match="config differs"):
        train_classifier(other, data=rings, out_dir=out, progress=False, resume=True)
    resumed = train_classifier(cfg, data=rings, out_dir=out, progress=False, resume=True)
    for name in ("last", "best"):
        wa = load_file(str(tmp_path / "a" / f"{name}.safetensors"))
        wb = load_file(str(out / f"{name}.safetensors"))
        assert all(torch.equal(wa[k], wb[k]) for k in wa), name
    assert resumed.metrics == straight.metrics
    assert json.loads((out / "last.json").read_text())["epoch"] == 2


def test_stratified_split_holds_out_every_class():
    labels = np.array([0] * 10 + [1] * 20 + [2] * 1)
    train, val = stratified_split(labels, val_fraction=0.2, seed=0)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(labels)))
    assert np.bincount(labels[val], minlength=3).tolist() == [2, 4, 0]
    again = stratified_split(labels, val_fraction=0.2, seed=0)
    assert np.array_equal(val, again[1])


def test_augmentation_is_a_seeded_dihedral_map(rings):
    plain = LabelledImages(rings, [4], augment=False)
    aug = LabelledImages(rings, [4], seed=3)
    x0, y0 = plain[0]
    maps = [torch.from_numpy(dihedral(x0[0].numpy(), k).copy()) for k in range(8)]
    for epoch in range(3):
        x, y = aug[epoch]
        assert y == y0 == 1
        assert any(torch.equal(x[0], m) for m in maps)
        assert torch.equal(aug[epoch][0], x)
    assert float(torch.quantile(x0.flatten(), 0.995)) == pytest.approx(1.0, abs=1e-5)


def test_config_and_model_errors_are_one_line(tmp_path):
    with pytest.raises(LensrError, match="unknown key 'epochs'"):
        validate(ClassifierConfig, {"epochs": 3}, source="c.yaml")
    with pytest.raises(LensrError, match="not a classifier"):
        build_classifier(ClassifierConfig(model="rcan-tiny"), num_classes=3)
    bad = ClassifierConfig(model_kwargs={"num_classes": 2})
    with pytest.raises(LensrError, match="dataset has 3 classes"):
        build_classifier(bad, num_classes=3)
    with pytest.raises(LensrError, match="does not exist"):
        train_classifier(ClassifierConfig(), data=tmp_path / "nope.h5", out_dir=tmp_path)
