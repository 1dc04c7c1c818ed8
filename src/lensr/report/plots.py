"""Figures for the HTML report that no earlier stage draws: training curves of every model.

Matplotlib with the Agg backend (no display needed); every PNG is written atomically
(a partial file, then ``os.replace``), like the rest of lensr.
"""

from __future__ import annotations

import os
from pathlib import Path


def _values(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of the rows of a Lightning CSV log that have ``key`` set."""
    points = [(int(float(r["step"])), float(r[key])) for r in rows if r.get(key) not in (None, "")]
    return [p[0] for p in points], [p[1] for p in points]


def load_curves(model_dir: str | Path) -> dict[str, tuple[list[int], list[float]]]:
    """The curves of one training run, each as (steps, values).

    Keys: ``train_loss`` (per epoch; per step when the log has no epoch rows), ``val_psnr``
    and, when the data set has noise-free HR images, ``val_psnr_clean``. Empty curves are
    left out. Raises ``OSError``/``ValueError``/``KeyError`` on an unreadable log.

    >>> load_curves("runs/demo/models/rcan-tiny")["val_psnr"]
    """
    from lensr.train.fit import read_history  # lazy: it imports torch and Lightning

    rows = read_history(model_dir)
    curves = {"train_loss": _values(rows, "train_loss_epoch")}
    if not curves["train_loss"][0]:
        curves["train_loss"] = _values(rows, "train_loss_step")
    curves["val_psnr"] = _values(rows, "val_psnr")
    curves["val_psnr_clean"] = _values(rows, "val_psnr_clean")
    return {k: v for k, v in curves.items() if v[0]}


def training_curves_figure(model_dirs: dict[str, Path], path: str | Path) -> Path:
    """One PNG with the training loss (left, log scale) and the validation PSNR (right:
    solid against the noisy HR, dashed against the noise-free HR when logged) of every
    model against the training step, one colour per model.

    ``model_dirs`` maps a model's display name to its training folder (the one with
    ``logs/version_*/metrics.csv``). Returns ``path``.

    >>> training_curves_figure({"rcan-tiny": Path("runs/demo/models/rcan-tiny")}, "curves.png")
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, (ax_loss, ax_psnr) = plt.subplots(1, 2, figsize=(10, 3.8))
    for k, (name, model_dir) in enumerate(model_dirs.items()):
        color = f"C{k % 10}"
        curves = load_curves(model_dir)
        if "train_loss" in curves:
            ax_loss.plot(*curves["train_loss"], color=color, marker=".", label=name)
        if "val_psnr" in curves:
            ax_psnr.plot(*curves["val_psnr"], color=color, marker="o", ms=3, label=f"{name}")
        if "val_psnr_clean" in curves:
            steps, values = curves["val_psnr_clean"]
            ax_psnr.plot(
                steps, values, color=color, ls="--", marker="o", ms=3, label=f"{name} (noise-free)"
            )
    ax_loss.set(xlabel="training step", ylabel="training loss (per epoch)", title="training loss")
    if ax_loss.lines and all(min(line.get_ydata()) > 0 for line in ax_loss.lines):
        ax_loss.set_yscale("log")
    ax_psnr.set(xlabel="training step", ylabel="validation PSNR (dB)", title="validation PSNR")
    for ax in (ax_loss, ax_psnr):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial.png")
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path
