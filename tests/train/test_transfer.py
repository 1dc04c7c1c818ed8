"""Transfer learning: two-stage fine-tuning and ADDA on tiny simulated data."""

import json

import h5py
import numpy as np
import pytest
import torch

from lensr.data.torch_data import split_indices
from lensr.errors import LensrError
from lensr.infer.arrays import upscale_array
from lensr.models import create_model
from lensr.models.checkpoint import load_checkpoint, resolve_model, save_checkpoint
from lensr.models.common import split_parameters
from lensr.train.adda import UnpairedLR, adda
from lensr.train.config import ADDAConfig, FinetuneConfig
from lensr.train.finetune import feature_norm_layers, finetune

FAST = {"batch_size": 4, "patch": 16, "val_fraction": 0.25, "max_val_images": 4}
NORM = {"normalization": {"name": "lr-percentile", "percentile": 99.5}}


@pytest.fixture(scope="module")
def target_h5(tmp_path_factory):
    """24 `observed`-preset pairs shrunk to 64 px HR / 32 px LR, like `tiny_h5`."""
    from lensr.sim.config import load_sim_config
    from lensr.sim.run import simulate

    cfg = load_sim_config("observed").model_copy(update={"hr_size": 64, "hr_pixel_scale": 0.08})
    path = tmp_path_factory.mktemp("target") / "observed.h5"
    return simulate(cfg, n=24, seed=1, out=path, progress=False)


def make_source(path, *, scale=2):
    """A small SRResNet with batch norm (random weights stand in for a trained model)."""
    torch.manual_seed(0)
    model = create_model("srresnet-tiny", scale=scale, n_feats=8, n_blocks=2)
    return save_checkpoint(model, path, metadata={**NORM, "metrics": {"val_psnr": 40.0}})


@pytest.fixture(scope="module")
def source_ckpt(tmp_path_factory):
    return make_source(tmp_path_factory.mktemp("source") / "src.safetensors")


