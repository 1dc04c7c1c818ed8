"""The classification ladder: one rung's scores with intervals, the fair baselines' data,
and the table, figure and verdict over all rungs.

A rung is a simulation preset with overrides, from DeepLense-faithful (fixed lens and
source) to realistic (everything varies). On each, a classifier trained on HR is scored on
HR, on bicubic-upsampled LR (the seed study's LR number: a resolution loss plus a domain
shift) and on SR images; the fair baselines are classifiers trained on the LR images
(bicubic-upsampled to the HR size, so the network and its stem see the same geometry) and
on the SR outputs, each scored on its own kind: what the LR image alone allows. Every
number carries a 95 % bootstrap interval
(:func:`lensr.eval.classification_metrics.score_intervals`).

Example::

    from lensr.eval.ladder import score_rung, write_ladder
    score_rung("test.h5", classifier="clf/best.safetensors", sr="sr/best.safetensors",
               out_dir="eval")
    write_ladder({"faithful": "faithful/eval/rung.json"}, out_dir="ladder")
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from torch import nn

from lensr.data.store import LensDataset, open_dataset
from lensr.errors import LensrError
from lensr.eval.classification import HR, LR, classify_variants, nan_to_none
from lensr.eval.classification_metrics import score_intervals
from lensr.eval.classify_inputs import (
    classifier_for,
    classifier_label,
    count_images,
    load_sr,
    open_data,
    spec_text,
)
from lensr.eval.output_dir import check_out_dir, json_writer, text_writer, write_all
from lensr.models.checkpoint import resolve_model

SR = "SR"
LR_TRAINED, SR_TRAINED = "LR-trained on LR", "SR-trained on SR"
VARIANTS = {
    HR: "HR-trained on HR",
    LR: "HR-trained on LR (bicubic)",
    SR: "HR-trained on SR",
    LR_TRAINED: LR_TRAINED,
    SR_TRAINED: SR_TRAINED,
}
"""Rung variants (keys in ``rung.json``) and how the table names them."""
CHUNK = 256


def upscaled_copy(data, out: str | os.PathLike, model: str | nn.Module, *, images: str) -> Path:
    """A copy of dataset ``data`` whose HR images are ``model``'s upscaling of its LR
    images (``bicubic``, a checkpoint path or a module): the training set of a classifier
    that sees what SR or interpolation makes of the LR data. Labels, LR images and
    attributes are kept; ``attrs["images"] = images`` records what the HR slot holds.

    Example::

        upscaled_copy("train.h5", "lr-train.h5", "bicubic", images="LR (bicubic)")
    """
    from lensr.data.writer import DatasetWriter

    with open_dataset(data) as ds:
        net = load_sr(model, scale=ds.scale, name=images)
        keep = {
            k: v
            for k, v in ds.attrs.items()
            if k not in ("kind", "lensr_version", "class_names", "created")
        }
        writer = DatasetWriter(
            out,
            n=len(ds),
            hr_shape=ds.hr_shape,
            lr_shape=ds.lr_shape,
            class_names=ds.class_names,
            attrs={**keep, "images": images},
            indices=ds.index,
        )
        with writer:
            from lensr.eval.classification import upscale_lr

            labels = ds.labels
            for start in range(0, len(ds), CHUNK):
                lr = ds.lr[start : start + CHUNK]
                up = upscale_lr(lr, net)
                for i in range(len(lr)):
                    writer.write(start + i, hr=up[i], lr=lr[i], label=int(labels[start + i]))
            return writer.finish()


def score_rung(
    data: str | os.PathLike | LensDataset,
    *,
    classifier,
    sr,
    lr_classifier=None,
    sr_classifier=None,
    out_dir: str | os.PathLike,
    max_images: int | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Score one rung's test set: the HR-trained ``classifier`` on HR, bicubic LR and
    ``sr``'s output, and (when given) ``lr_classifier`` on bicubic LR and
    ``sr_classifier`` on SR. Writes ``rung.json`` (the returned dict: ``dataset``,
    ``classifier`` (its name, :func:`lensr.eval.classify_inputs.classifier_label`), ``sr``
    (the SR model's architecture), ``n``,
    ``class_names``, ``chance``, ``variants: {variant: {label, accuracy, macro_auc}}``,
    each a bootstrap summary with ``ci_low``/``ci_high``).

    Example::

        r = score_rung("test.h5", classifier="clf/best.safetensors",
                       sr="sr/best.safetensors", out_dir="eval")
        r["variants"]["SR"]["accuracy"]["mean"]
    """
    out = check_out_dir(out_dir)
    ds, owned = open_data(data)
    try:
        n = count_images(ds, max_images)
        bicubic = resolve_model("bicubic", scale=ds.scale)
        sr_net = load_sr(sr, scale=ds.scale, name="sr")
        runs = [(classifier, {HR: None, LR: bicubic, SR: sr_net})]
        if lr_classifier is not None:
            runs.append((lr_classifier, {LR_TRAINED: bicubic}))
        if sr_classifier is not None:
            runs.append((sr_classifier, {SR_TRAINED: sr_net}))
        probs, label = {}, None
        for clf, sources in runs:
            model = classifier_for(clf, ds)
            label = label or classifier_label(model)
            probs.update(
                classify_variants(ds, model, sources, n=n, batch_size=128, progress=progress)
            )
        labels, names = ds.labels[:n], ds.class_names
        result = {
            "dataset": str(ds.path),
            "classifier": label,
            "sr": (getattr(sr_net, "metadata", None) or {}).get("arch") or spec_text(sr),
            "n": int(n),
            "class_names": names,
            "chance": 1.0 / len(names),
            "variants": {
                v: {
                    "label": VARIANTS[v],
                    **score_intervals(labels, p, names, n_boot=n_boot, seed=seed),
                }
                for v, p in probs.items()
            },
        }
    finally:
        if owned:
            ds.close()
    write_all(out, {"rung.json": json_writer(nan_to_none(result))})
    return result


