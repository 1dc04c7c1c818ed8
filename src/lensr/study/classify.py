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


def _rung_stages(study, name, rung, clf_cfg, sr_cfg, run_dir, sr_owner) -> list[Stage]:
    """The stages of one rung; ``sr_owner`` is the rung whose SR model it uses (itself,
    or an earlier rung trained on the same dataset)."""
    spec = study.classify
    root = run_dir / "classify" / name
    data = run_dir / "data" / f"{rung.dataset}.h5"
    test = run_dir / "data" / f"{rung.test}.h5"
    baselines = spec.baselines if rung.baselines is None else rung.baselines
    sr_path = str(run_dir / "classify" / sr_owner / "sr-all" / BEST)
    sr_stage = f"classify:{sr_owner}:sr-all"

    def train_sr():
        from lensr.train.fit import train

        train(sr_cfg, data=data, out_dir=fresh_dir(root / "sr-all"))
        return [root / "sr-all" / BEST]

    def evaluate():
        from lensr.eval.classification import evaluate_classifier
        from lensr.eval.ladder import score_rung

        out = fresh_dir(root / "eval")
        evaluate_classifier(
            root / "classifier" / BEST,
            test,
            sr_models={"all classes": sr_path},
            out_dir=out,
            max_images=spec.max_images,
        )
        score_rung(
            test,
            classifier=root / "classifier" / BEST,
            sr=sr_path,
            lr_classifier=root / "lr-classifier" / BEST if baselines else None,
            sr_classifier=root / "sr-classifier" / BEST if baselines else None,
            out_dir=out,
            max_images=spec.max_images,
            n_boot=spec.n_boot,
            seed=study.seed,
        )
        return [out / "classification.json", out / "rung.json"]

    p, data_dep = f"classify:{name}", f"data:{rung.dataset}"
    clf_conf = clf_cfg.model_dump()
    stages = [
        Stage(
            f"{p}:classifier",
            clf_conf,
            lambda: _train_clf(clf_cfg, data, root / "classifier"),
            deps=[data_dep],
            outputs=[root / "classifier" / BEST],
        )
    ]
    if sr_owner == name:
        stages.append(
            Stage(
                sr_stage,
                sr_cfg.model_dump(),
                train_sr,
                deps=[data_dep],
                outputs=[root / "sr-all" / BEST],
            )
        )
    scored = [f"{p}:classifier", sr_stage, f"data:{rung.test}"]
    if baselines:
        stages += [
            Stage(
                f"{p}:lr-classifier",
                {"images": "bicubic", **clf_conf},
                lambda: _upscaled_clf(clf_cfg, data, root, "lr", "bicubic"),
                deps=[data_dep],
                outputs=[root / "lr-classifier" / BEST],
            ),
            Stage(
                f"{p}:sr-classifier",
                {"images": "sr-all", **clf_conf},
                lambda: _upscaled_clf(clf_cfg, data, root, "sr", sr_path),
                deps=[data_dep, sr_stage],
                outputs=[root / "sr-classifier" / BEST],
            ),
        ]
        scored += [f"{p}:lr-classifier", f"{p}:sr-classifier"]
    stages.append(
        Stage(
            f"{p}:eval",
            {"max_images": spec.max_images, "n_boot": spec.n_boot, "baselines": baselines},
            evaluate,
            deps=scored,
            outputs=[root / "eval" / "rung.json"],
        )
    )
    return stages


def _audit_stages(study, sr_cfg, run_dir) -> list[Stage]:
    spec = study.classify
    name = spec.audit_rung()
    rung, root = spec.ladder[name], run_dir / "classify"
    owner = spec.sr_rung(name)
    data = run_dir / "data" / f"{rung.dataset}.h5"
    test = run_dir / "data" / f"{rung.test}.h5"
    cdm_cfg = train_config(study, {**spec.sr, "classes": ["cdm"]}, source="classify.sr")

    def train_cdm():
        from lensr.train.fit import train

        train(cdm_cfg, data=data, out_dir=fresh_dir(root / "sr-cdm"))
        return [root / "sr-cdm" / BEST]

    def audit():
        from lensr.eval.audit import hallucination_audit

        hallucination_audit(
            test,
            sr_all=str(root / owner / "sr-all" / BEST),
            sr_cdm_only=str(root / "sr-cdm" / BEST),
            classifier=root / name / "classifier" / BEST,
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
                f"classify:{name}:classifier",
                f"classify:{owner}:sr-all",
                "classify:sr-cdm",
                f"data:{rung.test}",
            ],
            outputs=[root / "audit" / "hallucination.json"],
        ),
    ]


def plan_classification(study: StudyConfig, run_dir: Path) -> list[Stage]:
    from lensr.train.config import ClassifierConfig

    spec = study.classify
    if spec is None:
        return []
    sr_cfg = train_config(study, {**spec.sr, "classes": None}, source="classify.sr")
    stages = []
    for name, rung in spec.ladder.items():
        source = f"classify.ladder.{name}.classifier" if rung.classifier else "classify.classifier"
        base = {"seed": study.seed, "threads": study.threads, **spec.classifier}
        if rung.classifier.get("model", base.get("model")) != base.get("model"):
            base.pop("model_kwargs", None)  # they belong to the other architecture
        clf_cfg = one_process(
            validate(ClassifierConfig, deep_update(base, rung.classifier), source=source),
            source=source,
        )
        stages += _rung_stages(study, name, rung, clf_cfg, sr_cfg, run_dir, spec.sr_rung(name))
    if spec.hallucination:
        stages += _audit_stages(study, sr_cfg, run_dir)
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
