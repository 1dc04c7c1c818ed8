"""What a run was and how it ran: the study config (``study.yaml``, its name), the Pipeline
section (stage timings, ``stages.json``) and the Environment section (``environment.json``
and the config as run).

Example::

    study_name(Path("runs/demo"))                # the study's name, else the folder's
"""

from __future__ import annotations

from pathlib import Path

from lensr.report.components import (
    as_finite,
    esc,
    explain,
    fmt_seconds,
    guarded,
    key_value_table,
    read_json,
    section,
    table,
)


def read_study(run_dir: Path) -> dict:
    """The run's ``study.yaml`` as a dict ({} when it is missing or not a mapping)."""
    try:
        import yaml

        study = yaml.safe_load((run_dir / "study.yaml").read_text(encoding="utf-8"))
        return study if isinstance(study, dict) else {}
    except Exception:  # noqa: BLE001 - callers fall back to what the folder holds
        return {}


def study_name(run_dir: Path) -> str:
    """The study's ``name``, else the run folder's name."""
    name = read_study(run_dir).get("name")
    return str(name) if name else run_dir.resolve().name


def _stages_html(path: Path) -> str:
    stages = read_json(path)["stages"]
    rows, total = [], 0.0
    for name, info in stages.items():
        total += as_finite(info.get("seconds")) or 0.0
        outputs = ", ".join(f"<code>{esc(o)}</code>" for o in info.get("outputs") or [])
        rows.append(
            [
                esc(name),
                esc(info.get("status", "–")),
                fmt_seconds(info.get("seconds")),
                esc(info.get("finished", "–")),
                outputs or "–",
            ]
        )
    rows.append(["<strong>total</strong>", "", f"<strong>{fmt_seconds(total)}</strong>", "", ""])
    return table(["stage", "status", "time", "finished", "outputs"], rows, numeric=(2,))


def pipeline_section(run_dir: Path) -> str | None:
    """Pipeline: stage timings from stages.json."""
    path = run_dir / "stages.json"
    if not path.exists():
        return None
    body = explain(
        "The study runs as cached stages: a stage whose inputs have not changed is skipped "
        "(“skipped(cached)”) and its earlier outputs reused. Times are wall-clock seconds "
        "of this run."
    ) + guarded("stages.json", lambda: _stages_html(path))
    return section("Pipeline", body)


def _environment_html(path: Path) -> str:
    env = read_json(path)
    return key_value_table((str(k), esc(v)) for k, v in env.items())


def environment_section(run_dir: Path) -> str | None:
    """Environment: software versions and the study config as run."""
    env, study = run_dir / "environment.json", run_dir / "study.yaml"
    if not env.exists() and not study.exists():
        return None
    parts = [
        explain(
            "What the results were produced with: software versions, device, threads and "
            "seed, then the study configuration exactly as run. Rerunning this config with "
            "the same versions reproduces the study."
        )
    ]
    if env.exists():
        parts.append(guarded("environment.json", lambda: _environment_html(env)))
    if study.exists():
        parts.append("<h3>study.yaml</h3>")
        parts.append(
            guarded("study.yaml", lambda: f"<pre>{esc(study.read_text(encoding='utf-8'))}</pre>")
        )
    return section("Environment", "\n".join(parts))
