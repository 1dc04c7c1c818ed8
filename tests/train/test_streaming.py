"""Streaming training data: pairs simulated on the fly, reproducible for any worker count."""

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lensr.data.store import open_dataset
from lensr.data.torch_data import EpochSampler
from lensr.errors import LensrError
from lensr.instrument.binning import block_mean
from lensr.sim.config import load_sim_config
from lensr.train.config import TrainConfig
from lensr.train.fit import train
from lensr.train.streaming import StreamingPairs, load_preset_spec, parse_presets


@pytest.fixture(scope="module")
def small():
    """The classify preset shrunk to 32 px HR (16 px LR): renders in a few ms."""
    return load_sim_config("classify").model_copy(update={"hr_size": 32})


def batches(ds, workers: int, n: int = 3, batch: int = 4):
    loader = DataLoader(
        ds, batch_size=batch, sampler=EpochSampler(len(ds), shuffle=False), num_workers=workers
    )
    return [b for _, b in zip(range(n), loader, strict=False)]


def test_same_batches_for_any_worker_count(small):
    ds = StreamingPairs([small], [1.0], seed=3, patch=8, epoch_size=12)
    serial, parallel = batches(ds, 0), batches(ds, 2)
    for (lr0, hr0), (lr2, hr2) in zip(serial, parallel, strict=True):
        assert torch.equal(lr0, lr2) and torch.equal(hr0, hr2)
    assert not torch.equal(serial[0][0], serial[1][0])  # every batch is new


def test_items_are_pure_functions_of_their_number(small):
    a = StreamingPairs([small], [1.0], seed=0, patch=8, epoch_size=8)
    b = StreamingPairs([small], [1.0], seed=0, patch=8, epoch_size=8)
    assert torch.equal(a[5][0], b[5][0]) and torch.equal(a[5][1], b[5][1])
    assert not torch.equal(a[5][0], a[6][0])
    other = StreamingPairs([small], [1.0], seed=1, patch=8, epoch_size=8)
    assert not torch.equal(a[5][0], other[5][0])


def test_hr_patch_is_the_sky_of_the_lr_patch(small):
    bright = small.model_copy(update={"noise": small.noise.model_copy(update={"snr": (500, 500)})})
    ds = StreamingPairs([bright], [1.0], seed=0, patch=12, epoch_size=8)
    for j in range(4):
        lr, hr = ds[j]
        down = block_mean(hr[0].numpy(), 2)
        corr = np.corrcoef(down.ravel(), lr[0].numpy().ravel())[0, 1]
        assert corr > 0.8, (j, corr)


def test_reuse_crops_one_image_several_times(small):
    ds = StreamingPairs([small], [1.0], seed=0, patch=8, epoch_size=8, reuse=3)
    assert ds.pair(0)[0] is ds.pair(2)[0]
    np.testing.assert_array_equal(ds.pair(1)[0], ds.pair(2)[0])
    assert not np.array_equal(ds.pair(2)[0], ds.pair(3)[0])


def test_mixture_follows_its_weights(small):
    other = small.model_copy(update={"name": "other"})
    ds = StreamingPairs([small, other], [0.8, 0.2], seed=0, patch=8, epoch_size=8)
    share = np.mean([ds.preset_of(j) == 0 for j in range(2000)])
    assert 0.77 < share < 0.83


def test_preset_specs():
    space = load_preset_spec("generalist/space*")
    assert [v.name for v in space.variants] == ["space-euclid", "space-hst"]
    with pytest.raises(LensrError, match="no variant matching"):
        load_preset_spec("generalist/moon*")
    cfgs, w = parse_presets("sim,observed", "3,1")
    assert [c.name for c in cfgs] == ["sim", "observed"] and w.tolist() == [0.75, 0.25]
    with pytest.raises(LensrError, match="2 positive numbers"):
        parse_presets("sim,observed", "1")
    with pytest.raises(LensrError, match="unknown preset"):
        parse_presets("nosuch")


def test_train_on_a_stream_validates_on_disjoint_pairs(tmp_path, small):
    preset = tmp_path / "small.yaml"
    preset.write_text(small.model_dump_json())
    cfg = TrainConfig(
        model="fsrcnn-tiny",
        patch=8,
        batch_size=4,
        max_steps=4,
        max_epochs=10,
        val_check_interval=2,
        max_val_images=4,
    )
    out = tmp_path / "run"
    result = train(cfg, preset=str(preset), out_dir=out, progress=False)
    meta = json.loads(result.best.with_suffix(".json").read_text())
    assert meta["data"]["kind"] == "streaming" and meta["step"] in (2, 4)
    lo, hi = meta["data"]["prior_range"]["noise_rel"]
    assert 0 < lo <= hi
    ds = StreamingPairs([small], [1.0], seed=0, patch=8)
    with open_dataset(out / "validation" / "val_0.h5") as val:
        assert len(val) == 4
        for i in range(4):
            assert not np.array_equal(val.lr[i], ds.pair(i)[0])  # another seed
    with pytest.raises(LensrError, match="exactly one"):
        train(cfg, data=tmp_path / "x.h5", preset="sim", out_dir=tmp_path / "r2")
    with pytest.raises(LensrError, match="stream.json"):  # resume must keep the stream
        train(cfg, preset=f"{preset},{preset}", out_dir=out, resume=True, progress=False)


def test_cli_needs_exactly_one_data_source(tmp_path):
    from typer.testing import CliRunner

    from lensr.cli import app

    runner = CliRunner()
    out = tmp_path / "run"
    for args in (
        [],
        ["--data", "x.h5", "--preset", "sim"],
        ["--preset", "sim,observed", "--preset-weights", "1"],
    ):
        res = runner.invoke(app, ["train", "--out", str(out), *args])
        assert isinstance(res.exception, LensrError), res.output  # main() exits 2 on it
        assert "\n" not in str(res.exception)
    assert not out.exists() or not (out / "lightning").exists()
