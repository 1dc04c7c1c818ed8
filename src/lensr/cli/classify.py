"""The ``lensr classify`` commands (train, eval, audit): thin layers over
:func:`lensr.train.classifier.train_classifier`,
:func:`lensr.eval.classification.evaluate_classifier` and
:func:`lensr.eval.audit.hallucination_audit`, on their own sub-app ``app``.

Example (shell)::

    lensr classify train --data classify.h5 --out runs/clf --epochs 20
    lensr classify eval --data test.h5 --classifier runs/clf/best.safetensors \\
        --sr rcan=runs/rcan/best.safetensors --out cls/
    lensr classify audit --data test.h5 --classifier runs/clf/best.safetensors \\
        --sr-all runs/rcan/best.safetensors --sr-cdm-only runs/rcan-cdm/best.safetensors \\
        --out audit/
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from lensr.cli.options import config_from, console, runtime_options
from lensr.errors import LensrError

app = typer.Typer(
    no_args_is_help=True,
    help="Substructure classification: train a ResNet-18 on HR, test it on HR, LR and SR images.",
)


def parse_sr_specs(items: list[str]) -> dict[str, str]:
    """``NAME=SPEC`` items (a bare SPEC is named after its run folder) -> ``{name: spec}``.

    Example::

        parse_sr_specs(["rcan=runs/rcan/best.safetensors", "bilinear"])
        # {'rcan': 'runs/rcan/best.safetensors', 'bilinear': 'bilinear'}
    """
    from lensr.eval.model_runs import display_name

    out: dict[str, str] = {}
    for item in items:
        name, sep, spec = item.partition("=")
        if not sep:
            name, spec = display_name(item), item
        name, spec = name.strip(), spec.strip()
        if not name or not spec:
            raise LensrError(
                f"--sr {item!r}: expected NAME=SPEC, e.g. rcan=runs/rcan/best.safetensors"
            )
        if name in out:
            raise LensrError(f"--sr: the name {name!r} is given twice; names must be unique")
        out[name] = spec
    return out


@app.command("train")
@runtime_options
def classify_train_command(
    data: Path = typer.Option(..., help="The lensr HDF5 dataset to train on (its HR images)."),
    out: Path = typer.Option(..., help="Run folder: best/last .safetensors + .json, logs/."),
    epochs: int = typer.Option(None, help="Epochs (default 20, or the config's)."),
    batch_size: int = typer.Option(None, help="Images per step (default 64)."),
    lr: float = typer.Option(None, help="AdamW learning rate (default 1e-3)."),
    runtime: dict = None,  # the runtime options, from @runtime_options
    config: Path = typer.Option(
        None, help="YAML file of ClassifierConfig keys; the options above override it."
    ),
    resume: bool = typer.Option(False, help="Continue an interrupted run in OUT."),
):
    """Train the substructure classifier (ResNet-18) on the HR images of a dataset."""
    from lensr.train.classifier import ClassifierConfig, train_classifier
    from lensr.train.trainer import is_global_zero

    cfg = config_from(
        ClassifierConfig,
        config,
        {
            "max_epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            **runtime,
        },
    )
    result = train_classifier(cfg, data=data, out_dir=out, resume=resume)
    if not is_global_zero():
        return
    m = result.metrics
    console.print(
        f"best: {result.best} (epoch {m.get('epoch')}): validation accuracy "
        f"{m['val_acc']:.3f}, macro AUC {m.get('val_auc', float('nan')):.3f}",
        highlight=False,
        soft_wrap=True,
    )


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _table(result: dict) -> Table:
    names = result["class_names"]
    table = Table(title=f"classification of {result['n']} images")
    for col in ["variant", "accuracy", "macro AUC", *[f"AUC {c}" for c in names]]:
        table.add_column(col, justify="left" if col == "variant" else "right")
    for variant, m in result["variants"].items():
        aucs = [_fmt(m["auc"][c]) for c in names]
        table.add_row(variant, _fmt(m["accuracy"]), _fmt(m["macro_auc"]), *aucs)
    return table


@app.command("eval")
def classify_eval_command(
    data: Path = typer.Option(..., help="The lensr HDF5 dataset to classify (test split)."),
    classifier: Path = typer.Option(..., help="Classifier checkpoint (lensr classify train)."),
    sr_models: list[str] = typer.Option(
        [],
        "--sr",
        help="An SR model as NAME=SPEC (SPEC: checkpoint path or baseline); repeatable.",
    ),
    out: Path = typer.Option(..., help="Output folder: classification.json, roc.png, ..."),
    max_images: int = typer.Option(None, help="Classify only the first N images (default all)."),
):
    """Classify HR, bicubic-upsampled LR and SR images: accuracy, ROC/AUC, confusion."""
    from lensr.eval.classification import evaluate_classifier

    result = evaluate_classifier(
        classifier,
        data,
        sr_models=parse_sr_specs(sr_models),
        out_dir=out,
        max_images=max_images,
    )
    console.print(_table(result))
    console.print(f"wrote {out / 'classification.json'}", highlight=False, soft_wrap=True)


@app.command("audit")
def classify_audit_command(
    data: Path = typer.Option(..., help="The lensr HDF5 dataset (test split)."),
    classifier: Path = typer.Option(..., help="Classifier checkpoint (lensr classify train)."),
    sr_all: str = typer.Option(..., help="SR checkpoint trained on all classes."),
    sr_cdm_only: str = typer.Option(..., help="SR checkpoint trained only on cdm lenses."),
    out: Path = typer.Option(..., help="Output folder: hallucination.json and .png."),
    examples: int = typer.Option(4, help="Changed images to draw."),
    max_images: int = typer.Option(None, help="Classify only the first N images (default all)."),
    consistent: bool = typer.Option(
        False, help="Also classify the cdm-only SR images projected onto their LR data."
    ),
):
    """Does SR invent substructure? Class shifts under an SR model trained only on cdm."""
    from lensr.eval.audit import hallucination_audit

    result = hallucination_audit(
        data,
        sr_all=sr_all,
        sr_cdm_only=sr_cdm_only,
        classifier=classifier,
        out_dir=out,
        examples=examples,
        max_images=max_images,
        consistent=consistent,
    )
    accuracy = ", ".join(f"{v} {_fmt(m['accuracy'])}" for v, m in result["variants"].items())
    changed = result["changed"]
    console.print(
        f"accuracy: {accuracy}\n{changed['count']} of {result['n']} images change class "
        f"under cdm-only SR ({changed['sr_all_agrees_with_hr']} of them keep their HR class "
        f"under all-classes SR)"
        + (
            f"\nafter projection onto the LR data: {result['projection']['changed']['count']} "
            f"differ from HR ({result['projection']['restored']} restored, "
            f"{result['projection']['new']} new)"
            if "projection" in result
            else ""
        )
        + f"\nwrote {out / 'hallucination.json'}",
        highlight=False,
        soft_wrap=True,
    )