# The ladder over all rungs -------------------------------------------------------------------


def compare(a: dict | None, b: dict | None) -> str | None:
    """``"tie"`` when the 95 % intervals of bootstrap summaries ``a`` and ``b`` overlap, else
    ``"higher"`` or ``"lower"`` (``a`` against ``b``); None when either is missing."""
    if not a or not b:
        return None
    if a["ci_low"] > b["ci_high"]:
        return "higher"
    if a["ci_high"] < b["ci_low"]:
        return "lower"
    return "tie"


def _acc(rung: dict, variant: str) -> dict | None:
    return (rung["variants"].get(variant) or {}).get("accuracy")


def _num(s: dict | None) -> str:
    return "n/a" if not s else f"{s['mean']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]"


def _rung_sentence(r: dict) -> str:
    hr, lr, sr = _acc(r, HR), _acc(r, LR), _acc(r, SR)
    text = (
        f"On the {r['label']} rung the HR-trained {r.get('classifier') or 'classifier'} "
        f"scores {_num(hr)} on HR, "
        f"{_num(sr)} on SR ({compare(sr, hr)} with HR) and {_num(lr)} on bicubic LR"
    )
    lr_own, sr_own = _acc(r, LR_TRAINED), _acc(r, SR_TRAINED)
    if lr_own:
        gap = lr_own["mean"] - lr["mean"]
        why = {
            "tie": "a tie with the HR-trained one on LR: no measurable domain-shift cost",
            "higher": f"{100 * gap:.1f} points above the HR-trained one on LR: the cost of "
            "the domain shift",
            "lower": f"{100 * -gap:.1f} points below the HR-trained one on LR",
        }[compare(lr_own, lr)]
        text += f"; a classifier trained on LR itself scores {_num(lr_own)} ({why})"
    if sr_own:
        text += f", trained on SR {_num(sr_own)}"
    return text + "."


