"""The study config: the models of a study YAML (datasets, sweep, models, evaluations,
transfer, classification), the shipped studies by name, and the training configs a study's
stages run with (its seed, threads and defaults under each stage's own keys).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from lensr.config import Strict, deep_update, shipped_yaml, validate
from lensr.errors import LensrError


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
    path = shipped_yaml(name_or_path, "studies")
    if path is None:
        raise LensrError(f"unknown study '{name_or_path}': give a YAML path or demo / paper")
    return path


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
    """The TrainConfig of a stage: study seed and threads, ``train_defaults``, ``overrides``."""
    from lensr.train.config import TrainConfig

    merged = deep_update({"seed": study.seed, "threads": study.threads}, study.train_defaults)
    cfg = validate(TrainConfig, deep_update(merged, overrides), source=source)
    return one_process(cfg, source=source)


def physics_config(study: StudyConfig, overrides: dict, *, source: str):
    """The PhysicsTrainConfig of a stage: study seed and threads, then ``overrides``."""
    from lensr.train.physics_module import PhysicsTrainConfig

    cfg = validate(
        PhysicsTrainConfig,
        deep_update({"seed": study.seed, "threads": study.threads}, overrides),
        source=source,
    )
    return one_process(cfg, source=source)
