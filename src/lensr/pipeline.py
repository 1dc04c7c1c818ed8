"""`lensr run CONFIG`: the whole study as cached stages.

A study YAML (see ``configs/demo.yaml``) names datasets to simulate, an optional
learning-rate sweep, models to train, evaluations and the report. Every stage records a
fingerprint of its config and of the stages it reads; a rerun skips a stage whose
fingerprint is unchanged and whose outputs exist, and reruns what changed (and everything
downstream of it). ``--force STAGE`` reruns one stage (and so its dependants).

Run folder: ``study.yaml``, ``stages.json``, ``environment.json``, ``data/``, ``lr_sweep/``,
``models/<name>/``, ``eval/<name>/``, ``transfer/<domain>/{<model>-<variant>,eval}/``,
``classify/{classifier,sr-all,sr-cdm,eval,audit}/``,
``report.html``.

Later stages (transfer learning, classification) plug in by adding a planner to
``PLANNERS``: a function ``(study, run_dir) -> list[Stage]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from rich.console import Console

from lensr import __version__
from lensr.config import Strict, deep_update, load, read_yaml, validate
from lensr.errors import LensrError

console = Console(stderr=True, emoji=False)


# -- the study config ----------------------------------------------------------------------
class DatasetSpec(Strict):
    """A dataset to simulate: a preset, with optional overrides of its keys."""

    preset: str = "sim"
    n: int = Field(..., ge=1)
    seed: int | None = None
    """None derives a seed from the study seed and the dataset name (so train != test)."""
    overrides: dict = Field(default_factory=dict)


class SweepSpec(Strict):
    """Learning-rate sweep on one model (the study's Figure 14)."""

    dataset: str
    model: str
    lrs: list[float] = Field(default_factory=lambda: [1e-4, 3e-4, 1e-3, 3e-3])
    steps: int = Field(200, ge=2)
    points: int = Field(5, ge=1)
    train: dict = Field(default_factory=dict)


class ModelSpec(Strict):
    """A model to train on ``dataset``.

    ``kind: supervised`` (default): ``train`` holds TrainConfig keys, over ``train_defaults``.
    ``kind: physics``: the physics-informed model, trained on LR images only
    (`lensr train-physics`); ``train`` holds PhysicsTrainConfig keys (``train_defaults``
    do not apply: they describe HR-patch training).
    """

    dataset: str
    kind: Literal["supervised", "physics"] = "supervised"
    train: dict = Field(default_factory=dict)


class EvalSpec(Strict):
    """Score trained models and baselines on ``dataset``."""

    dataset: str
    models: list[str] = Field(default_factory=list)
    baselines: list[str] = Field(default_factory=lambda: ["bilinear", "bicubic"])
    max_images: int | None = Field(None, ge=1)
    uncertainty: bool = True
    """Dihedral test-time uncertainty and its calibration (8x the inference cost)."""
    consistent: bool = False
    """Also score every model after projection onto the LR data ("<name>+proj")."""


class ClassifySpec(Strict):
    """The classification study: a ResNet-18 trained on HR, tested on HR, LR and SR images,
    and the hallucination audit (an SR model trained only on ``cdm``)."""

    dataset: str
    """Training set (the `classify` preset: balanced classes, HR 64 / LR 32)."""
    test: str
    classifier: dict = Field(default_factory=dict)
    """ClassifierConfig keys (see `lensr classify train --help`)."""
    sr: dict = Field(default_factory=lambda: {"model": "rcan-tiny"})
    """TrainConfig keys of the SR model (over train_defaults), trained on all classes."""
    hallucination: bool = True
    """Also train the same SR model on cdm lenses only and audit what it does to the rest."""
    consistent: bool = True
    """In the audit, also classify the cdm-only SR images projected onto their LR data."""
    max_images: int | None = Field(None, ge=1)


class DomainSpec(Strict):
    """A target domain: its training pairs (fine-tuning, unpaired LR for ADDA) and test pairs."""

    train: str
    test: str


class TransferSpec(Strict):
    """From simulation to telescope-like data: per domain and model, compare no transfer,
    training on the domain only, fine-tuning and ADDA on the domain's test split."""

    source: str
    """The simulated dataset the models were trained on (ADDA's source LR images)."""
    models: list[str]
    domains: dict[str, DomainSpec]
    finetune: dict = Field(default_factory=dict)
    """FinetuneConfig keys (`lensr finetune --help`)."""
    adda: dict = Field(default_factory=dict)
    """ADDAConfig keys (`lensr adda --help`)."""
    scratch: dict = Field(default_factory=dict)
    """TrainConfig keys over each model's own config, for training on the domain only."""
    baselines: list[str] = Field(default_factory=lambda: ["bilinear", "bicubic"])
    max_images: int | None = Field(None, ge=1)
    uncertainty: bool = False
    """Dihedral test-time uncertainty in the transfer tables (8x the inference cost)."""


class StudyConfig(Strict):
    name: str = "study"
    seed: int = 0
    workers: int = Field(1, ge=1)
    """Processes for simulation."""
    threads: int | None = Field(None, ge=1)
    """torch CPU threads for training and evaluation (None: torch's default)."""
    datasets: dict[str, DatasetSpec] = Field(default_factory=dict)
    lr_sweep: SweepSpec | None = None
    train_defaults: dict = Field(default_factory=dict)
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    evaluate: dict[str, EvalSpec] = Field(default_factory=dict)
    transfer: TransferSpec | None = None
    classify: ClassifySpec | None = None
    report: bool = True

    @model_validator(mode="after")
    def _references(self):
        def need(kind: str, name: str, table: dict, where: str):
            if name not in table:
                known = ", ".join(table) or "none"
                raise ValueError(f"{where} refers to unknown {kind} '{name}' (known: {known})")

        if self.lr_sweep:
            need("dataset", self.lr_sweep.dataset, self.datasets, "lr_sweep")
        for name, spec in self.models.items():
            need("dataset", spec.dataset, self.datasets, f"models.{name}")
        for name, spec in self.evaluate.items():
            need("dataset", spec.dataset, self.datasets, f"evaluate.{name}")
            for model in spec.models:
                need("model", model, self.models, f"evaluate.{name}")
        if self.transfer:
            need("dataset", self.transfer.source, self.datasets, "transfer.source")
            for model in self.transfer.models:
                need("model", model, self.models, "transfer.models")
                if self.models[model].kind != "supervised":
                    raise ValueError(f"transfer.models: '{model}' is not a supervised model")
            for name, d in self.transfer.domains.items():
                need("dataset", d.train, self.datasets, f"transfer.domains.{name}")
                need("dataset", d.test, self.datasets, f"transfer.domains.{name}")
        if self.classify:
            need("dataset", self.classify.dataset, self.datasets, "classify")
            need("dataset", self.classify.test, self.datasets, "classify.test")
        return self


def study_path(name_or_path: str | Path) -> Path:
    """A shipped study name (``demo``, ``paper``) or a YAML path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    shipped = Path(str(resources.files("lensr") / "studies" / f"{name_or_path}.yaml"))
    if not shipped.is_file():
        raise LensrError(f"unknown study '{name_or_path}': give a YAML path or demo / paper")
    return shipped


# -- stages --------------------------------------------------------------------------------
@dataclass
class Stage:
    """One cached unit of work. ``run`` returns the paths it wrote (relative or absolute)."""

    name: str
    config: dict
    run: Callable[[], list[Path]]
    deps: list[str] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _resumable(out: Path, cfg) -> bool:
    """Whether ``out`` holds an interrupted training run of exactly ``cfg``: the stage then
    resumes from its last validation instead of starting over."""
    saved = out / "train_config.json"
    return (
        (out / "lightning" / "last.ckpt").is_file()
        and saved.is_file()
        and json.loads(saved.read_text()) == json.loads(cfg.model_dump_json())
    )


def _dataset_seed(study: StudyConfig, name: str, spec: DatasetSpec) -> int:
    return (
        spec.seed if spec.seed is not None else study.seed * 1000 + zlib.crc32(name.encode()) % 997
    )


def plan_data(study: StudyConfig, run_dir: Path) -> list[Stage]:
    from lensr.sim.config import SimConfig, preset_path

    stages = []
    for name, spec in study.datasets.items():
        source = preset_path(spec.preset)
        sim = validate(
            SimConfig,
            deep_update(read_yaml(source), spec.overrides),
            source=f"datasets.{name} ({source})",
        )
        seed = _dataset_seed(study, name, spec)
        out = run_dir / "data" / f"{name}.h5"

        def run(sim=sim, seed=seed, out=out, n=spec.n):
            from lensr.data.inspect import preview_grid, summarize
            from lensr.data.store import open_dataset
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


def one_process(cfg, *, source: str):
    """``cfg`` if it runs in this process. DDP starts its other ranks by re-running the
    command, which for ``lensr run`` would mean the whole study again in every rank."""
    devices = cfg.devices
    single = devices in (1, "1") or (isinstance(devices, list | tuple) and len(devices) == 1)
    if not single or "ddp" in str(cfg.strategy):
        raise LensrError(
            f"{source}: lensr run trains each stage on one device (got devices={devices!r}, "
            f"strategy={cfg.strategy!r}); for several GPUs run that stage on its own, e.g. "
            "lensr train --devices 4 --strategy ddp"
        )
    return cfg


def train_config(study: StudyConfig, overrides: dict, *, source: str):
    from lensr.train.config import TrainConfig

    merged = deep_update({"seed": study.seed, "threads": study.threads}, study.train_defaults)
    cfg = validate(TrainConfig, deep_update(merged, overrides), source=source)
    return one_process(cfg, source=source)


def physics_config(study: StudyConfig, overrides: dict, *, source: str):
    from lensr.train.physics_module import PhysicsTrainConfig

    cfg = validate(
        PhysicsTrainConfig,
        deep_update({"seed": study.seed, "threads": study.threads}, overrides),
        source=source,
    )
    return one_process(cfg, source=source)


def _physics_stage(name: str, spec: ModelSpec, study: StudyConfig, run_dir: Path) -> Stage:
    cfg = physics_config(study, spec.train, source=f"models.{name}")
    out = run_dir / "models" / name

    def fit():
        from lensr.train.physics_fit import train_physics

        train_physics(cfg, data=run_dir / "data" / f"{spec.dataset}.h5", out_dir=_fresh_dir(out))
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
                out_dir=_fresh_dir(out),
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

            resume = _resumable(out, cfg)
            train(
                cfg,
                data=run_dir / "data" / f"{spec.dataset}.h5",
                out_dir=out if resume else _fresh_dir(out),
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
                out_dir=_fresh_dir(out),
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


TRANSFER_VARIANTS = {
    "sim": "{m} (sim only)",
    "scratch": "{m} ({d} only)",
    "finetune": "{m} fine-tuned",
    "adda": "{m} ADDA",
}
"""Display names of the transfer variants in the tables."""


def plan_transfer(study: StudyConfig, run_dir: Path) -> list[Stage]:
    from lensr.train.adda import ADDAConfig
    from lensr.train.finetune import FinetuneConfig

    spec = study.transfer
    if spec is None:
        return []
    base = {"seed": study.seed, "threads": study.threads}
    ft_cfg = validate(FinetuneConfig, {**base, **spec.finetune}, source="transfer.finetune")
    adda_cfg = validate(ADDAConfig, {**base, **spec.adda}, source="transfer.adda")
    one_process(ft_cfg, source="transfer.finetune")
    one_process(adda_cfg, source="transfer.adda")
    stages = []
    for domain, d in spec.domains.items():
        root = run_dir / "transfer" / domain
        target = run_dir / "data" / f"{d.train}.h5"
        evaluated = [f"data:{d.test}"]
        for m in spec.models:
            source_ckpt = run_dir / "models" / m / "best.safetensors"
            scratch_cfg = train_config(
                study,
                deep_update(study.models[m].train, spec.scratch),
                source=f"transfer.scratch ({m})",
            )

            def finetune(out=root / f"{m}-finetune", ckpt=source_ckpt, target=target):
                from lensr.train.finetune import finetune as run

                return [run(ckpt, data=target, out_dir=_fresh_dir(out), cfg=ft_cfg)]

            def adda(out=root / f"{m}-adda", ckpt=source_ckpt, target=target):
                from lensr.train.adda import adda as run

                return [
                    run(
                        ckpt,
                        source_data=run_dir / "data" / f"{spec.source}.h5",
                        target_data=target,
                        out_dir=_fresh_dir(out),
                        cfg=adda_cfg,
                    )
                ]

            def scratch(out=root / f"{m}-scratch", cfg=scratch_cfg, target=target):
                from lensr.train.fit import train

                train(cfg, data=target, out_dir=_fresh_dir(out))
                return [out / "best.safetensors"]

            trained = f"train:{m}"
            for variant, job, cfg, deps in (
                ("finetune", finetune, ft_cfg, [trained, f"data:{d.train}"]),
                ("adda", adda, adda_cfg, [trained, f"data:{d.train}", f"data:{spec.source}"]),
                ("scratch", scratch, scratch_cfg, [f"data:{d.train}"]),
            ):
                name = f"transfer:{domain}:{m}:{variant}"
                stages.append(
                    Stage(
                        name,
                        cfg.model_dump(),
                        job,
                        deps=deps,
                        outputs=[root / f"{m}-{variant}" / "best.safetensors"],
                    )
                )
                evaluated.append(name)
            evaluated.append(trained)

        def evaluate(domain=domain, d=d, root=root):
            from lensr.eval.evaluate import evaluate as run

            specs, names = list(spec.baselines), list(spec.baselines)
            for m in spec.models:
                for variant, label in TRANSFER_VARIANTS.items():
                    folder = run_dir / "models" / m if variant == "sim" else root / f"{m}-{variant}"
                    specs.append(str(folder / "best.safetensors"))
                    names.append(label.format(m=m, d=domain))
            run(
                run_dir / "data" / f"{d.test}.h5",
                specs,
                names=names,
                out_dir=_fresh_dir(root / "eval"),
                max_images=spec.max_images,
                seed=study.seed,
                uncertainty=spec.uncertainty,
            )
            return [root / "eval" / "metrics.json"]

        stages.append(
            Stage(
                f"transfer:{domain}:eval",
                {
                    "baselines": spec.baselines,
                    "max_images": spec.max_images,
                    "uncertainty": spec.uncertainty,
                },
                evaluate,
                deps=evaluated,
                outputs=[root / "eval" / "metrics.json"],
            )
        )
    return stages


def plan_classification(study: StudyConfig, run_dir: Path) -> list[Stage]:
    from lensr.train.classifier import ClassifierConfig

    spec = study.classify
    if spec is None:
        return []
    root = run_dir / "classify"
    data = run_dir / "data" / f"{spec.dataset}.h5"
    test = run_dir / "data" / f"{spec.test}.h5"
    clf_cfg = one_process(
        validate(
            ClassifierConfig,
            {"seed": study.seed, "threads": study.threads, **spec.classifier},
            source="classify.classifier",
        ),
        source="classify.classifier",
    )
    sr_runs = {"sr-all": None, **({"sr-cdm": ["cdm"]} if spec.hallucination else {})}
    sr_cfgs = {
        name: train_config(study, {**spec.sr, "classes": classes}, source="classify.sr")
        for name, classes in sr_runs.items()
    }

    def train_clf():
        from lensr.train.classifier import train_classifier

        out, resume = root / "classifier", _resumable(root / "classifier", clf_cfg)
        train_classifier(
            clf_cfg, data=data, out_dir=out if resume else _fresh_dir(out), resume=resume
        )
        return [root / "classifier" / "best.safetensors"]

    def train_sr(name):
        from lensr.train.fit import train

        train(sr_cfgs[name], data=data, out_dir=_fresh_dir(root / name))
        return [root / name / "best.safetensors"]

    def evaluate():
        from lensr.eval.classification import evaluate_classifier

        evaluate_classifier(
            root / "classifier" / "best.safetensors",
            test,
            sr_models={"all classes": str(root / "sr-all" / "best.safetensors")},
            out_dir=_fresh_dir(root / "eval"),
            max_images=spec.max_images,
        )
        return [root / "eval" / "classification.json"]

    def audit():
        from lensr.eval.classification import hallucination_audit

        hallucination_audit(
            test,
            sr_all=str(root / "sr-all" / "best.safetensors"),
            sr_cdm_only=str(root / "sr-cdm" / "best.safetensors"),
            classifier=root / "classifier" / "best.safetensors",
            out_dir=_fresh_dir(root / "audit"),
            max_images=spec.max_images,
            consistent=spec.consistent,
        )
        return [root / "audit" / "hallucination.json"]

    data_dep = f"data:{spec.dataset}"
    stages = [
        Stage(
            "classify:classifier",
            clf_cfg.model_dump(),
            train_clf,
            deps=[data_dep],
            outputs=[root / "classifier" / "best.safetensors"],
        )
    ]
    stages += [
        Stage(
            f"classify:{name}",
            cfg.model_dump(),
            lambda name=name: train_sr(name),
            deps=[data_dep],
            outputs=[root / name / "best.safetensors"],
        )
        for name, cfg in sr_cfgs.items()
    ]
    evaluated = ["classify:classifier", "classify:sr-all", f"data:{spec.test}"]
    stages.append(
        Stage(
            "classify:eval",
            {"max_images": spec.max_images},
            evaluate,
            deps=evaluated,
            outputs=[root / "eval" / "classification.json"],
        )
    )
    if spec.hallucination:
        stages.append(
            Stage(
                "classify:audit",
                {"max_images": spec.max_images, "consistent": spec.consistent},
                audit,
                deps=[*evaluated, "classify:sr-cdm"],
                outputs=[root / "audit" / "hallucination.json"],
            )
        )
    return stages


PLANNERS: list[Callable[[StudyConfig, Path], list[Stage]]] = [
    plan_data,
    plan_training,
    plan_evaluation,
    plan_transfer,
    plan_classification,
]
"""Stage planners in dependency order; later issues append theirs (before the report)."""


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


# -- running -------------------------------------------------------------------------------
def environment(study: StudyConfig) -> dict:
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


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


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
    stages = [s for planner in PLANNERS for s in planner(study, run_dir)]
    stages += plan_report(study, run_dir, stages)
    names = {s.name for s in stages}
    for f in force or []:
        if f not in names:
            raise LensrError(f"--force {f}: no such stage (stages: {', '.join(sorted(names))})")

    shutil.copyfile(source, run_dir / "study.yaml")
    _write_json(run_dir / "environment.json", environment(study))
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
        _write_json(state_path, state)
    _write_json(state_path, state)
    return run_dir
