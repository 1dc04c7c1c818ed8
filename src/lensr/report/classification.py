"""Report section: does super-resolution keep the dark matter? (`classify/` of a run).

The ladder (``classify/ladder/ladder.json``: accuracy and macro AUC with 95 % intervals per
rung, the figure and the verdict in words), the full evaluation of the DeepLense-faithful
rung (ROC curves, confusion matrices) and the hallucination audit with its attribution:
which flips any SR model causes and which the cdm-only training causes.
"""

from __future__ import annotations

from pathlib import Path

from lensr.report.components import (
    as_finite,
    esc,
    explain,
    figure,
    fmt,
    fmt_stat,
    guarded,
    note,
    read_json,
    section,
    table,
)

WEAK_AUC = 0.7
"""Below this macro AUC on HR the classifier has not learned the classes well enough for the
HR/LR/SR comparison to mean much (0.7: the usual floor of "acceptable" discrimination)."""


def _weak_classifier_note(result: dict) -> str:
    hr = result["variants"].get("HR") or {}
    auc, acc = as_finite(hr.get("macro_auc")), as_finite(hr.get("accuracy"))
    if auc is None or auc >= WEAK_AUC:
        return ""
    chance = 1 / max(len(result["class_names"]), 1)
    return note(
        f"The classifier barely separates the classes even on HR (accuracy {fmt(acc)}, chance "
        f"{fmt(chance)}; macro AUC {fmt(auc)} < {WEAK_AUC}): it has not learned the "
        "substructure at this scale, so the HR / LR / SR differences and the audit below say "
        "little. Train on more images for more epochs (configs/paper.yaml: 9,000 images, "
        "30 epochs, on a GPU)."
    )


def _variants_table(result: dict) -> str:
    names = result["class_names"]
    rows = []
    for variant, m in result["variants"].items():
        rows.append(
            [esc(variant), fmt(m["accuracy"], kind="ssim"), fmt(m["macro_auc"], kind="ssim")]
            + [fmt(m["auc"].get(c), kind="ssim") for c in names]
        )
    header = ["input", "accuracy", "macro AUC", *[f"AUC {c}" for c in names]]
    return table(
        header,
        rows,
        numeric=range(1, 3 + len(names)),
        caption=f"{result.get('classifier_label') or 'Classifier'} trained on HR, "
        f"{result['n']} test images",
    )


def _evaluation_html(run_dir: Path, folder: Path) -> str:
    result = read_json(folder / "classification.json")
    parts = [_weak_classifier_note(result), _variants_table(result)]
    for key, caption in (
        ("roc", "One-vs-rest ROC curves: HR, LR (bicubic) and SR inputs"),
        ("confusion", "Confusion matrices (rows: true class)"),
    ):
        if key in result.get("figures", {}):
            parts.append(figure(folder / result["figures"][key], caption=caption, run_dir=run_dir))
    return "\n".join(parts)


def _audit_html(run_dir: Path, folder: Path) -> str:
    result = read_json(folder / "hallucination.json")
    names = result["class_names"]
    rows = []
    for variant, v in result["variants"].items():
        for true in names:
            fractions = v["prediction"].get(true, {})
            rows.append(
                [esc(variant), esc(true), *(fmt(fractions.get(p), kind="ssim") for p in names)]
            )
    changed = result["changed"]
    parts = [
        explain(
            "The same SR architecture trained only on cdm lenses, applied to every class: "
            "if SR invents subhalo-like structure, images of other classes drift towards "
            "the cdm prediction."
        ),
        table(
            ["input", "true class", *[f"predicted {p}" for p in names]],
            rows,
            numeric=range(2, 2 + len(names)),
            caption="Fraction of predictions per true class",
        ),
        f"<p>{fmt(changed['count'], kind='int')} of {fmt(result['n'], kind='int')} images "
        f"({100 * changed['fraction']:.1f} %) change class under the cdm-only SR model.</p>",
    ]
    attribution = result.get("attribution")
    if attribution and changed["count"]:
        parts.append(_attribution_html(changed["count"], attribution))
    projection = result.get("projection")
    if projection:
        parts.append(
            f"<p>Projected onto their LR data (the output changed only as far as the LR image "
            f"allows), {fmt(projection['changed']['count'], kind='int')} differ from their HR "
            f"class: projection restores {fmt(projection['restored'], kind='int')} of the "
            f"changed images and changes {fmt(projection['new'], kind='int')} others.</p>"
        )
    if "hallucination" in result.get("figures", {}):
        parts.append(
            figure(
                folder / result["figures"]["hallucination"],
                run_dir=run_dir,
                caption="Images whose class changed under cdm-only SR, with their "
                "differences to the HR and noise-free HR images",
            )
        )
    return "\n".join(parts)


