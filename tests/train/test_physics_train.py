"""Unsupervised physics-informed training: runs, lowers the LR misfit, never reads HR,
exports loadable checkpoints and is deterministic (its command: tests/cli)."""

import h5py
import lightning as L
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lensr.errors import LensrError
from lensr.instrument.from_dataset import LRInstrumentTable
from lensr.models.checkpoint import load_checkpoint
from lensr.models.physics import PhysicsSR
from lensr.train.fit import read_history
from lensr.train.physics_data import HR_KEYS, LRImages, LROnly
from lensr.train.physics_fit import _split, build_physics_module, train_physics
from lensr.train.physics_module import PhysicsTrainConfig

FAST = {
    "batch_size": 4,
    "max_val_images": 4,
    "val_fraction": 0.25,
    "refine_steps": 2,
    "model_kwargs": {"n_feats": 16, "n_blocks": 2, "cg_iters": 6},
}


def cfg(**kw):
    return PhysicsTrainConfig(**{"max_epochs": 1, **FAST, **kw})


class Phase(L.Callback):
    """Marks when Lightning trains and when it validates."""

    def __init__(self):
        self.phase = "setup"

    def on_train_epoch_start(self, trainer, pl_module):
        self.phase = "train"

    def on_validation_epoch_start(self, trainer, pl_module):
        self.phase = "val"

    def on_validation_epoch_end(self, trainer, pl_module):
        self.phase = "train"


def test_training_lowers_the_misfit_never_reads_hr_and_exports(tiny_h5, tmp_path, monkeypatch):
    phase, reads = Phase(), []
    original = h5py.Dataset.__getitem__

    def spy(self, key):
        reads.append((phase.phase, self.name.lstrip("/")))
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    config = cfg(max_epochs=3, lr=3e-3)
    result = train_physics(
        config, data=tiny_h5, out_dir=tmp_path, progress=False, callbacks=[phase]
    )
    monkeypatch.setattr(h5py.Dataset, "__getitem__", original)

    hr_reads = {p for p, name in reads if name in HR_KEYS}
    assert hr_reads == {"val"}, "HR must be read in validation only"
    assert ("train", "lr") in reads

    # The LR misfit of the training images, before and after training.
    train_pos, _, info = _split(config, tiny_h5)
    instrument = LRInstrumentTable(tiny_h5, train_pos, noise="auto", psf_fwhm=(0, 0))
    items = LRImages(tiny_h5, train_pos, instrument=instrument, augment=False)
    lr, var, kernels = (torch.stack(t) for t in zip(*[items[i] for i in range(8)], strict=True))
    start = build_physics_module(config, scale=2, total_steps=1, info=info)
    trained, meta = load_checkpoint(result.last)
    start.eval()
    with torch.no_grad():
        before = start.losses(lr, var, kernels)[0]["chi2"].mean()
        start.model.load_state_dict(trained.state_dict())
        after = start.losses(lr, var, kernels)[0]["chi2"].mean()
    assert after < 0.9 * before, (before, after)

    assert isinstance(trained, PhysicsSR) and meta["arch"] == "physics-tiny"
    assert meta["kwargs"]["refine_steps"] == 2
    # classify preset: LR PSF 0.2", HR PSF 0.1" at 0.08"/px
    assert meta["kwargs"]["lr_psf_fwhm"] == pytest.approx(2.5)
    assert meta["kwargs"]["hr_psf_fwhm"] == pytest.approx(1.25)
    assert meta["normalization"]["name"] == "lr-percentile"
    assert meta["supervision"].startswith("none") and meta["instrument"]["simulated"]
    for key in ("val_psnr", "val_ssim", "val_psnr_clean", "val_ssim_clean", "val_chi2"):
        assert key in meta["metrics"]
    assert result.best.is_file() and (tmp_path / "tb").is_dir()
    steps = [int(r["step"]) for r in read_history(tmp_path) if r.get("val_psnr")]
    assert steps == [4, 9, 14]
    with torch.no_grad():
        assert trained(torch.rand(1, 1, 13, 11)).shape == (1, 1, 26, 22)


def test_lr_only_guard():
    with h5py.File("guard.h5", "w", driver="core", backing_store=False) as f:
        f["lr"], f["hr"] = np.zeros((1, 2, 2)), np.zeros((1, 4, 4))
        guarded = LROnly(f)
        assert guarded["lr"].shape == (1, 2, 2)
        with pytest.raises(PermissionError):
            guarded["hr"]


def test_same_seed_same_weights(tiny_h5, tmp_path):
    a = train_physics(cfg(), data=tiny_h5, out_dir=tmp_path / "a", progress=False)
    b = train_physics(cfg(), data=tiny_h5, out_dir=tmp_path / "b", progress=False)
    wa, wb = load_file(str(a.last)), load_file(str(b.last))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_refuses_non_physics_models_and_bad_configs(tiny_h5, tmp_path):
    with pytest.raises(LensrError, match="not a physics-informed model"):
        train_physics(cfg(model="rcan-tiny"), data=tiny_h5, out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError):
        PhysicsTrainConfig(noise="poisson")
