"""The page header, and the Results section (``eval/*`` of a run).

Example::

    html = results_section(Path("runs/demo"))    # None when the run has no eval/ folder
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from lensr.report.components import (
    esc,
    explain,
    guarded,
    note,
    section,
    subdirs,
)
from lensr.report.eval_tables import eval_html
from lensr.report.run_info import study_name
from lensr.report.summary import eval_verdict


def header(run_dir: Path) -> str:
    """Title and date (the findings follow in the Summary section, first in the page)."""
    date = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()
    return (
        f"<header>\n<h1>lensr study report: {esc(study_name(run_dir))}</h1>\n"
        f'<p class="muted">Run folder <code>{esc(run_dir.resolve())}</code> · '
        f"report made {esc(date)}</p>\n</header>"
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
            "bold marks the best model in a column only where its interval clears the runner-up's "
            "(no bold: a tie); img/s is inference throughput on the "
            "machine listed under Environment."
        )
    ]
    for d in eval_dirs:
        parts.append(f"<h3>{esc(d.name)}</h3>")
        if not (d / "metrics.json").exists():
            parts.append(note(f"eval/{d.name}/metrics.json is missing"))
            continue
        verdict = guarded(f"eval/{d.name}/metrics.json", lambda d=d: eval_verdict(d) or "")
        if verdict:
            parts.append(f'<div class="headline">{verdict}</div>')
        parts.append(guarded(f"eval/{d.name}/metrics.json", lambda d=d: eval_html(run_dir, d)))
    return section("Results", "\n".join(parts))
