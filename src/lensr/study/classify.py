"""The classification planner: the classifier trained on HR, the SR models it is tested
through (all classes, and cdm only for the hallucination audit), the evaluation and the audit.
"""

from __future__ import annotations

from pathlib import Path

from lensr.config import validate
from lensr.study.engine import Stage, fresh_dir, resumable
from lensr.study.schema import StudyConfig, one_process, train_config


def plan_classification(study: StudyConfig, run_dir: Path) -> list[Stage]:
    from lensr.train.config import ClassifierConfig

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

        out, resume = root / "classifier", resumable(root / "classifier", clf_cfg)
        train_classifier(
            clf_cfg, data=data, out_dir=out if resume else fresh_dir(out), resume=resume
        )
        return [root / "classifier" / "best.safetensors"]

    def train_sr(name):
        from lensr.train.fit import train

        train(sr_cfgs[name], data=data, out_dir=fresh_dir(root / name))
        return [root / name / "best.safetensors"]

    def evaluate():
        from lensr.eval.classification import evaluate_classifier

        evaluate_classifier(
            root / "classifier" / "best.safetensors",
            test,
            sr_models={"all classes": str(root / "sr-all" / "best.safetensors")},
            out_dir=fresh_dir(root / "eval"),
            max_images=spec.max_images,
        )
        return [root / "eval" / "classification.json"]

    def audit():
        from lensr.eval.audit import hallucination_audit

        hallucination_audit(
            test,
            sr_all=str(root / "sr-all" / "best.safetensors"),
            sr_cdm_only=str(root / "sr-cdm" / "best.safetensors"),
            classifier=root / "classifier" / "best.safetensors",
            out_dir=fresh_dir(root / "audit"),
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
