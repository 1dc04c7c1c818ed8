"""The study engine: a :class:`Stage` is one cached unit of work; :func:`run_stages` runs a
list of them in order, skipping a stage whose fingerprint (its config and the finish marks
of the stages it reads) is unchanged and whose outputs exist, and records each in
``stages.json``. Also the helpers stages share (a fresh output folder, resuming an
interrupted training run) and the ``environment.json`` record.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from lensr._version import __version__
from lensr.study.schema import StudyConfig

console = Console(stderr=True, emoji=False)


@dataclass
class Stage:
    """One cached unit of work. ``run`` returns the paths it wrote (relative or absolute)."""

    name: str
    config: dict
    run: Callable[[], list[Path]]
    deps: list[str] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)


def _hash(obj) -> str:
    # The fingerprint of a stage: its config and the finish marks of what it reads.
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fresh_dir(path: Path) -> Path:
    """``path`` as a new empty folder (whatever an earlier run left there is removed)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def resumable(out: Path, cfg) -> bool:
    """Whether ``out`` holds an interrupted training run of exactly ``cfg``: the stage then
    resumes from its last validation instead of starting over."""
    saved = out / "train_config.json"
    return (
        (out / "lightning" / "last.ckpt").is_file()
        and saved.is_file()
        and json.loads(saved.read_text()) == json.loads(cfg.model_dump_json())
    )


def environment(study: StudyConfig) -> dict:
    """Versions, platform, device, threads and seed of this run (``environment.json``)."""
    import lenstronomy
    import lightning
    import numpy
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {
        "lensr": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "lenstronomy": lenstronomy.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "device": device,
        "threads": study.threads or torch.get_num_threads(),
        "seed": study.seed,
    }


def _load_state(path: Path) -> dict:
    if not path.is_file():
        return {"stages": {}}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return {"stages": {}}  # a damaged cache only costs a rerun


def write_json(path: Path, obj) -> None:
    """Write ``obj`` as JSON under a temporary name, then rename it into place."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def run_stages(stages: list[Stage], run_dir: Path, *, force: list[str] | None = None) -> None:
    """Run ``stages`` in order, skipping the cached ones, and record them in
    ``run_dir/stages.json``. ``force`` names stages to rerun (their dependants follow)."""
    state_path = run_dir / "stages.json"
    state = _load_state(state_path)
    for stage in stages:
        dep_marks = [state["stages"].get(d, {}).get("finished", "") for d in stage.deps]
        fingerprint = _hash({"config": stage.config, "deps": dep_marks})
        previous = state["stages"].get(stage.name, {})
        cached = (
            previous.get("fingerprint") == fingerprint
            and previous.get("status") in ("done", "cached")
            and all(p.exists() for p in stage.outputs)
            and stage.name not in (force or [])
        )  # dependants of a rerun stage see its new `finished` mark, so they rerun too
        if cached:
            console.print(f"[dim]= {stage.name}: unchanged, skipped[/]")
            state["stages"][stage.name] = {**previous, "status": "cached"}
            continue
        console.print(f"[bold]> {stage.name}[/]")
        start = time.perf_counter()
        written = stage.run()
        state["stages"][stage.name] = {
            "status": "done",
            "fingerprint": fingerprint,
            "seconds": round(time.perf_counter() - start, 2),
            "finished": datetime.now(UTC).isoformat(timespec="microseconds"),
            "outputs": [
                str(Path(p).relative_to(run_dir)) if Path(p).is_relative_to(run_dir) else str(p)
                for p in written
            ],
        }
        write_json(state_path, state)
    write_json(state_path, state)
