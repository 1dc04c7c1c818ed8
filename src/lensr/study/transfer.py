"""The transfer planner: per target domain and model, the stages that train on the domain
only, fine-tune and adapt with ADDA, and the evaluation that compares them with the
simulation-only model on the domain's test split.
"""

from __future__ import annotations

from pathlib import Path

from lensr.config import deep_update, validate
from lensr.study.engine import Stage, fresh_dir
from lensr.study.schema import StudyConfig, one_process, train_config

TRANSFER_VARIANTS = {
    "sim": "{m} (sim only)",
    "scratch": "{m} ({d} only)",
    "finetune": "{m} fine-tuned",
    "adda": "{m} ADDA",
}
"""Display names of the transfer variants in the tables."""


def plan_transfer(study: StudyConfig, run_dir: Path) -> list[Stage]:
    from lensr.train.config import ADDAConfig, FinetuneConfig

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

                return [run(ckpt, data=target, out_dir=fresh_dir(out), cfg=ft_cfg)]

            def adda(out=root / f"{m}-adda", ckpt=source_ckpt, target=target):
                from lensr.train.adda import adda as run

                return [
                    run(
                        ckpt,
                        source_data=run_dir / "data" / f"{spec.source}.h5",
                        target_data=target,
                        out_dir=fresh_dir(out),
                        cfg=adda_cfg,
                    )
                ]

            def scratch(out=root / f"{m}-scratch", cfg=scratch_cfg, target=target):
                from lensr.train.fit import train

                train(cfg, data=target, out_dir=fresh_dir(out))
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
                out_dir=fresh_dir(root / "eval"),
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
