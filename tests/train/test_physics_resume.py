"""`lensr train-physics --resume`: a run interrupted after epoch 2 and resumed from the
command line ends with the same weights as a run that was never interrupted."""

import functools

import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from lensr.cli import app
from lensr.errors import LensrError
from lensr.train import physics_fit

CONFIG = (
    "batch_size: 6\nmax_val_images: 3\nval_fraction: 0.25\nrefine_steps: 0\n"
    "model_kwargs: {n_feats: 8, n_blocks: 1, cg_iters: 3}\n"
)


def test_train_physics_resume_gives_the_uninterrupted_weights(
    tiny_h5, tmp_path, monkeypatch, crash_at_epoch
):
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)
    runner = CliRunner()

    def args(out):
        run = ["train-physics", "--data", str(tiny_h5), "--out", str(tmp_path / out)]
        return [*run, "--config", str(config), "--epochs", "3", "--lr", "3e-3", "--threads", "1"]

    straight = runner.invoke(app, args("straight"))
    assert straight.exit_code == 0, straight.output

    crashing = functools.partial(physics_fit.train_physics, callbacks=[crash_at_epoch(2)])
    with monkeypatch.context() as m:
        m.setattr(physics_fit, "train_physics", crashing)
        crashed = runner.invoke(app, args("resumed"))
    assert isinstance(crashed.exception, RuntimeError), crashed.output
    assert (tmp_path / "resumed" / "lightning" / "last.ckpt").is_file()
    interrupted = load_file(str(tmp_path / "resumed" / "last.safetensors"))  # after epoch 1

    again = runner.invoke(app, args("resumed"))
    assert isinstance(again.exception, LensrError) and "--resume" in str(again.exception)

    resumed = runner.invoke(app, [*args("resumed"), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    for name in ("last", "best"):
        a = load_file(str(tmp_path / "straight" / f"{name}.safetensors"))
        b = load_file(str(tmp_path / "resumed" / f"{name}.safetensors"))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    # The interruption cost an epoch: the resumed run had training left to do.
    final = load_file(str(tmp_path / "straight" / "last.safetensors"))
    assert any(not torch.equal(final[k], v) for k, v in interrupted.items())
