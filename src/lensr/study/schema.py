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


class RungSpec(Strict):
    """One rung of the classification ladder: a preset with overrides (its train and test
    sets are simulated as datasets ``cls-<rung>-train`` / ``cls-<rung>-test`` of
    ``n_train`` / ``n_test`` images), or two datasets of the study (``dataset``, ``test``)."""

    label: str = ""
    """What the rung frees, as the table shows it (default: the rung's name)."""
    preset: str | None = None
    overrides: dict = Field(default_factory=dict)
    dataset: str | None = None
    test: str | None = None
    role: Literal["faithful", "realistic", "ring-size"] | None = None
    """The rungs the report's verdict compares: DeepLense-faithful (default: the first),
    realistic (default: the last without a role, not on the faithful rung's images) and
    ring-size (the mass-compensated twin of the faithful rung: what remains of its accuracy
    without the ring-size cue)."""
    baselines: bool | None = None
    """Train the fair baselines on this rung (None: ``classify.baselines``)."""
    classifier: dict = Field(default_factory=dict)
    """ClassifierConfig keys over ``classify.classifier`` for this rung, e.g. ``{model:
    equivariant-cnn}``. A rung naming another rung's datasets (``cls-<rung>-train``/``-test``)
    with another classifier compares classifiers on the same images and shares that
    rung's SR model (one per training set and SR settings). Another ``model`` does not inherit
    ``classify.classifier``'s ``model_kwargs``."""
    sr: dict = Field(default_factory=dict)
    """TrainConfig keys over ``classify.sr`` for this rung's SR model, e.g. ``{model:
    fsrcnn-equivariant}``: on another rung's datasets it compares SR models under the same
    classifier (shared with that rung, as every part is shared between rungs with the same
    training set and settings)."""

    @model_validator(mode="after")
    def _one_source(self):
        if self.preset is None and (self.dataset is None or self.test is None):
            raise ValueError("a rung needs either a preset or both dataset and test")
        if self.preset is None and self.overrides:
            raise ValueError("overrides apply to a preset; this rung names datasets")
        return self