@pytest.fixture(scope="module")
def finetuned(source_ckpt, target_h5, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft")
    cfg = FinetuneConfig(
        stage1_epochs=2, stage2_epochs=2, stage1_lr=1e-3, stage2_lr_factor=1e-3, **FAST
    )
    torch.set_num_threads(1)
    return finetune(source_ckpt, data=target_h5, out_dir=out, cfg=cfg, progress=False)


def weights(path) -> dict:
    model, _ = load_checkpoint(path)
    return {k: v.clone() for k, v in model.state_dict().items()}


def parts(path):
    """(feature param names, upsampler param names, feature BN buffer names) of a checkpoint."""
    model, _ = load_checkpoint(path)
    features, upsampler = split_parameters(model)
    norms = {id(m) for m in feature_norm_layers(model)}
    buffers = [
        f"{name}.{b}"
        for name, m in model.named_modules()
        if id(m) in norms
        for b, _ in m.named_buffers()
    ]
    assert buffers, "the test model must have batch norm in its feature extractor"
    return features, upsampler, buffers


def test_stage1_trains_only_the_upsampler(finetuned, source_ckpt):
    features, upsampler, bn_buffers = parts(source_ckpt)
    before, after = weights(source_ckpt), weights(finetuned.parent / "stage1" / "best.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in features)
    assert all(torch.equal(before[k], after[k]) for k in bn_buffers)
    assert any(not torch.equal(before[k], after[k]) for k in upsampler)


def test_stage2_starts_from_stage1_and_trains_features(finetuned, source_ckpt):
    features, _, _ = parts(source_ckpt)
    stage1 = weights(finetuned.parent / "stage1" / "best.safetensors")
    stage2 = weights(finetuned.parent / "stage2" / "best.safetensors")
    assert any(not torch.equal(stage1[k], stage2[k]) for k in features)
    # stage 2 ran at lr 1e-6: it moved stage 1's best weights only a little.
    assert all(torch.allclose(stage1[k], stage2[k], atol=1e-4) for k in features)


def test_finetuned_checkpoint_records_provenance_and_upscales(finetuned, source_ckpt, target_h5):
    model, meta = load_checkpoint(finetuned)
    assert meta["transfer"] == "finetune" and meta["arch"] == "srresnet-tiny"
    assert meta["source_checkpoint"]["path"] == str(source_ckpt)
    assert set(meta["stages"]) == {"stage1", "stage2"}
    assert meta["stages"]["stage1"]["trained"] == "upsampler"
    assert meta["selected_stage"] in meta["stages"]
    best = max(s["metrics"]["val_psnr"] for s in meta["stages"].values())
    assert meta["metrics"]["val_psnr"] == best
    assert "val_psnr" in meta["source_metrics"]
    assert meta["data"]["path"] == str(target_h5) and meta["data"]["n_val"] == 4
    for stage in ("stage1", "stage2"):
        assert (finetuned.parent / stage / "logs").is_dir()
    model.metadata = meta
    with h5py.File(target_h5) as f:
        lr = f["lr"][:2]
    sr = upscale_array(lr, model)
    assert sr.shape == (2, 64, 64) and np.isfinite(sr).all()


def test_a_shipped_pretrained_model_is_fine_tuned_by_name(target_h5, tmp_path):
    """`lensr finetune --model space-x2`: the shipped weights are the starting point."""
    cfg = FinetuneConfig(stage1_epochs=1, stage2_epochs=0, **FAST)
    torch.set_num_threads(1)
    best = finetune("space-x2", data=target_h5, out_dir=tmp_path, cfg=cfg, progress=False)
    model, meta = load_checkpoint(best)
    assert meta["transfer"] == "finetune" and meta["arch"] == "rcan"
    assert meta["source_checkpoint"]["path"] == "space-x2"
    tuned, start = model.state_dict(), resolve_model("space-x2").state_dict()
    changed = [k for k in tuned if not torch.equal(tuned[k], start[k])]
    assert changed and set(changed) <= set(split_parameters(model)[1])  # stage 1: upsampler


@pytest.fixture
def h5_reads(monkeypatch):
    """Every (file name, dataset name, index) read through h5py during the test."""
    reads = []
    original = h5py.Dataset.__getitem__

    def spy(self, args, *rest, **kw):
        reads.append((self.file.filename, self.name, args))
        return original(self, args, *rest, **kw)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    return reads


def hr_reads(reads, path):
    return [args for name, ds, args in reads if name == str(path) and ds in ("/hr", "/hr_clean")]


def test_adda_adapts_the_encoder_only_and_hr_is_only_monitored(
    source_ckpt, tiny_h5, target_h5, tmp_path, h5_reads
):
    cfg = ADDAConfig(steps=6, val_every=3, **FAST)
    best = adda(
        source_ckpt,
        source_data=tiny_h5,
        target_data=target_h5,
        out_dir=tmp_path,
        cfg=cfg,
        progress=False,
    )
    _, upsampler, _ = parts(source_ckpt)
    before, after = weights(source_ckpt), weights(best)
    assert all(torch.equal(before[k], after[k]) for k in upsampler)
    encoder = [k for k in before if k not in upsampler]
    assert any(not torch.equal(before[k], after[k]) for k in encoder)

    _, val = split_indices(24, val_fraction=0.25, seed=0)
    assert hr_reads(h5_reads, tiny_h5) == []
    target_hr = hr_reads(h5_reads, target_h5)
    assert target_hr and {int(i) for i in target_hr} <= {int(i) for i in val}

    model, meta = load_checkpoint(best)
    assert meta["transfer"] == "adda" and meta["selected_by"] == "last_step"
    assert meta["target_hr_used_for"] == "monitoring"
    assert [row["step"] for row in meta["history"]] == [3, 6] and meta["step"] == 6
    assert meta["metrics"] == meta["history"][-1]["metrics"]
    assert (tmp_path / "last.safetensors").is_file()
    assert upscale_array(np.random.rand(2, 20, 20), model).shape == (2, 40, 40)


def test_adda_without_monitoring_never_reads_target_hr(
    source_ckpt, tiny_h5, target_h5, tmp_path, h5_reads
):
    cfg = ADDAConfig(steps=2, monitor=False, **FAST)
    best = adda(
        source_ckpt,
        source_data=tiny_h5,
        target_data=target_h5,
        out_dir=tmp_path,
        cfg=cfg,
        progress=False,
    )
    assert hr_reads(h5_reads, target_h5) == [] and hr_reads(h5_reads, tiny_h5) == []
    meta = json.loads(best.with_suffix(".json").read_text())
    assert meta["target_hr_used_for"] == "nothing" and meta["metrics"] == {}


def test_adda_training_items_are_lr_patches_only(tiny_h5, target_h5):
    items = UnpairedLR(tiny_h5, [0, 1], target_h5, [2, 3], patch=16, seed=0, n=4)
    assert len(items) == 4
    assert [tuple(t.shape) for t in items[0]] == [(1, 16, 16), (1, 16, 16)]
    assert all(torch.equal(a, b) for a, b in zip(items[3], items[3], strict=True))


def test_adda_select_by_val_keeps_the_best_validation(source_ckpt, tiny_h5, target_h5, tmp_path):
    cfg = ADDAConfig(steps=4, val_every=2, select_by_val=True, lr=1e-3, **FAST)
    best = adda(
        source_ckpt,
        source_data=tiny_h5,
        target_data=target_h5,
        out_dir=tmp_path,
        cfg=cfg,
        progress=False,
    )
    meta = json.loads(best.with_suffix(".json").read_text())
    assert meta["selected_by"] == "val_psnr" and meta["target_hr_used_for"] == "selection"
    assert meta["metrics"]["val_psnr"] == max(r["metrics"]["val_psnr"] for r in meta["history"])


def one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


def test_one_line_errors(source_ckpt, tiny_h5, target_h5, tmp_path):
    cfg = FinetuneConfig(stage1_epochs=1, stage2_epochs=0, **FAST)
    x4 = make_source(tmp_path / "x4.safetensors", scale=4)
    with pytest.raises(LensrError) as e:
        finetune(x4, data=target_h5, out_dir=tmp_path / "a", cfg=cfg, progress=False)
    assert "scale 4" in one_line(e) and "scale 2" in str(e.value)
    with pytest.raises(LensrError, match="scale 4") as e:
        adda(x4, source_data=tiny_h5, target_data=target_h5, out_dir=tmp_path / "b")
    one_line(e)
    with pytest.raises(LensrError) as e:
        finetune("bicubic", data=target_h5, out_dir=tmp_path / "c", cfg=cfg, progress=False)
    assert "bicubic" in one_line(e) and "no parameters" in str(e.value)
    with pytest.raises(LensrError) as e:
        finetune(tmp_path / "missing.safetensors", data=target_h5, out_dir=tmp_path / "d")
    assert "missing.safetensors" in one_line(e)
    with pytest.raises(LensrError) as e:
        finetune(source_ckpt, data=tmp_path / "missing.h5", out_dir=tmp_path / "e")
    assert "missing.h5" in one_line(e)
    with pytest.raises(LensrError) as e:
        adda(source_ckpt, source_data=tmp_path / "no.h5", target_data=target_h5, out_dir=tmp_path)
    assert "no.h5" in one_line(e)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "best.safetensors").write_bytes(b"")
    with pytest.raises(LensrError, match="already holds a run") as e:
        finetune(source_ckpt, data=target_h5, out_dir=tmp_path / "used", cfg=cfg)
    one_line(e)
    with pytest.raises(ValueError, match="nothing to train"):
        FinetuneConfig(stage1_epochs=0, stage2_epochs=0)
