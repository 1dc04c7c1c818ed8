"""The HTML of one evaluation (``metrics.json`` of `lensr evaluate`): per target, the
overall metric table, the gains over bicubic and the per-class table, then the figures.

Shared by the Results section (``eval/*``) and the Transfer section (``transfer/*/eval``).

Example::

    html = eval_html(Path("runs/demo"), Path("runs/demo/eval/test"))
"""

from __future__ import annotations

from pathlib import Path

from lensr.eval.tables import clear_best
from lensr.report.components import (
    TARGET_EXPLAINED,
    TARGET_LABELS,
    as_finite,
    esc,
    explain,
    figure,
    fmt,
    fmt_params,
    fmt_stat,
    read_json,
    table,
)
from lensr.report.physics import physics_html


def _score(model: dict, target: str, metric: str, cls: str | None = None) -> dict | None:
    scores = (model.get("scores") or {}).get(target) or {}
    block = scores.get("overall") if cls is None else (scores.get("per_class") or {}).get(cls)
    value = (block or {}).get(metric)
    return value if isinstance(value, dict) else None


def _best(models: list[dict], target: str, metric: str, cls: str | None = None) -> str | None:
    """The name of the clear best model (interval apart from the runner-up's), else None."""
    named = [(m["name"], _score(m, target, metric, cls)) for m in models]
    named = [
        (n, s)
        for n, s in named
        if s and all(as_finite(s.get(k)) is not None for k in ("mean", "ci_low", "ci_high"))
    ]
    if len(named) < 2:
        return None
    at = clear_best([s for _, s in named], higher=metric != "mse")
    return None if at is None else named[at][0]


def _metric_cells(models: list[dict], model: dict, target: str, cls: str | None) -> list[str]:
    cells = []
    for metric, ci in (("mse", False), ("psnr", True), ("ssim", True)):
        s = _score(model, target, metric, cls)
        text = fmt_stat(s, kind=metric, ci=ci)
        if s is not None and _best(models, target, metric, cls) == model["name"]:
            text = f"<strong>{text}</strong>"
        cells.append(text)
    return cells


def _overall_table(models: list[dict], target: str) -> str:
    rows = [
        [esc(m["name"]), fmt_params(m.get("params"))]
        + _metric_cells(models, m, target, None)
        + [fmt(m.get("images_per_s"))]
        for m in models
    ]
    header_ = ["model", "params", "MSE", "PSNR (dB) [95 % CI]", "SSIM [95 % CI]", "img/s"]
    return table(header_, rows, numeric=range(1, 6))


def _per_class_table(models: list[dict], target: str, classes: list[str]) -> str:
    rows = [
        [esc(cls), esc(m["name"])] + _metric_cells(models, m, target, cls)
        for cls in classes
        for m in models
    ]
    return table(
        ["class", "model", "MSE", "PSNR (dB) [95 % CI]", "SSIM [95 % CI]"],
        rows,
        numeric=range(2, 5),
    )


def _gains_table(gains: dict) -> str:
    rows = [
        [
            esc(name),
            fmt_stat(g.get("psnr"), kind="psnr", sign=True),
            fmt_stat(g.get("ssim"), kind="ssim", sign=True),
        ]
        for name, g in gains.items()
    ]
    return table(
        ["model", "ΔPSNR (dB) [95 % CI]", "ΔSSIM [95 % CI]"],
        rows,
        numeric=(1, 2),
        caption="gain over bicubic (paired, per image)",
    )


def _target_html(metrics: dict, target: str) -> str:
    models = metrics["models"]
    label = TARGET_LABELS.get(target, target)
    parts = [
        f"<h4>Against the {esc(label)}</h4>",
        explain(f"Scores {TARGET_EXPLAINED.get(target, 'against the ' + label)}."),
        _overall_table(models, target),
    ]
    gains = (metrics.get("gains_vs_bicubic") or {}).get(target)
    if gains:
        parts.append(_gains_table(gains))
    classes = [str(c) for c in metrics.get("class_names") or []]
    if classes and any(_score(m, target, "psnr", classes[0]) for m in models):
        parts.append(
            f"<details><summary>Per class ({esc(label)})</summary>\n"
            f"{_per_class_table(models, target, classes)}\n</details>"
        )
    return "\n".join(parts)


def eval_html(run_dir: Path, eval_dir: Path) -> str:
    metrics = read_json(eval_dir / "metrics.json")
    if not isinstance(metrics["models"], list) or not metrics["models"]:
        raise ValueError("'models' is empty")
    parts = [
        f"<p>Dataset <code>{esc(metrics.get('dataset', '?'))}</code>, "
        f"{fmt(metrics.get('n'), kind='int')} images, scale ×{esc(metrics.get('scale', '?'))}.</p>"
    ]
    targets = metrics.get("targets") or ["noisy", "clean"]
    parts.extend(_target_html(metrics, t) for t in targets)
    physics = physics_html(metrics)
    if physics:
        parts.append(physics)
    figures = metrics.get("figures") or {}
    examples = metrics.get("examples") or []
    shown = f" (images {', '.join(f'#{i}' for i in examples)})" if examples else ""
    captions = {
        "comparison": f"LR input, each model's output and the HR target{shown}",
        "residuals": f"residuals: output minus noise-free HR, same images{shown}",
    }
    for key, name in figures.items():
        if key == "trust":  # shown in "Can we trust it?" with its tables
            continue
        caption = captions.get(key, key)
        parts.append(figure(eval_dir / Path(str(name)).name, caption=caption, run_dir=run_dir))
    return "\n".join(parts)
