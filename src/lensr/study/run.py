"""``lensr run CONFIG``: load a study, plan its stages, run them with caching."""

from __future__ import annotations

import shutil
from pathlib import Path

from lensr.config import load
from lensr.errors import LensrError
from lensr.study.engine import environment, run_stages, write_json
from lensr.study.planners import plan_study
from lensr.study.schema import StudyConfig, study_path


def run_study(
    config: str | Path,
    *,
    out: str | Path | None = None,
    force: list[str] | None = None,
) -> Path:
    """Run (or resume) a study; returns the run folder.

    >>> run_study("configs/demo.yaml", out="runs/demo")
    """
    source = study_path(config)
    study = load(StudyConfig, source)
    run_dir = Path(out) if out else Path("runs") / study.name
    run_dir.mkdir(parents=True, exist_ok=True)
    if study.threads:
        import torch

        torch.set_num_threads(study.threads)
    stages = plan_study(study, run_dir)
    names = {s.name for s in stages}
    for f in force or []:
        if f not in names:
            raise LensrError(f"--force {f}: no such stage (stages: {', '.join(sorted(names))})")

    shutil.copyfile(source, run_dir / "study.yaml")
    write_json(run_dir / "environment.json", environment(study))
    run_stages(stages, run_dir, force=force)
    return run_dir
