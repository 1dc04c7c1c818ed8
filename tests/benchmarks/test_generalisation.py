"""benchmarks/generalisation.py: which presets a model saw, and one tiny end-to-end table
(a checkpoint, bicubic and the noise floor scored on held-out pairs of one preset)."""

import json

import pytest
import torch

from lensr.models import create_model
from lensr.models.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def gen(benchmark_script):
    with benchmark_script("generalisation") as module:
        yield module


def test_seen_follows_the_prior_globs(gen):
    prior = ["generalist/space*"]
    assert gen.seen_in("generalist/space-hst", prior)
    assert not gen.seen_in("generalist/ground-hsc", prior)
    assert not gen.seen_in("sim", prior)
    assert gen.seen_in("hsc-hst", ["generalist/ground*", "hsc-hst"])
    assert gen.seen_in("sim", ["sim"]) and gen.seen_in("generalist/x", ["generalist"])


def test_one_preset_table_end_to_end(gen, tmp_path, capsys):
    torch.manual_seed(0)
    meta = {"data": {"presets": ["generalist/space*"]}}
    ckpt = save_checkpoint(create_model("fsrcnn-tiny"), tmp_path / "m.safetensors", metadata=meta)
    out = tmp_path / "gen.json"
    argv = ["--checkpoint", str(ckpt), "--presets", "sim", "--n", "2", "--size", "32"]
    assert gen.main([*argv, "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["model"] for r in rows] == ["bicubic", str(ckpt), "noise floor (clean HR)"]
    mine = rows[1]
    assert mine["seen"] is False and rows[0]["seen"] is None
    assert all(0 < mine[k] < 100 for k in ("psnr_clean", "psnr_noisy"))
    assert "| sim | bicubic |" in capsys.readouterr().out


def test_ground_model_is_out_of_prior_on_space_images_only(gen):
    """The column that reports the out-of-prior warning: ground-x2 (seeing-limited prior)
    warns on every sim image (0.1"/px, 0.16" PSF) and on none of its own HSC variant's."""
    from lensr.models.checkpoint import resolve_model

    ground = resolve_model("ground-x2")
    rates = {}
    for spec in ("sim", "generalist/ground-hsc"):
        lr, _, _, fwhm = gen.test_set(spec, n=4, seed=0, size=32, psf=True)
        known = {"pixel_scale": gen.lr_pixel_scale(spec), "fwhm": fwhm}
        rates[spec] = gen.out_of_prior(ground, lr, **known)
    assert rates == {"sim": 1.0, "generalist/ground-hsc": 0.0}
    assert gen.lr_pixel_scale("generalist/ground*") is None  # a mixture: no one scale
    assert gen.out_of_prior(resolve_model("bicubic"), lr, **known) is None
