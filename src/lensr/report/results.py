"""The page header with its headline results, and the Results section (``eval/*`` of a run).

Example::

    html = results_section(Path("runs/demo"))    # None when the run has no eval/ folder
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from lensr.report.components import (
    TARGET_LABELS,
    as_finite,
    esc,
    explain,
    fmt,
    fmt_stat,
    guarded,
    note,
    read_json,
    section,
    subdirs,
)
from lensr.report.eval_tables import eval_html
from lensr.report.run_info import study_name


def _eval_dirs(run_dir: Path) -> list[Path]:
    return [d for d in subdirs(run_dir / "eval") if (d / "metrics.json").exists()]


def _gain(summary: dict, *, kind: str, unit: str) -> str:
    """``+X unit [low, high]`` with the value and unit in bold."""
    interval = fmt_stat({**summary, "mean": None}, kind=kind, sign=True).removeprefix("–")
    return f"<strong>{fmt(summary['mean'], kind=kind, sign=True)} {esc(unit)}</strong>{interval}"


def _headline_for(metrics: dict, name: str) -> list[str]:
    """One sentence per trained network: its gain over bicubic, with intervals."""
    gains = metrics["gains_vs_bicubic"]
    target = "clean" if gains.get("clean") else next(iter(gains))
    baselines = {m["name"] for m in metrics.get("models", []) if m.get("params") == 0}
    per_model = {m: g for m, g in gains[target].items() if m not in baselines}
    if not per_model:
        raise ValueError("no trained model in gains_vs_bicubic")
    against = f"the {TARGET_LABELS.get(target, target)}"
    lines = []
    for model in sorted(per_model, key=lambda m: -(as_finite(per_model[m]["psnr"]["mean"]) or 0)):
        psnr, ssim = per_model[model]["psnr"], per_model[model]["ssim"]
        better = (as_finite(psnr["ci_low"]) or 0) > 0 and (as_finite(ssim["ci_low"]) or 0) > 0
        verb = "beats bicubic by" if better else "vs bicubic:"
        lines.append(
            f"<strong>{esc(model)}</strong> {verb} "
            f"{_gain(psnr, kind='psnr', unit='dB PSNR')} and "
            f"{_gain(ssim, kind='ssim', unit='SSIM')} against {esc(against)} "
            f'<span class="muted">(eval “{esc(name)}”, {fmt(metrics.get("n"), kind="int")} '
            f"images, 95 % bootstrap intervals)</span>"
        )
    return lines


def header(run_dir: Path) -> str:
    """Title, date and a headline result per evaluation."""
    lines = []
    for d in _eval_dirs(run_dir):
        try:
            lines += [
                f"<p>{line}</p>" for line in _headline_for(read_json(d / "metrics.json"), d.name)
            ]
        except Exception:  # noqa: BLE001 - the Results section shows the note
            continue
    headline = '<div class="headline">' + "\n".join(lines) + "</div>" if lines else ""
    date = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()
    return (
        f"<header>\n<h1>lensr study report: {esc(study_name(run_dir))}</h1>\n"
        f'<p class="muted">Run folder <code>{esc(run_dir.resolve())}</code> · '
        f"report made {esc(date)}</p>\n{headline}\n</header>"
    )


def results_section(run_dir: Path) -> str | None:
    """Results: per evaluation and target, the metric tables, gains and figures."""
    eval_dirs = [d for d in subdirs(run_dir / "eval")]
    if not eval_dirs:
        return None
    parts = [
        explain(
            "Each model upscales the LR test images; its output is compared with the HR image. "
            "PSNR (dB) and SSIM (0 to 1) are higher-is-better, MSE lower-is-better; each is "
            "computed per image after min-max normalising the HR target to [0, 1] (the same "
            "map applied to the output), then averaged. Brackets are 95 % bootstrap intervals; "
            "bold marks the best model in each column; img/s is inference throughput on the "
            "machine listed under Environment."
        )
    ]
    for d in eval_dirs:
        parts.append(f"<h3>{esc(d.name)}</h3>")
        if not (d / "metrics.json").exists():
            parts.append(note(f"eval/{d.name}/metrics.json is missing"))
            continue
        parts.append(guarded(f"eval/{d.name}/metrics.json", lambda d=d: eval_html(run_dir, d)))
    return section("Results", "\n".join(parts))
