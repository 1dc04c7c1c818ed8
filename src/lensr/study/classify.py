"""The classification planner: per rung of the ladder (``classify.ladder``), the classifier
trained on HR, the SR model trained on all classes, the fair baselines (classifiers trained
on bicubic-upsampled LR and on SR outputs) and the rung's scores; on one rung the SR model
trained on cdm only and the hallucination audit; then the ladder table, figure and verdict.

Run folder: ``classify/<rung>/{classifier,sr-all,lr-classifier,sr-classifier,data,eval}/``,
``classify/{sr-cdm,audit,ladder}/``.
"""

from __future__ import annotations

from pathlib import Path

from lensr.config import deep_update, validate
from lensr.study.engine import Stage, fresh_dir, resumable
from lensr.study.schema import StudyConfig, one_process, train_config

BEST = "best.safetensors"


def _train_clf(cfg, data: Path, out: Path) -> list[Path]:
    from lensr.train.classifier import train_classifier

    resume = resumable(out, cfg)
    train_classifier(cfg, data=data, out_dir=out if resume else fresh_dir(out), resume=resume)
    return [out / BEST]


def _upscaled_clf(cfg, data: Path, root: Path, kind: str, model: str) -> list[Path]:
    """Train ``cfg`` on ``data`` with its HR images replaced by ``model``'s upscaling of
    its LR images (``kind``: "lr" bicubic, "sr" the rung's SR model)."""
    from lensr.eval.ladder import upscaled_copy

    copy = fresh_dir(root / "data" / kind) / "train.h5"
    images = "LR (bicubic)" if kind == "lr" else f"SR ({model})"
    upscaled_copy(data, copy, model, images=images)
    return _train_clf(cfg, copy, root / f"{kind}-classifier")


def _rung_stages(study, name, rung, clf_cfg, sr_cfg, run_dir) -> list[Stage]:
    """The stages of one rung: those of the parts it owns (:meth:`ClassifySpec.owner`;
    the others are an earlier rung's, trained on the same set with the same settings)
    and its scores."""
    spec = study.classify
    root = run_dir / "classify"
    data = run_dir / "data" / f"{rung.dataset}.h5"
    test = run_dir / "data" / f"{rung.test}.h5"
    baselines = spec.has_baselines(name)
    parts = ["classifier", "sr-all"] + (["lr-classifier", "sr-classifier"] if baselines else [])
    owner = {part: spec.owner(name, part) for part in parts}
    path = {part: root / owner[part] / part / BEST for part in parts}
    stage = {part: f"classify:{owner[part]}:{part}" for part in parts}
    own = root / name

    def train_sr():
        from lensr.train.fit import train

        train(sr_cfg, data=data, out_dir=fresh_dir(own / "sr-all"))
        return [own / "sr-all" / BEST]

    def evaluate():
        from lensr.eval.classification import evaluate_classifier
        from lensr.eval.ladder import score_rung

        out = fresh_dir(own / "eval")
        evaluate_classifier(
            path["classifier"],
            test,
            sr_models={"all classes": str(path["sr-all"])},
            out_dir=out,
            max_images=spec.max_images,
        )
        score_rung(
            test,
            classifier=path["classifier"],
            sr=str(path["sr-all"]),
            lr_classifier=path.get("lr-classifier"),
            sr_classifier=path.get("sr-classifier"),
            out_dir=out,
            max_images=spec.max_images,
            n_boot=spec.n_boot,
            seed=study.seed,
        )
        return [out / "classification.json", out / "rung.json"]

    data_dep, clf_conf = f"data:{rung.dataset}", clf_cfg.model_dump()
    made = {
        "classifier": (clf_conf, lambda: _train_clf(clf_cfg, data, own / "classifier"), []),
        "sr-all": (sr_cfg.model_dump(), train_sr, []),
        "lr-classifier": (
            {"images": "bicubic", **clf_conf},
            lambda: _upscaled_clf(clf_cfg, data, own, "lr", "bicubic"),
            [],
        ),
        "sr-classifier": (
            {"images": "sr-all", **clf_conf},
            lambda: _upscaled_clf(clf_cfg, data, own, "sr", str(path["sr-all"])),
            [stage["sr-all"]],
        ),
    }
    stages = []
    for part in (p for p in parts if owner[p] == name):
        conf, run, deps = made[part]
        stages.append(Stage(stage[part], conf, run, deps=[data_dep, *deps], outputs=[path[part]]))
    stages.append(
        Stage(
            f"classify:{name}:eval",
            {"max_images": spec.max_images, "n_boot": spec.n_boot, "baselines": baselines},
            evaluate,
            deps=[*stage.values(), f"data:{rung.test}"],
            outputs=[own / "eval" / "rung.json"],
        )
    )
    return stages


