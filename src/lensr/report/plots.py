"""Figures for the HTML report that no earlier stage draws: training curves of every model.

Matplotlib's object API on the Agg canvas (no display, no pyplot state); every PNG is
written atomically by :func:`lensr.eval.figure_style.save_figure`, page-wide at most and
with text >= 9 pt. Also the reliability diagram of the Trust section.
"""

from __future__ import annotations

from pathlib import Path

from lensr.eval.figure_style import FONT_PT, PAGE_WIDTH_IN, save_figure


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
    model against the training step, one colour per model; page-wide, text >= 9 pt.

    ``model_dirs`` maps a model's display name to its training folder (the one with
    ``logs/version_*/metrics.csv``). Returns ``path``.

    >>> training_curves_figure({"rcan-tiny": Path("runs/demo/models/rcan-tiny")}, "curves.png")
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(PAGE_WIDTH_IN, 4.2), layout="constrained")
    ax_loss, ax_psnr = fig.subplots(1, 2)
    for k, (name, model_dir) in enumerate(model_dirs.items()):
        color = f"C{k % 10}"
        curves = load_curves(model_dir)
        if "train_loss" in curves:
            ax_loss.plot(*curves["train_loss"], color=color, marker=".", label=name)
        if "val_psnr" in curves:
            ax_psnr.plot(*curves["val_psnr"], color=color, marker="o", ms=4, label=f"{name}")
        if "val_psnr_clean" in curves:
            steps, values = curves["val_psnr_clean"]
            ax_psnr.plot(
                steps, values, color=color, ls="--", marker="o", ms=4, label=f"{name} (noise-free)"
            )
    ax_loss.set(xlabel="training step", ylabel="training loss (per epoch)", title="training loss")
    if ax_loss.lines and all(min(line.get_ydata()) > 0 for line in ax_loss.lines):
        ax_loss.set_yscale("log")
    ax_psnr.set(xlabel="training step", ylabel="validation PSNR (dB)", title="validation PSNR")
    _style(ax_loss, ax_psnr)
    return save_figure(fig, path)


def _style(*axes) -> None:
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=FONT_PT)
        ax.xaxis.label.set_size(FONT_PT + 0.5)
        ax.yaxis.label.set_size(FONT_PT + 0.5)
        ax.title.set_size(FONT_PT + 1)
        if ax.lines:
            ax.legend(fontsize=FONT_PT)


def reliability_figure(curves: dict[str, dict], path: str | Path) -> Path:
    """A reliability diagram per model side by side (at most 4 a row): the observed
    fraction of held-out pixels whose error lies within the Gaussian interval of each
    nominal level, raw sigma and calibrated sigma, against the diagonal (calibrated).

    ``curves`` maps a model name to ``{"levels": [...], "raw": [...], "calibrated": [...]}``
    (``sigma_calibration["reliability"]`` of metrics.json). Returns ``path``.

    >>> reliability_figure({"rcan": {"levels": [0.5], "raw": [0.2], "calibrated": [0.5]}}, "r.png")
    """
    from matplotlib.figure import Figure

    if not curves:
        raise ValueError("no reliability curves to plot")
    cols = min(4, len(curves))
    rows = -(-len(curves) // cols)
    side = min(PAGE_WIDTH_IN / cols, 3.4)
    fig = Figure(figsize=(side * cols, side * rows + 0.3), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (name, c) in zip(axes, curves.items(), strict=False):
        ax.plot([0, 1], [0, 1], color="0.5", lw=1, ls=":", label="calibrated")
        ax.plot(c["levels"], c["raw"], "o-", color="C3", ms=4, label="raw σ")
        if c.get("calibrated"):
            ax.plot(c["levels"], c["calibrated"], "s-", color="C0", ms=4, label="calibrated σ")
        ax.set(xlim=(0, 1), ylim=(0, 1), title=name, aspect="equal")
        ax.set_xlabel("nominal level")
        ax.set_ylabel("observed coverage")
        _style(ax)
        ax.get_legend().remove()
    for ax in axes[len(curves) :]:
        ax.set_visible(False)
    fig.legend(
        *axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=FONT_PT
    )
    return save_figure(fig, path)
