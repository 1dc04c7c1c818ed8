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