def _audit_stages(study, sr_cfg, run_dir) -> list[Stage]:
    """The SR model trained on cdm only (the audit rung's SR settings) and the audit of
    what it does against the rung's all-class SR model, under the rung's classifier."""
    spec = study.classify
    name = spec.audit_rung()
    rung, root = spec.ladder[name], run_dir / "classify"
    sr_owner, clf_owner = spec.owner(name, "sr-all"), spec.owner(name, "classifier")
    data = run_dir / "data" / f"{rung.dataset}.h5"
    test = run_dir / "data" / f"{rung.test}.h5"
    cdm_cfg = sr_cfg.model_copy(update={"classes": ["cdm"]})

    def train_cdm():
        from lensr.train.fit import train

        train(cdm_cfg, data=data, out_dir=fresh_dir(root / "sr-cdm"))
        return [root / "sr-cdm" / BEST]

    def audit():
        from lensr.eval.audit import hallucination_audit

        hallucination_audit(
            test,
            sr_all=str(root / sr_owner / "sr-all" / BEST),
            sr_cdm_only=str(root / "sr-cdm" / BEST),
            classifier=root / clf_owner / "classifier" / BEST,
            out_dir=fresh_dir(root / "audit"),
            max_images=spec.max_images,
            consistent=spec.consistent,
        )
        return [root / "audit" / "hallucination.json"]

    return [
        Stage(
            "classify:sr-cdm",
            cdm_cfg.model_dump(),
            train_cdm,
            deps=[f"data:{rung.dataset}"],
            outputs=[root / "sr-cdm" / BEST],
        ),
        Stage(
            "classify:audit",
            {"rung": name, "max_images": spec.max_images, "consistent": spec.consistent},
            audit,
            deps=[
                f"classify:{clf_owner}:classifier",
                f"classify:{sr_owner}:sr-all",
                "classify:sr-cdm",
                f"data:{rung.test}",
            ],
            outputs=[root / "audit" / "hallucination.json"],
        ),
    ]


def _override(base: dict, over: dict) -> dict:
    """A rung's settings of a part: ``over`` on the study's ``base``; another ``model``
    does not inherit ``base``'s ``model_kwargs`` (they belong to the other architecture)."""
    base = dict(base)
    if over.get("model", base.get("model")) != base.get("model"):
        base.pop("model_kwargs", None)
    return deep_update(base, over)


def _configs(study: StudyConfig, name: str):
    """The classifier and SR configs of rung ``name``."""
    from lensr.train.config import ClassifierConfig

    spec, rung = study.classify, study.classify.ladder[name]
    where = f"classify.ladder.{name}.classifier" if rung.classifier else "classify.classifier"
    base = {"seed": study.seed, "threads": study.threads, **spec.classifier}
    clf = validate(ClassifierConfig, _override(base, rung.classifier), source=where)
    source = f"classify.ladder.{name}.sr" if rung.sr else "classify.sr"
    sr = train_config(study, {**_override(spec.sr, rung.sr), "classes": None}, source=source)
    return one_process(clf, source=where), sr


def plan_classification(study: StudyConfig, run_dir: Path) -> list[Stage]:
    spec = study.classify
    if spec is None:
        return []
    stages, configs = [], {name: _configs(study, name) for name in spec.ladder}
    for name, rung in spec.ladder.items():
        stages += _rung_stages(study, name, rung, *configs[name], run_dir)
    if spec.hallucination:
        stages += _audit_stages(study, configs[spec.audit_rung()][1], run_dir)
    roles = {role: spec.role(role) for role in ("faithful", "realistic", "ring-size")}
    labels = {name: rung.label or name for name, rung in spec.ladder.items()}
    root = run_dir / "classify"
    files = {name: root / name / "eval" / "rung.json" for name in spec.ladder}

    def ladder():
        from lensr.eval.ladder import write_ladder

        out = fresh_dir(root / "ladder")
        write_ladder(files, out_dir=out, labels=labels, roles=roles)
        return [out / "ladder.json", out / "ladder.md", out / "ladder.png"]

    stages.append(
        Stage(
            "classify:ladder",
            {"labels": labels, "roles": roles},
            ladder,
            deps=[f"classify:{name}:eval" for name in spec.ladder],
            outputs=[root / "ladder" / "ladder.json"],
        )
    )
    return stages