def ladder_verdict(rungs: list[dict], roles: dict) -> list[str]:
    """The sentences the report states: how much of the DeepLense-faithful HR accuracy
    survives realistic variation, how much of it is ring size (the mass-compensated rung),
    and HR vs LR vs SR on those rungs; "tie" when the 95 % intervals overlap."""
    by = {r["name"]: r for r in rungs}
    faithful, realistic, ring = (by.get(roles.get(k) or "") for k in ROLES)
    out = []
    if faithful:
        out.append(_rung_sentence(faithful))
        f = _acc(faithful, HR)
        if f and f["ci_low"] <= faithful["chance"]:
            return out + [
                f"The classifier is not above chance ({faithful['chance']:.3f}) even on the "
                "DeepLense-faithful rung: the ladder says nothing at this scale."
            ]
    if faithful and realistic:
        f, r, chance = _acc(faithful, HR), _acc(realistic, HR), faithful["chance"]
        if compare(r, f) == "tie":
            out.append(
                f"Realistic variation ({realistic['label']}: {_num(r)}) ties with the "
                f"DeepLense-faithful rung ({_num(f)}): its accuracy survives within the "
                "intervals."
            )
        else:
            share = (r["mean"] - chance) / (f["mean"] - chance) if f["mean"] > chance else 0
            out.append(
                f"HR accuracy goes from {_num(f)} on the DeepLense-faithful rung to {_num(r)} "
                f"on the realistic rung ({realistic['label']}; chance {chance:.3f}): "
                f"{100 * max(share, 0):.0f} % of the above-chance accuracy survives "
                "realistic variation."
            )
        out.append(_rung_sentence(realistic))
    if faithful and ring:
        f, g, chance = _acc(faithful, HR), _acc(ring, HR), faithful["chance"]
        if compare(g, f) == "tie":
            out.append(
                f"With the substructure's mass taken from the main halo ({ring['label']}: "
                f"{_num(g)}) accuracy ties with the faithful rung ({_num(f)}): ring size "
                "explains no measurable part of it; the classifier reads morphology."
            )
        else:
            share = (f["mean"] - g["mean"]) / (f["mean"] - chance) if f["mean"] > chance else 0
            out.append(
                f"With the substructure's mass taken from the main halo ({ring['label']}, "
                f"same mean Einstein radius in every class) HR accuracy is {_num(g)} against "
                f"{_num(f)}: about {100 * min(max(share, 0), 1):.0f} % of the DeepLense-"
                "faithful rung's above-chance accuracy is ring size, the rest morphology."
            )
    named = {id(r) for r in (faithful, realistic, ring) if r}
    for r in rungs:
        if id(r) not in named:
            out.append(_other_sr(r, faithful) or _rung_sentence(r) + _same_images(r, faithful))
    return out


_VERSUS = {"tie": "a tie with", "higher": "above", "lower": "below"}


def _other_sr(r: dict, faithful: dict | None) -> str:
    """For a rung scoring another SR model's outputs on the faithful rung's test images
    under the same classifier: how the two SR models compare (its HR and LR rows are the
    faithful rung's)."""
    if not faithful or r.get("dataset") != faithful.get("dataset"):
        return ""
    if r.get("classifier") != faithful.get("classifier") or r.get("sr") == faithful.get("sr"):
        return ""
    sr, base = _acc(r, SR), _acc(faithful, SR)
    text = (
        f"On the test images of the {faithful['label']} rung, under the same "
        f"{r.get('classifier') or 'classifier'}, the outputs of {r.get('sr')} score "
        f"{_num(sr)}: {_VERSUS[compare(sr, base)]} those of {faithful.get('sr')} "
        f"({_num(base)}) and {_VERSUS[compare(sr, _acc(r, HR))]} HR ({_num(_acc(r, HR))})"
    )
    own, base_own = _acc(r, SR_TRAINED), _acc(faithful, SR_TRAINED)
    if own and base_own:
        text += f"; a classifier trained on them scores {_num(own)} ({_num(base_own)})"
    return text + "."


