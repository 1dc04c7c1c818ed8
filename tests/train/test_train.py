"""Training engine: runs, exports loadable checkpoints, is deterministic and resumable."""

import json

import pytest
import torch
from safetensors.torch import load_file

from lensr.errors import LensrError
from lensr.models.checkpoint import load_checkpoint
from lensr.train.config import TrainConfig
from lensr.train.fit import read_history, train
from lensr.train.lr_sweep import lr_sweep

FAST = {"patch": 16, "batch_size": 4, "max_val_images": 4, "val_fraction": 0.25}


def cfg(**kw):
    return TrainConfig(**{"model": "fsrcnn-tiny", "max_epochs": 1, **FAST, **kw})


def test_train_exports_checkpoints_logs_and_metadata(tiny_h5, tmp_path):
    result = train(
        cfg(model="rcan-tiny", ema=0.9, grad_clip=1.0),
        data=tiny_h5,
        out_dir=tmp_path,
        progress=False,
    )
    model, meta = load_checkpoint(result.best)
    assert meta["arch"] == "rcan-tiny" and meta["scale"] == 2
    assert meta["normalization"]["name"] == "lr-percentile"
    assert meta["data"]["n_train"] == 18 and meta["data"]["n_val"] == 4
    for key in ("val_psnr", "val_ssim", "val_psnr_clean", "val_ssim_clean", "val_loss"):
        assert key in meta["metrics"]
    assert 0 < meta["metrics"]["val_ssim"] <= 1
    assert result.history.read_text().startswith("epoch,step")
    assert any((tmp_path / "tb").iterdir())
    assert model(torch.rand(1, 1, 9, 11)).shape == (1, 1, 18, 22)


def test_same_seed_same_weights(tiny_h5, tmp_path):
    a = train(cfg(), data=tiny_h5, out_dir=tmp_path / "a", progress=False)
    b = train(cfg(), data=tiny_h5, out_dir=tmp_path / "b", progress=False)
    wa, wb = load_file(str(a.last)), load_file(str(b.last))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_after_interruption_gives_identical_weights(tiny_h5, tmp_path, crash_at_epoch):
    config = cfg(max_epochs=3, ema=0.9, schedule="cosine")
    straight = train(config, data=tiny_h5, out_dir=tmp_path / "straight", progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(
            config,
            data=tiny_h5,
            out_dir=tmp_path / "resumed",
            progress=False,
            callbacks=[crash_at_epoch(2)],
        )
    # The saved state knows the best validation so far, including the latest one.
    state = torch.load(tmp_path / "resumed" / "lightning" / "last.ckpt", weights_only=True)
    best = json.loads((tmp_path / "resumed" / "best.json").read_text())
    assert state["callbacks"]["ExportCheckpoints"]["best_psnr"] == best["metrics"]["val_psnr"]
    with pytest.raises(LensrError, match="--resume"):
        train(config, data=tiny_h5, out_dir=tmp_path / "resumed", progress=False)
    resumed = train(config, data=tiny_h5, out_dir=tmp_path / "resumed", resume=True, progress=False)
    for a, b in ((straight.last, resumed.last), (straight.best, resumed.best)):
        wa, wb = load_file(str(a)), load_file(str(b))
        assert all(torch.equal(wa[k], wb[k]) for k in wa), a.name
    assert straight.best_metrics["metrics"] == resumed.best_metrics["metrics"]
    meta = json.loads(resumed.last.with_suffix(".json").read_text())
    assert meta["epoch"] == 2
    steps = [int(r["step"]) for r in read_history(tmp_path / "resumed") if r.get("val_psnr")]
    assert steps == [4, 9, 14]


def test_srgan_trains_generator_and_discriminator(tiny_h5, tmp_path):
    config = cfg(
        model="srgan-tiny",
        max_steps=7,
        max_epochs=10,
        gan={"discriminator": "srgan-disc-tiny", "pretrain_steps": 2},
    )
    result = train(config, data=tiny_h5, out_dir=tmp_path, progress=False)
    log = result.history.read_text()
    assert "d_loss" in log and "adv_loss" in log
    # 5 steps per epoch: validated at step 5; `last` is still the final (step 7) weights.
    last = json.loads(result.last.with_suffix(".json").read_text())
    assert last["step"] == 7 and last["validated_step"] == 5


# The MSE loss, the multistep schedule, the LR sweep's choice and learning beyond bicubic:
# tests/train/test_learning.py.


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model": "bicubic"}, "not a trainable SR model"),
        ({"model": "physics-tiny"}, "use `lensr train-physics`"),
        ({"model": "rcan-tny"}, "did you mean 'rcan-tiny'"),
        ({"scale": 4}, "has scale 2"),
        ({"patch": 40}, "larger than the LR images"),
    ],
)
def test_bad_training_requests(tiny_h5, tmp_path, overrides, message):
    with pytest.raises(LensrError, match=message):
        train(cfg(**overrides), data=tiny_h5, out_dir=tmp_path, progress=False)


def test_missing_dataset(tmp_path):
    with pytest.raises(LensrError, match="does not exist"):
        train(cfg(), data=tmp_path / "none.h5", out_dir=tmp_path / "o", progress=False)


def test_lr_sweep_plots_one_curve_per_rate(tiny_h5, tmp_path):
    summary = lr_sweep(
        cfg(), data=tiny_h5, out_dir=tmp_path, lrs=(1e-3, 1e-2), steps=4, points=2, progress=False
    )
    assert set(summary["curves"]) == {"0.001", "0.01"}
    assert all(len(c) == 2 for c in summary["curves"].values())
    assert (tmp_path / "lr_sweep.png").stat().st_size > 1000


def test_training_on_one_class_only(tiny_h5, tmp_path):
    result = train(
        cfg(classes=["cdm"], val_fraction=0.25), data=tiny_h5, out_dir=tmp_path, progress=False
    )
    meta = json.loads(result.best.with_suffix(".json").read_text())
    assert meta["data"]["classes"] == ["cdm"] and meta["data"]["n_train"] == 6
    with pytest.raises(LensrError, match="no class 'wdm'"):
        train(cfg(classes=["wdm"]), data=tiny_h5, out_dir=tmp_path / "x", progress=False)


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        ({"accelerator": "gpu"}, "No supported gpu backend"),  # this CPU-only test machine
        ({"precision": "bogus"}, "Precision 'bogus' is invalid"),
        ({"strategy": "bogus"}, "invalid strategy name"),
    ],
)
def test_settings_lightning_refuses_are_one_line_errors(tiny_h5, tmp_path, setting, reason):
    if setting.get("accelerator") == "gpu" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(LensrError, match="Lightning refused") as info:
        train(cfg(**setting), data=tiny_h5, out_dir=tmp_path, progress=False)
    assert reason in str(info.value) and "\n" not in str(info.value)
