"""Run by tests/train/test_ddp_weights.py as ``python ddp_script.py KIND DATA OUT``: one
short training of KIND (sr, physics, classify) on two CPU processes (DDP, gloo); every rank
saves its trainable parameters at the end (``rank{N}.pt``) and rank 0 also its initial
ones (``init.pt``). Lightning starts rank 1 by re-running this same command."""

import sys
from pathlib import Path

import lightning as L
import torch

DDP = {"accelerator": "cpu", "devices": 2, "strategy": "ddp", "threads": 1}


class DumpWeights(L.Callback):
    """Saves the parameters of the network at the start (rank 0) and end (every rank)."""

    def __init__(self, out: Path):
        self.out = out

    def _params(self, pl_module):
        return {k: v.detach().clone() for k, v in pl_module.model.named_parameters()}

    def on_train_start(self, trainer, pl_module):
        if trainer.global_rank == 0:
            torch.save(self._params(pl_module), self.out / "init.pt")

    def on_train_end(self, trainer, pl_module):
        torch.save(self._params(pl_module), self.out / f"rank{trainer.global_rank}.pt")


def main(kind: str, data: str, out: str) -> None:
    out_dir = Path(out)
    dumps = Path(f"{out}-weights")
    dumps.mkdir(parents=True, exist_ok=True)
    callbacks = [DumpWeights(dumps)]
    if kind == "sr":
        from lensr.train.config import TrainConfig
        from lensr.train.fit import train

        cfg = TrainConfig(model="fsrcnn-tiny", patch=16, batch_size=4, max_steps=4,
                          max_val_images=4, val_fraction=0.25, lr=1e-3, **DDP)  # fmt: skip
        train(cfg, data=data, out_dir=out_dir, progress=False, callbacks=callbacks)
    elif kind == "physics":
        from lensr.train.physics_fit import train_physics
        from lensr.train.physics_module import PhysicsTrainConfig

        cfg = PhysicsTrainConfig(
            batch_size=3, max_epochs=1, max_val_images=2, val_fraction=0.25, refine_steps=0,
            lr=3e-3, model_kwargs={"n_feats": 8, "n_blocks": 1, "cg_iters": 3}, **DDP,
        )  # fmt: skip
        train_physics(cfg, data=data, out_dir=out_dir, progress=False, callbacks=callbacks)
    else:
        from lensr.train.classifier import ClassifierConfig, train_classifier

        cfg = ClassifierConfig(
            model_kwargs={"small_input": False}, batch_size=4, max_steps=3, val_fraction=0.2,
            bn_recalibration_images=4, **DDP,
        )  # fmt: skip
        train_classifier(cfg, data=data, out_dir=out_dir, progress=False, callbacks=callbacks)


if __name__ == "__main__":
    main(*sys.argv[1:4])
