import lightning as L
import pytest

from lensr.sim.run import simulate


@pytest.fixture(scope="session")
def tiny_h5(tmp_path_factory):
    """24 classify-preset pairs (64 px HR, 32 px LR): enough to train for a few steps."""
    from lensr.sim.config import load_sim_config

    path = tmp_path_factory.mktemp("data") / "tiny.h5"
    return simulate(load_sim_config("classify"), n=24, seed=0, out=path, progress=False)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test of this folder runs on one torch thread (tests/conftest.py)."""


class CrashAtEpoch(L.Callback):
    """Raises at the start of ``epoch``: an interrupted run, for the resume tests."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated crash")


@pytest.fixture
def crash_at_epoch():
    """``crash_at_epoch(n)``: a callback that interrupts training at the start of epoch n."""
    return CrashAtEpoch
