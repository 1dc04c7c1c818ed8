"""Fixtures of the classification tests (test_classification.py, test_audit.py): a small
simulated dataset, a briefly trained classifier and two tiny SR checkpoints, made once."""

import pytest
import torch

from lensr.models import create_model
from lensr.models.checkpoint import save_checkpoint
from lensr.train.classifier import ClassifierConfig, train_classifier

NAMES = ["none", "cdm", "axion"]


@pytest.fixture(scope="session")
def sim(tmp_path_factory):
    """30 classify-preset lenses (64 px HR, 32 px LR), classes cycling none/cdm/axion."""
    from lensr.sim.config import load_sim_config
    from lensr.sim.run import simulate

    path = tmp_path_factory.mktemp("sim") / "c.h5"
    return simulate(load_sim_config("classify"), n=30, seed=0, out=path, progress=False)


@pytest.fixture(scope="session")
def models(sim, tmp_path_factory):
    """A briefly trained classifier and two untrained tiny SR checkpoints."""
    root = tmp_path_factory.mktemp("models")
    torch.set_num_threads(1)
    cfg = ClassifierConfig(
        model_kwargs={"small_input": False},
        batch_size=8,
        max_steps=2,
        val_fraction=0.2,
        bn_recalibration_images=8,
    )
    clf = train_classifier(cfg, data=sim, out_dir=root / "clf", progress=False).best
    torch.manual_seed(0)
    sr_all = save_checkpoint(
        create_model("fsrcnn-tiny"), root / "sr.safetensors", metadata={"data": {"classes": NAMES}}
    )
    sr_cdm = save_checkpoint(
        create_model("fsrcnn-tiny"),
        root / "cdm.safetensors",
        metadata={"data": {"classes": ["cdm"]}},
    )
    return {"classifier": clf, "sr_all": sr_all, "sr_cdm": sr_cdm, "root": root}