def _same_images(r: dict, faithful: dict | None) -> str:
    """For a rung scored on the faithful rung's test images by another classifier: how
    the two classifiers compare there, on HR and on SR."""
    if not faithful or r.get("dataset") != faithful.get("dataset"):
        return ""
    if r.get("classifier") == faithful.get("classifier"):
        return ""
    verdicts = {v: compare(_acc(r, v), _acc(faithful, v)) for v in (HR, SR)}
    return (
        f" On the same test images as the {faithful['label']} rung it is "
        f"{verdicts[HR]} against the {faithful.get('classifier') or 'classifier'} on HR and "
        f"{verdicts[SR]} on SR."
    )


ROLES = ("faithful", "realistic", "ring-size")


def ladder_markdown(result: dict) -> str:
    """The ladder as two Markdown tables (accuracy, macro AUC; rows: rungs), then the
    verdict."""
    variants = [v for v in VARIANTS if any(v in r["variants"] for r in result["rungs"])]
    lines = [f"# Classification ladder ({result['rungs'][0]['n']} test images per rung)", ""]
    for key, title in (("accuracy", "Accuracy"), ("macro_auc", "Macro AUC")):
        lines += [f"## {title} (mean [95 % bootstrap interval])", ""]
        lines.append("| rung | " + " | ".join(VARIANTS[v] for v in variants) + " |")
        lines.append("|---" * (len(variants) + 1) + "|")
        for r in result["rungs"]:
            cells = [_num((r["variants"].get(v) or {}).get(key)) for v in variants]
            lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines + ["## Verdict", "", *result["verdict"], ""])


def write_ladder(
    rung_files: dict[str, str | os.PathLike],
    *,
    out_dir: str | os.PathLike,
    labels: dict[str, str] | None = None,
    roles: dict[str, str | None] | None = None,
) -> dict:
    """Collect the ``rung.json`` of each rung (in ladder order) into ``ladder.json`` (the
    returned dict: ``rungs: [{name, label, role, n, chance, variants}]``, ``roles``,
    ``comparisons: {rung: {"SR vs HR", "LR (bicubic) vs HR", "LR-trained vs HR-trained
    on LR"}}`` ("tie", "higher", "lower"), ``verdict``, ``figures``), ``ladder.md`` and
    ``ladder.png`` (accuracy per rung with intervals).

    Example::

        write_ladder({"faithful": "f/eval/rung.json", "realistic": "r/eval/rung.json"},
                     out_dir="ladder", roles={"faithful": "faithful"})
    """
    from lensr.eval.classification_figures import ladder_figure

    if not rung_files:
        raise LensrError("the ladder needs at least one rung")
    out = check_out_dir(out_dir)
    labels, roles = dict(labels or {}), {k: (roles or {}).get(k) for k in ROLES}
    rungs = []
    for name, path in rung_files.items():
        if not Path(path).is_file():
            raise LensrError(f"rung '{name}': {path} not found (score the rung first)")
        r = json.loads(Path(path).read_text())
        role = next((k for k, v in roles.items() if v == name), None)
        rungs.append({"name": name, "label": labels.get(name) or name, "role": role, **r})
    if len({r.get("classifier") for r in rungs}) > 1:  # name the classifier of every row
        for r in rungs:
            r["label"] = f"{r['label']}, {r.get('classifier') or 'classifier'}"
    if len({r.get("sr") for r in rungs}) > 1:  # name the SR model of every row
        for r in rungs:
            r["label"] = f"{r['label']}, SR {r.get('sr') or 'model'}"
    comparisons = {
        r["name"]: {
            "SR vs HR": compare(_acc(r, SR), _acc(r, HR)),
            "LR (bicubic) vs HR": compare(_acc(r, LR), _acc(r, HR)),
            "LR-trained vs HR-trained on LR": compare(_acc(r, LR_TRAINED), _acc(r, LR)),
        }
        for r in rungs
    }
    result = {
        "rungs": rungs,
        "roles": roles,
        "comparisons": comparisons,
        "verdict": ladder_verdict(rungs, roles),
        "figures": {"ladder": "ladder.png"},
    }
    write_all(
        out,
        {
            "ladder.png": lambda path: ladder_figure(result, path),
            "ladder.md": text_writer(ladder_markdown(result)),
            "ladder.json": json_writer(result),
        },
    )
    return result
