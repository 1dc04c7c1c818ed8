"""The report's classification section warns when the HR classifier has learned little."""

import json
from pathlib import Path

import pytest

from lensr.report.classification import classification_section


def _run(tmp_path: Path, hr_auc: float) -> Path:
    folder = tmp_path / "classify" / "eval"
    folder.mkdir(parents=True)
    names = ["none", "cdm", "axion"]

    def variant(auc):
        return {"accuracy": 0.4, "macro_auc": auc, "auc": dict.fromkeys(names, auc)}

    result = {
        "n": 30,
        "class_names": names,
        "variants": {"HR": variant(hr_auc), "LR (bicubic)": variant(0.5)},
    }
    (folder / "classification.json").write_text(json.dumps(result))
    return tmp_path


@pytest.mark.parametrize(("auc", "warned"), [(0.58, True), (0.95, False)])
def test_weak_hr_classifier_gets_a_warning(tmp_path, auc, warned):
    html = classification_section(_run(tmp_path, auc))
    assert ("barely separates the classes" in html) == warned
    assert "LR (bicubic)" in html and f"{auc:.4f}" in html


def test_the_ladder_verdict_and_the_audit_attribution_are_stated(tmp_path):
    from lensr.eval.ladder import write_ladder

    names = ["none", "cdm", "axion"]

    def s(mean):
        return {"mean": mean, "std": 0.1, "ci_low": mean - 0.03, "ci_high": mean + 0.03, "n": 300}

    files = {}
    for rung, acc in (("faithful", 0.9), ("realistic", 0.5)):
        path = tmp_path / f"{rung}.json"
        variants = {
            v: {"label": v, "accuracy": s(acc), "macro_auc": s(0.9)}
            for v in ("HR", "LR (bicubic)", "SR")
        }
        path.write_text(
            json.dumps({"n": 300, "class_names": names, "chance": 1 / 3, "variants": variants})
        )
        files[rung] = path
    root = tmp_path / "run" / "classify"
    write_ladder(files, out_dir=root / "ladder",
                 roles={"faithful": "faithful", "realistic": "realistic"})  # fmt: skip
    audit = {
        "n": 300,
        "class_names": names,
        "variants": {},
        "changed": {"count": 19, "fraction": 19 / 300},
        "attribution": {
            "any_sr": 16,
            "any_sr_same_class": 15,
            "cdm_training": 3,
            "sr_all_changed": 22,
        },  # fmt: skip
    }
    (root / "audit").mkdir()
    (root / "audit" / "hallucination.json").write_text(json.dumps(audit))
    html = classification_section(tmp_path / "run")
    assert "The ladder: DeepLense-faithful to realistic" in html and "data:image/png" in html
    assert "29 % of the above-chance accuracy survives realistic variation" in html
    assert "16 of these 19 also change class under the SR model trained on all" in html
    assert "3 change only under cdm-only SR" in html
