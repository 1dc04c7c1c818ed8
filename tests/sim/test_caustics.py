"""The caustics engine renders the lenstronomy path's scenes within 1 % (tested on CPU)."""

import importlib.util
import json

import h5py
import numpy as np
import pytest
import torch

from lensr.cli import main
from lensr.errors import LensrError
from lensr.sim.caustics_render import CausticsRenderer, render_batch
from lensr.sim.config import load_sim_config
from lensr.sim.render import Renderer

needs_caustics = pytest.mark.skipif(
    importlib.util.find_spec("caustics") is None, reason="caustics is not installed"
)


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@needs_caustics
@pytest.mark.parametrize("preset", ["sim", "observed", "ground", "classify", "generalist"])
def test_noise_free_images_match_lenstronomy_per_class(preset):
    cfg = load_sim_config(preset)
    n = 9 if cfg.variants else len(cfg.classes)  # each class; variants with several parts
    indices = list(range(n))
    samples = CausticsRenderer(cfg, "cpu").samples(5, indices)
    ref = Renderer(cfg)
    for i, s in zip(indices, samples, strict=True):
        r = ref.render(5, i)
        assert s.label == r.label and s.params["theta_e"] == r.params["theta_e"]
        np.testing.assert_array_equal(s.subhalos, r.subhalos)
        # 1 % is the requirement; conventions right, the two agree to ~1e-5.
        assert _rel(s.hr_clean, r.hr_clean) < 1e-3, (preset, cfg.classes[s.label])
        assert _rel(s.lr_clean, r.lr_clean) < 1e-3, (preset, cfg.classes[s.label])


@needs_caustics
def test_float32_as_on_a_gpu_matches_too():
    cfg = load_sim_config("classify")
    samples = CausticsRenderer(cfg, "cpu", dtype=torch.float32).samples(1, [0, 1, 2])
    ref = Renderer(cfg)
    for i, s in enumerate(samples):
        assert _rel(s.hr_clean, ref.render(1, i).hr_clean) < 1e-3


@needs_caustics
def test_render_batch_tensors_and_noise():
    cfg = load_sim_config("classify")
    hr, lr, hr_clean, labels = render_batch(cfg, 0, [0, 1, 2, 3], "cpu")
    assert hr.shape == hr_clean.shape == (4, 1, 64, 64) and lr.shape == (4, 1, 32, 32)
    assert hr.dtype == torch.float32 and labels.tolist() == [0, 1, 2, 0]
    noise = (hr - hr_clean).std().item()
    assert 0 < noise < hr_clean.max().item()  # noisy, with the preset's S/N of 40-80
    again = render_batch(cfg, 0, [0, 1, 2, 3], "cpu")
    assert torch.equal(again.hr, hr) and torch.equal(again.lr, lr)  # same seed, same bytes


def test_unsupported_scenes_are_refused():
    cfg = load_sim_config("classify").model_copy(deep=True)
    cfg.cdm.profile = "tnfw"
    with pytest.raises(LensrError, match="point-mass"):
        CausticsRenderer(cfg)


def _cli(args, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["lensr", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:  # user errors: exit 2
        code = exc.code
    return code, capsys.readouterr()


def test_cli_engine_flag(tmp_path, monkeypatch, capsys):
    out = tmp_path / "c.h5"
    args = ["simulate", "--preset", "classify", "--n", "3", "--out", str(out)]
    code, captured = _cli([*args, "--engine", "gpu"], monkeypatch, capsys)
    assert code == 2 and "--engine must be lenstronomy or caustics" in captured.err
    assert captured.err.count("\n") == 1 and not list(tmp_path.iterdir())
    if importlib.util.find_spec("caustics") is None:
        return
    code, _ = _cli([*args, "--engine", "caustics"], monkeypatch, capsys)
    assert code in (0, None)
    with h5py.File(out) as f:
        assert json.loads(f.attrs["config"])["engine"] == "caustics"
        assert f["hr"].shape == (3, 64, 64) and list(f["label"][:]) == [0, 1, 2]
