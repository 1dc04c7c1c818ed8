"""The report sections on training: the learning-rate sweep (``lr_sweep/``) and each model's
training curves and best checkpoint (``models/<name>/``).

Example::

    html = training_section(Path("runs/demo"))   # None when the run trained no model
"""

from __future__ import annotations

from pathlib import Path

from lensr.report.components import (
    as_finite,
    describe_error,
    esc,
    explain,
    figure,
    fmt,
    guarded,
    note,
    read_json,
    section,
    subdirs,
    table,
)


def _sweep_html(run_dir: Path, path: Path) -> str:
    s = read_json(path)
    best = s["best_lr"]
    rows = []
    for lr, points in s.get("curves", {}).items():
        last = points[-1][1] if points else None
        is_best = (
            as_finite(lr) is not None and as_finite(best) is not None and float(lr) == float(best)
        )
        text = f"<strong>{esc(lr)}</strong>" if is_best else esc(lr)
        rows.append([text, fmt(len(points), kind="int"), fmt(last)])
    parts = [
        f"<p>Model <strong>{esc(s.get('model', '?'))}</strong>, {fmt(s.get('steps'), kind='int')} "
        f"steps per learning rate. Best learning rate: <strong>{esc(fmt(best))}</strong>.</p>"
    ]
    if rows:
        parts.append(
            table(["learning rate", "validations", "final validation loss"], rows, numeric=(1, 2))
        )
    return "\n".join(parts)


def lr_section(run_dir: Path) -> str | None:
    """Learning rate: the sweep figure and the best LR."""
    folder = run_dir / "lr_sweep"
    path, png = folder / "lr_sweep.json", folder / "lr_sweep.png"
    if not path.exists() and not png.exists():
        return None
    parts = [
        explain(
            "Short training runs at several learning rates; the validation loss after a fixed "
            "number of steps picks the learning rate for the full runs (lowest is best)."
        )
    ]
    if path.exists():
        parts.append(guarded("lr_sweep/lr_sweep.json", lambda: _sweep_html(run_dir, path)))
    if png.exists():
        parts.append(
            figure(png, caption="validation loss against step, per learning rate", run_dir=run_dir)
        )
    return section("Learning rate", "\n".join(parts))


def _model_dirs(run_dir: Path) -> list[Path]:
    return [
        d
        for d in subdirs(run_dir / "models")
        if (d / "best.json").exists() or (d / "logs").is_dir()
    ]


def convergence(model_dir: Path, best_step: object) -> tuple[int, bool] | None:
    """(number of validation points, whether the best checkpoint is the last of them) from
    the training log, or None without a readable validation curve."""
    from lensr.report.plots import load_curves

    try:
        steps = load_curves(model_dir).get("val_psnr", ([], []))[0]
    except Exception:  # noqa: BLE001 - the curves figure reports unreadable logs
        return None
    best = as_finite(best_step)
    if not steps or best is None:
        return None
    return len(steps), best >= max(steps)


def _convergence_notes(model_dirs: list[Path]) -> list[str]:
    still, counts = [], []
    for d in model_dirs:
        try:
            found = convergence(d, read_json(d / "best.json").get("step"))
        except Exception:  # noqa: BLE001 - the table reports an unreadable best.json
            continue
        if found is None:
            continue
        counts.append(f"{d.name} {found[0]}")
        if found[1]:
            still.append(d.name)
    parts = []
    if still:
        parts.append(
            note(
                f"Still improving: the best checkpoint of {', '.join(still)} is the last "
                "validation point, so longer training would likely help; the scores below are "
                "not converged."
            )
        )
    if counts:
        parts.append(f"<p>Validation points per curve: {esc(', '.join(counts))}.</p>")
    return parts


def _model_row(model_dir: Path) -> list[str]:
    info = read_json(model_dir / "best.json")
    m = info["metrics"]
    if not isinstance(m, dict):
        raise ValueError("'metrics' is not an object")
    training = info.get("training") if isinstance(info.get("training"), dict) else {}
    return [
        esc(model_dir.name),
        esc(info.get("arch", "–")),
        fmt(info.get("epoch"), kind="int"),
        fmt(info.get("step"), kind="int"),
        fmt(training.get("lr")),
        fmt(m.get("val_loss"), kind="mse"),
        fmt(m.get("val_psnr"), kind="psnr"),
        fmt(m.get("val_ssim"), kind="ssim"),
        fmt(m.get("val_psnr_clean"), kind="psnr"),
        fmt(m.get("val_ssim_clean"), kind="ssim"),
    ]


def _curves_figure(run_dir: Path, model_dirs: list[Path]) -> str:
    from lensr.report.plots import load_curves, training_curves_figure

    parts, readable = [], {}
    for d in model_dirs:
        if not (d / "logs").is_dir():
            continue
        label = f"models/{d.name}/logs"
        try:
            if load_curves(d):
                readable[d.name] = d
        except Exception as err:  # noqa: BLE001 - one bad log must not hide the others
            parts.append(note(f"{label} could not be read: {describe_error(err)}"))
    if readable:
        path = run_dir / "report_assets" / "training_curves.png"
        png = guarded("training curves", lambda: str(training_curves_figure(readable, path)))
        if png.startswith('<p class="note">'):
            parts.insert(0, png)
        else:
            parts.insert(
                0,
                figure(
                    path,
                    caption="training loss and validation PSNR against step "
                    "(dashed: against the noise-free HR)",
                    run_dir=run_dir,
                ),
            )
    return "\n".join(parts)


def training_section(run_dir: Path) -> str | None:
    """Training: the training curves of every model and its best checkpoint's metrics."""
    model_dirs = _model_dirs(run_dir)
    if not model_dirs:
        return None
    parts = [
        explain(
            "Each model's training: the loss it minimises (per epoch) and the PSNR on held-out "
            "validation images as training goes on. The table gives the checkpoint kept (the "
            "one with the highest validation PSNR) and its validation metrics."
        ),
        *_convergence_notes(model_dirs),
        _curves_figure(run_dir, model_dirs),
    ]
    rows, notes = [], []
    for d in model_dirs:
        if not (d / "best.json").exists():
            notes.append(note(f"models/{d.name}/best.json is missing"))
            continue
        try:
            rows.append(_model_row(d))
        except Exception as err:  # noqa: BLE001 - reported in the page
            notes.append(
                note(f"models/{d.name}/best.json could not be read: {describe_error(err)}")
            )
    if rows:
        header_ = [
            "model",
            "arch",
            "best epoch",
            "step",
            "lr",
            "val loss",
            "val PSNR",
            "val SSIM",
            "val PSNR (noise-free)",
            "val SSIM (noise-free)",
        ]
        parts.append(table(header_, rows, numeric=range(2, 10)))
    parts.extend(notes)
    return section("Training", "\n".join(p for p in parts if p))