class ClassifySpec(Strict):
    """The classification study, on a ladder of rungs from DeepLense-faithful to realistic:
    per rung a classifier (ResNet-18 by default) trained on HR and tested on HR, LR and SR
    images, the fair baselines (classifiers trained on LR and on SR images), and on one rung
    the hallucination audit (the SR model trained only on ``cdm``). ``dataset`` and ``test``
    alone make a one-rung ladder named ``main``."""

    dataset: str | None = None
    test: str | None = None
    ladder: dict[str, RungSpec] = Field(default_factory=dict)
    n_train: int = Field(1500, ge=6)
    """Training images of each preset rung (the classifier holds out ``val_fraction``)."""
    n_test: int = Field(300, ge=3)
    classifier: dict = Field(default_factory=dict)
    """ClassifierConfig keys (see `lensr classify train --help`)."""
    sr: dict = Field(default_factory=lambda: {"model": "rcan-tiny"})
    """TrainConfig keys of the SR model (over train_defaults), trained on all classes."""
    baselines: bool = True
    """Also train the classifier on LR images (bicubic-upsampled to the HR size, so the
    network and its stem see the same geometry) and on SR outputs, scored on their own kind."""
    hallucination: bool = True
    """Also train the same SR model on cdm lenses only and audit what it does to the rest."""
    hallucination_rung: str | None = None
    """The rung of the audit (default: the faithful one)."""
    consistent: bool = True
    """In the audit, also classify the cdm-only SR images projected onto their LR data."""
    max_images: int | None = Field(None, ge=1)
    n_boot: int = Field(2000, ge=100)
    """Bootstrap resamples of the 95 % intervals."""

    @model_validator(mode="after")
    def _rungs(self):
        if not self.ladder:
            raise ValueError("give a ladder of rungs, or dataset and test")
        for role in ("faithful", "realistic", "ring-size"):
            if sum(r.role == role for r in self.ladder.values()) > 1:
                raise ValueError(f"more than one rung has role '{role}'")
        if self.hallucination_rung and self.hallucination_rung not in self.ladder:
            raise ValueError(f"hallucination_rung '{self.hallucination_rung}' is not a rung")
        return self

    def role(self, role: str) -> str | None:
        """The rung of ``role``: faithful (default the first rung), realistic (default the
        last rung without a role and on other images), ring-size (None unless given)."""
        named = [name for name, r in self.ladder.items() if r.role == role]
        if named:
            return named[0]
        if role == "faithful":
            return next(iter(self.ladder))
        if role == "realistic":  # not a rung on the faithful rung's images (another part)
            faithful = self.ladder[self.role("faithful")]
            free = [
                n
                for n, r in self.ladder.items()
                if r.role is None and r.dataset != faithful.dataset and r.test != faithful.test
            ]
            return free[-1] if free else None
        return None

    def has_baselines(self, name: str) -> bool:
        rung = self.ladder[name]
        return self.baselines if rung.baselines is None else rung.baselines

    def owner(self, name: str, part: str) -> str:
        """The rung whose ``part`` rung ``name`` uses: the first rung with the same training
        set and the same settings of that part (one model per training set and settings).
        ``part``: "classifier", "sr-all", or the baselines "lr-classifier" and
        "sr-classifier" (among rungs that train baselines)."""
        fields = {
            "classifier": ("classifier",),
            "lr-classifier": ("classifier",),
            "sr-all": ("sr",),
            "sr-classifier": ("classifier", "sr"),
        }[part]
        baseline = part in ("lr-classifier", "sr-classifier")

        def key(n: str) -> tuple:
            rung = self.ladder[n]
            return (rung.dataset, *(getattr(rung, f) for f in fields))

        return next(
            n
            for n in self.ladder
            if key(n) == key(name) and (n == name or not baseline or self.has_baselines(n))
        )

    def audit_rung(self) -> str:
        return self.hallucination_rung or self.role("faithful")


def rung_datasets(rung: str) -> tuple[str, str]:
    """The dataset names of a preset rung's training and test sets."""
    return f"cls-{rung}-train", f"cls-{rung}-test"


def _expand_classify(data):
    """Study YAML (as parsed) with the ladder's preset rungs as datasets, and the one-rung
    form (``classify: {dataset, test}``) as a ladder; anything unexpected is left for the
    validation to report."""
    if not isinstance(data, dict) or not isinstance(data.get("classify"), dict):
        return data
    data, cls = dict(data), dict(data["classify"])
    ladder = cls.get("ladder")
    if not ladder and cls.get("dataset") and cls.get("test"):
        cls["ladder"] = {"main": {"dataset": cls["dataset"], "test": cls["test"]}}
    elif isinstance(ladder, dict) and isinstance(data.get("datasets", {}), dict):
        datasets, rungs = dict(data.get("datasets") or {}), {}
        for name, rung in ladder.items():
            if isinstance(rung, dict) and rung.get("preset") is not None:
                rung = dict(rung)
                for key, n in zip(("dataset", "test"), rung_datasets(name), strict=True):
                    if n in datasets:
                        raise ValueError(f"classify.ladder.{name}: dataset '{n}' exists already")
                    size = "n_train" if key == "dataset" else "n_test"
                    datasets[n] = {
                        "preset": rung["preset"],
                        "n": cls.get(size, ClassifySpec.model_fields[size].default),
                        "overrides": rung.get("overrides", {}),
                    }
                    rung.setdefault(key, n)
            rungs[name] = rung
        data["datasets"], cls["ladder"] = datasets, rungs
    data["classify"] = cls
    return data


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

    @model_validator(mode="before")
    @classmethod
    def _ladder_datasets(cls, data):
        return _expand_classify(data)

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
            for name, rung in self.classify.ladder.items():
                need("dataset", rung.dataset, self.datasets, f"classify.ladder.{name}")
                need("dataset", rung.test, self.datasets, f"classify.ladder.{name}.test")
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