def _attribution_html(count: int, a: dict) -> str:
    return (
        f"<p><strong>Attribution:</strong> {fmt(a['any_sr'], kind='int')} of these "
        f"{fmt(count, kind='int')} also change class under the SR model trained on all "
        f"classes ({fmt(a['any_sr_same_class'], kind='int')} to the same class): they are "
        "what super-resolution as such does to the classifier, not hallucinated cdm "
        f"structure. {fmt(a['cdm_training'], kind='int')} change only under cdm-only SR: "
        "at most these are due to the class-specific training. (The all-classes SR model "
        f"changes {fmt(a['sr_all_changed'], kind='int')} images in all.)</p>"
    )


def _ladder_html(run_dir: Path, folder: Path) -> str:
    result = read_json(folder / "ladder.json")
    labels = {}
    for r in result["rungs"]:
        labels.update({v: m.get("label", v) for v, m in r["variants"].items()})
    variants = list(labels)
    rows = []
    for r in result["rungs"]:
        role = f" ({esc(r['role'])})" if r.get("role") else ""
        for key, title in (("accuracy", "accuracy"), ("macro_auc", "macro AUC")):
            cells = [fmt_stat((r["variants"].get(v) or {}).get(key), kind="ssim") for v in variants]
            rows.append([esc(r["label"]) + role, title, *cells])
    parts = [
        explain(
            "Each rung simulates the classes again with one more group of nuisance parameters "
            "free, from DeepLense-faithful (fixed lens and source, as in DeepLenseSim) to "
            "realistic. Per rung: a classifier trained on HR, scored on HR, on bicubic LR "
            "(the seed study's LR number) and on SR; and the fair baselines, classifiers "
            "trained on LR (bicubic-upsampled to the HR size) and on SR outputs. Brackets "
            'are 95 % bootstrap intervals over test images; "tie" means they overlap.'
        ),
        table(
            ["rung", "score", *[labels[v] for v in variants]],
            rows,
            numeric=range(2, 2 + len(variants)),
            caption=f"Classification ladder ({result['rungs'][0]['n']} test images per rung)",
        ),
    ]
    if "ladder" in result.get("figures", {}):
        parts.append(
            figure(
                folder / result["figures"]["ladder"],
                run_dir=run_dir,
                caption="Accuracy per rung with 95 % intervals (filled: HR-trained "
                "classifier; hollow: trained on LR or SR); dashed: chance",
            )
        )
    if result.get("verdict"):
        parts.append("<p><strong>Verdict.</strong> " + " ".join(map(esc, result["verdict"])))
    return "\n".join(parts)


def _eval_folder(root: Path) -> Path | None:
    """The evaluation shown in full: the faithful rung's (the ladder's first role), or the
    first rung's, or a run of the one-rung layout (``classify/eval``)."""
    ladder = root / "ladder" / "ladder.json"
    if ladder.exists():
        try:
            result = read_json(ladder)
            name = (result.get("roles") or {}).get("faithful") or result["rungs"][0]["name"]
            if (root / name / "eval" / "classification.json").exists():
                return root / name / "eval"
        except (ValueError, KeyError, IndexError, TypeError):
            pass
    candidates = [root / "eval"] + [p / "eval" for p in sorted(root.glob("*")) if p.is_dir()]
    return next((c for c in candidates if (c / "classification.json").exists()), None)


def classification_section(run_dir: Path) -> str | None:
    root = run_dir / "classify"
    evaluation, audit, ladder = _eval_folder(root), root / "audit", root / "ladder"
    has_ladder = (ladder / "ladder.json").exists()
    if evaluation is None and not audit.exists() and not has_ladder:
        return None
    parts = [
        explain(
            "A classifier trained on HR images (ResNet-18 unless a rung names another) "
            "classifies substructure (none, cdm subhalos, axion "
            "vortex). Tested on HR, on LR upsampled by bicubic and on SR images, it shows whether "
            "super-resolution recovers what the low resolution lost, and whether it adds what was "
            "never there. The study we reproduce found 0.92 accuracy on HR, 0.34 on LR, 0.917 on "
            "SR, and 0.33 for SR from a model trained only on cdm."
        )
    ]
    if has_ladder:
        parts.append("<h3>The ladder: DeepLense-faithful to realistic</h3>")
        parts.append(guarded("classify/ladder/ladder.json", lambda: _ladder_html(run_dir, ladder)))
    if evaluation is not None:
        rel = evaluation.relative_to(run_dir)
        parts.append(f"<h3>HR, LR and SR in detail ({esc(rel)})</h3>")
        parts.append(
            guarded(f"{rel}/classification.json", lambda: _evaluation_html(run_dir, evaluation))
        )
    if (audit / "hallucination.json").exists():
        parts.append("<h3>Hallucination audit</h3>")
        parts.append(
            guarded("classify/audit/hallucination.json", lambda: _audit_html(run_dir, audit))
        )
    return section("Classification", "\n".join(parts))
