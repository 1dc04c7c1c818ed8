"""Resuming `lensr train` after it died mid-epoch ends with the weights of an uninterrupted run.

The death is an exception raised from a callback two steps after a mid-epoch validation
(which saved ``lightning/last.ckpt``): everything after that checkpoint is lost, as with
kill -9. The resumed run must continue from the checkpoint's exact position in the epoch.
"""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from safetensors.torch import load_file

from lensr.errors import LensrError
from lensr.sim.run import simulate
from lensr.train.config import TrainConfig
from lensr.train.fit import train


class Died(Exception):
    """Stands for the SIGKILL: the process state is gone, only the files remain."""


class DieAt(Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            raise Died


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_config):
    path = tmp_path_factory.mktemp("resume") / "d.h5"
    return simulate(tiny_config, n=24, seed=0, out=path, progress=False)


@pytest.fixture(scope="module")
def tiny_config():
    from lensr.sim.config import load_sim_config

    return load_sim_config("classify")


def _cfg() -> TrainConfig:
    # 21 training images in batches of 4: 6 steps per epoch; validation (and last.ckpt)
    # every 4 steps, so the checkpoints at steps 4, 8, 16 lie mid-epoch.
    return TrainConfig(
        model="fsrcnn-tiny", batch_size=4, patch=16, max_steps=18, val_check_interval=4,
        max_val_images=2, lr=1e-3, threads=1,
    )  # fmt: skip


def _weights(run) -> dict:
    return load_file(str(run / "last.safetensors"))


@pytest.mark.parametrize("die_at", [6, 10])
def test_resume_after_a_mid_epoch_death_gives_the_uninterrupted_weights(tmp_path, data, die_at):
    cfg = _cfg()
    whole = tmp_path / "whole"
    train(cfg, data=data, out_dir=whole, progress=False)
    broken = tmp_path / "broken"
    with pytest.raises(Died):
        train(cfg, data=data, out_dir=broken, progress=False, callbacks=[DieAt(die_at)])
    assert (broken / "lightning" / "last.ckpt").is_file()
    train(cfg, data=data, out_dir=broken, progress=False, resume=True)
    a, b = _weights(whole), _weights(broken)
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst == 0.0, f"max |dw| = {worst:.3g}"


def test_a_second_run_into_the_same_folder_is_refused(tmp_path, data):
    run = tmp_path / "run"
    from lensr.io import file_lock

    with file_lock(run), pytest.raises(LensrError, match="another run"):
        train(_cfg(), data=data, out_dir=run, progress=False)
    assert not (run / "train_config.json").exists()


def test_a_planted_pickle_is_refused_not_run(tmp_path, data):
    run = tmp_path / "run"
    train(_cfg().model_copy(update={"max_steps": 4}), data=data, out_dir=run, progress=False)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"x": Evil()}, run / "lightning" / "last.ckpt")
    with pytest.raises(LensrError, match="not a readable checkpoint"):
        train(_cfg().model_copy(update={"max_steps": 4}), data=data, out_dir=run,
              progress=False, resume=True)  # fmt: skip
    assert not marker.exists()


def test_equal_weights_give_byte_identical_checkpoints(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from lensr.models import create_model\n"
        "from lensr.models.checkpoint import save_checkpoint\n"
        "torch.manual_seed(0)\n"
        "save_checkpoint(create_model('fsrcnn-tiny'), sys.argv[1], metadata={'b': 1, 'a': 2})\n"
    )
    paths = [tmp_path / f"c{k}.safetensors" for k in range(3)]
    for path in paths:  # separate processes: safetensors orders its header per process
        subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    assert len({p.read_bytes() for p in paths}) == 1
    assert len({p.with_suffix(".json").read_bytes() for p in paths}) == 1
