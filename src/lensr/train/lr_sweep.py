"""`lensr lr-sweep`: short runs at several learning rates, validation-loss curves on one plot
(the study's Figure 14, made reproducible)."""

from __future__ import annotations

from pathlib import Path

from lensr.io import atomic_path, write_json
from lensr.train.config import TrainConfig
from lensr.train.fit import read_history, train

DEFAULT_LRS = (1e-4, 3e-4, 1e-3, 3e-3)


def read_val_curve(run_dir: Path, key: str = "val_loss") -> list[tuple[int, float]]:
    """(step, value) pairs of one validation metric from a run's CSV log."""
    return [(int(row["step"]), float(row[key])) for row in read_history(run_dir) if row.get(key)]


def lr_sweep(
    cfg: TrainConfig,
    *,
    data: str | Path,
    out_dir: str | Path,
    lrs: tuple[float, ...] = DEFAULT_LRS,
    steps: int = 200,
    points: int = 5,
    progress: bool = True,
) -> dict:
    """Train ``cfg.model`` for ``steps`` at each LR (constant schedule), validating ``points``
    times; write ``lr_sweep.json`` and ``lr_sweep.png`` in ``out_dir`` and return the curves.

    >>> lr_sweep(TrainConfig(model="rcan-tiny"), data="sim.h5", out_dir="runs/sweep")
    """
    out_dir = Path(out_dir)
    curves = {}
    for lr in lrs:
        run_cfg = cfg.model_copy(
            update={
                "lr": lr,
                "max_steps": steps,
                "schedule": "constant",
                "max_epochs": 10**6,
                "val_check_interval": max(1, steps // points),
            }
        )
        result = train(run_cfg, data=data, out_dir=out_dir / f"lr_{lr:g}", progress=progress)
        curves[f"{lr:g}"] = read_val_curve(result.out_dir)
    best = min(curves, key=lambda k: curves[k][-1][1] if curves[k] else float("inf"))
    summary = {"model": cfg.model, "steps": steps, "curves": curves, "best_lr": float(best)}
    write_json(out_dir / "lr_sweep.json", summary)
    summary["figure"] = str(plot_curves(curves, out_dir / "lr_sweep.png", title=cfg.model))
    return summary


def plot_curves(curves: dict, path: Path, *, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for lr, points in curves.items():
        if points:
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, marker="o", label=f"lr = {lr}")
    ax.set_xlabel("training step")
    ax.set_ylabel("validation loss")
    ax.set_yscale("log")
    ax.set_title(f"learning-rate sweep {title}".strip())
    ax.legend()
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)
    return path
