"""The study planners: what stages a study yields. A planner is a function
``(study, run_dir) -> list[Stage]``; :data:`PLANNERS` lists them in dependency order (data,
learning-rate sweep and training, evaluation, transfer, classification) and
:func:`plan_study` adds the report, which reads everything.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from pathlib import Path

from lensr.config import load
from lensr.study.classify import plan_classification
from lensr.study.engine import Stage, fresh_dir, resumable
from lensr.study.schema import DatasetSpec, ModelSpec, StudyConfig, physics_config, train_config
from lensr.study.transfer import plan_transfer


def _dataset_seed(study: StudyConfig, name: str, spec: DatasetSpec) -> int:
    return (
        spec.seed if spec.seed is not None else study.seed * 1000 + zlib.crc32(name.encode()) % 997
    )


def plan_data(study: StudyConfig, run_dir: Path) -> list[Stage]:
    from lensr.sim.config import SimConfig, preset_path

    stages = []
    for name, spec in study.datasets.items():
        source = preset_path(spec.preset)
        sim = load(SimConfig, source, spec.overrides, source=f"datasets.{name} ({source})")
        seed = _dataset_seed(study, name, spec)
        out = run_dir / "data" / f"{name}.h5"

        def run(sim=sim, seed=seed, out=out, n=spec.n):
            from lensr.data.inspect import summarize
            from lensr.data.store import open_dataset
            from lensr.eval.data_preview import preview_grid
            from lensr.sim.run import simulate

            out.parent.mkdir(parents=True, exist_ok=True)
            simulate(sim, n=n, seed=seed, out=out, workers=study.workers, overwrite=True)
            with open_dataset(out) as ds:
                summary = summarize(ds)
                preview_grid(ds, out.with_suffix(".png"), per_class=2)
            out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
            return [out, out.with_suffix(".png"), out.with_suffix(".json")]

        stages.append(
            Stage(
                f"data:{name}",
                {"sim": sim.model_dump(), "n": spec.n, "seed": seed},
                run,
                outputs=[out],
            )
        )
    return stages


def _physics_stage(name: str, spec: ModelSpec, study: StudyConfig, run_dir: Path) -> Stage:
    cfg = physics_config(study, spec.train, source=f"models.{name}")
    out = run_dir / "models" / name

    def fit():
        from lensr.train.physics_fit import train_physics

        train_physics(cfg, data=run_dir / "data" / f"{spec.dataset}.h5", out_dir=fresh_dir(out))
        return [out / "best.safetensors", out / "last.safetensors"]

    return Stage(
        f"train:{name}",
        {"kind": spec.kind, **cfg.model_dump()},
        fit,
        deps=[f"data:{spec.dataset}"],
        outputs=[out / "best.safetensors"],
    )


def plan_training(study: StudyConfig, run_dir: Path) -> list[Stage]:
    stages = []
    if study.lr_sweep:
        spec = study.lr_sweep
        cfg = train_config(study, {**spec.train, "model": spec.model}, source="lr_sweep")
        out = run_dir / "lr_sweep"

        def sweep(cfg=cfg, spec=spec, out=out):
            from lensr.train.lr_sweep import lr_sweep

            lr_sweep(
                cfg,
                data=run_dir / "data" / f"{spec.dataset}.h5",
                out_dir=fresh_dir(out),
                lrs=tuple(spec.lrs),
                steps=spec.steps,
                points=spec.points,
            )
            return [out / "lr_sweep.json", out / "lr_sweep.png"]

        stages.append(
            Stage(
                "lr_sweep",
                {"train": cfg.model_dump(), **spec.model_dump()},
                sweep,
                deps=[f"data:{spec.dataset}"],
                outputs=[out / "lr_sweep.json"],
            )
        )
    for name, spec in study.models.items():
        if spec.kind == "physics":
            stages.append(_physics_stage(name, spec, study, run_dir))
            continue
        cfg = train_config(study, spec.train, source=f"models.{name}")
        out = run_dir / "models" / name

        def fit(cfg=cfg, spec=spec, out=out):
            from lensr.train.fit import train

            resume = resumable(out, cfg)
            train(
                cfg,
                data=run_dir / "data" / f"{spec.dataset}.h5",
                out_dir=out if resume else fresh_dir(out),
                resume=resume,
            )
            return [out / "best.safetensors", out / "last.safetensors"]

        stages.append(
            Stage(
                f"train:{name}",
                cfg.model_dump(),
                fit,
                deps=[f"data:{spec.dataset}"],
                outputs=[out / "best.safetensors"],
            )
        )
    return stages


def plan_evaluation(study: StudyConfig, run_dir: Path) -> list[Stage]:
    stages = []
    for name, spec in study.evaluate.items():
        out = run_dir / "eval" / name

        def run(spec=spec, out=out):
            from lensr.eval.evaluate import evaluate

            specs = list(spec.baselines) + [
                str(run_dir / "models" / m / "best.safetensors") for m in spec.models
            ]
            names = list(spec.baselines) + list(spec.models)
            evaluate(
                run_dir / "data" / f"{spec.dataset}.h5",
                specs,
                names=names,
                out_dir=fresh_dir(out),
                max_images=spec.max_images,
                seed=study.seed,
                uncertainty=spec.uncertainty,
                consistent=spec.consistent,
            )
            return [out / "metrics.json"]

        deps = [f"data:{spec.dataset}"] + [f"train:{m}" for m in spec.models]
        stages.append(
            Stage(f"eval:{name}", spec.model_dump(), run, deps=deps, outputs=[out / "metrics.json"])
        )
    return stages


def plan_report(study: StudyConfig, run_dir: Path, upstream: list[Stage]) -> list[Stage]:
    if not study.report:
        return []

    def run():
        from lensr.report.html import build_report

        return [build_report(run_dir)]

    # The report depends on everything and is cheap: it always reruns when anything did.
    return [
        Stage("report", {}, run, deps=[s.name for s in upstream], outputs=[run_dir / "report.html"])
    ]


PLANNERS: list[Callable[[StudyConfig, Path], list[Stage]]] = [
    plan_data,
    plan_training,
    plan_evaluation,
    plan_transfer,
    plan_classification,
]
"""Stage planners in dependency order; later issues append theirs (before the report)."""


def plan_study(study: StudyConfig, run_dir: Path) -> list[Stage]:
    """Every stage of ``study``, in the order they run: the planners', then the report."""
    stages = [s for planner in PLANNERS for s in planner(study, run_dir)]
    return stages + plan_report(study, run_dir, stages)
