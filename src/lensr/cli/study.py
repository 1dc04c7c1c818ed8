"""The study commands: ``lensr run`` (a whole study with cached stages) and ``lensr demo``,
thin layers over :func:`lensr.study.run_study`.

Example (shell)::

    lensr demo                                   # runs/demo/report.html
    lensr run paper --out runs/paper --force train:rcan-tiny
"""

from __future__ import annotations

from pathlib import Path

import typer

from lensr.cli.options import console
from lensr.errors import LensrError


def run_(
    config: str = typer.Argument(..., help="Study YAML (or the shipped 'demo' / 'paper')."),
    out: Path = typer.Option(None, help="Run folder (default runs/<study name>)."),
    force: list[str] = typer.Option(
        [],
        help="Rerun this stage (and what depends on it); repeatable, e.g. --force train:rcan-tiny.",
    ),
):
    """Run a whole study (simulate, sweep, train, evaluate, report) with cached stages."""
    from lensr.study import run_study

    preflight(config, out=out, force=force)  # the whole study, before any stage simulates or trains
    run_dir = run_study(config, out=out, force=force)
    report = run_dir / "report.html"
    console.print(f"report: {report.resolve()}" if report.exists() else f"run folder: {run_dir}")


def preflight(config: str, *, out: Path | None = None, force: list[str] = ()) -> None:
    """Check what the study's stages only check when they start: every model name (trained
    models, the learning-rate sweep, the classification SR model) is a registered trainable
    model and every evaluation baseline a baseline; a one-line LensrError naming the key."""
    from lensr.config import load
    from lensr.models import get_model_info, list_models
    from lensr.sim.config import SimConfig, preset_path
    from lensr.study.planners import plan_study
    from lensr.study.schema import StudyConfig, study_path, train_config

    study = load(StudyConfig, study_path(config))
    for name, spec in study.datasets.items():
        if spec.preset:
            source = preset_path(spec.preset)
            load(SimConfig, source, spec.overrides, source=f"datasets.{name} ({source})")
    names = {s.name for s in plan_study(study, Path(out) if out else Path("runs") / study.name)}
    for f in force:
        if f not in names:
            raise LensrError(f"--force {f}: no such stage (stages: {', '.join(sorted(names))})")
    models = {
        f"models.{name}": train_config(study, spec.train, source=f"models.{name}").model
        for name, spec in study.models.items()
        if spec.kind == "supervised"
    }
    if study.lr_sweep:
        models["lr_sweep.model"] = study.lr_sweep.model
    if study.classify and study.classify.sr.get("model"):
        models["classify.sr.model"] = study.classify.sr["model"]
    for where, model in models.items():
        try:
            info = get_model_info(model)
        except LensrError as exc:
            raise LensrError(f"{config}: {where}: {exc}") from None
        if not info.trainable:
            raise LensrError(f"{config}: {where}: {model!r} is not a trainable model")
    baselines = {i.name for i in list_models("baseline")}
    for name, spec in study.evaluate.items():
        for b in spec.baselines:
            if b not in baselines:
                raise LensrError(
                    f"{config}: evaluate.{name}.baselines: unknown baseline {b!r} "
                    f"(known: {', '.join(sorted(baselines))})"
                )


def demo(out: Path = typer.Option(Path("runs/demo"), help="Run folder.")):
    """The demo study on CPU in minutes (same as `lensr run demo`); ends with the report path."""
    run_(config="demo", out=out, force=[])
