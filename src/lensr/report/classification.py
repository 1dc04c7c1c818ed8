"""Report section: does super-resolution keep the dark matter? (`classify/` of a run)."""

from __future__ import annotations

from pathlib import Path

from lensr.report.components import (
    as_finite,
    esc,
    explain,
    figure,
    fmt,
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
        caption=f"ResNet-18 trained on HR, {result['n']} test images",
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


def classification_section(run_dir: Path) -> str | None:
    root = run_dir / "classify"
    evaluation, audit = root / "eval", root / "audit"
    if not (evaluation / "classification.json").exists() and not audit.exists():
        return None
    parts = [
        explain(
            "A ResNet-18 trained on HR images classifies substructure (none, cdm subhalos, axion "
            "vortex). Tested on HR, on LR upsampled by bicubic and on SR images, it shows whether "
            "super-resolution recovers what the low resolution lost, and whether it adds what was "
            "never there. The study we reproduce found 0.92 accuracy on HR, 0.34 on LR, 0.917 on "
            "SR, and 0.33 for SR from a model trained only on cdm."
        )
    ]
    if (evaluation / "classification.json").exists():
        parts.append(
            guarded(
                "classify/eval/classification.json", lambda: _evaluation_html(run_dir, evaluation)
            )
        )
    if (audit / "hallucination.json").exists():
        parts.append("<h3>Hallucination audit</h3>")
        parts.append(
            guarded("classify/audit/hallucination.json", lambda: _audit_html(run_dir, audit))
        )
    return section("Classification", "\n".join(parts))
