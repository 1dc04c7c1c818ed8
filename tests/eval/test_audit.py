"""The hallucination audit: class shifts under cdm-only SR, examples, projection, errors."""

import json

import numpy as np
import pytest

from lensr.data.importers import import_dataset
from lensr.errors import LensrError
from lensr.eval.audit import SR_ALL, SR_CDM, SR_CDM_PROJ, hallucination_audit
from lensr.eval.classification import HR

NAMES = ["none", "cdm", "axion"]

pytestmark = pytest.mark.usefixtures("one_thread")


def test_hallucination_audit_writes_its_files(sim, models, tmp_path):
    out = tmp_path / "audit"
    r = hallucination_audit(
        sim,
        sr_all=str(models["sr_all"]),
        sr_cdm_only=str(models["sr_cdm"]),
        classifier=models["classifier"],
        out_dir=out,
        examples=3,
        progress=False,
    )
    assert list(r["variants"]) == [HR, SR_ALL, SR_CDM]
    for v in r["variants"].values():
        for row in v["prediction"].values():
            assert sum(row.values()) == pytest.approx(1)
    assert r["models"][SR_CDM]["trained_on"] == ["cdm"]
    assert set(r["shift"]) == set(NAMES)
    assert 0 <= r["changed"]["count"] <= 30
    assert len(r["examples"]) == min(3, r["changed"]["count"])
    for ex in r["examples"]:
        assert ex["predicted"][HR] != ex["predicted"][SR_CDM]
    changes = [ex["change"] for ex in r["examples"]]
    assert json.loads((out / "hallucination.json").read_text()) == r
    assert (out / "hallucination.png").read_bytes()[:4] == b"\x89PNG"
    assert all(0 < c <= 1 for c in changes)


def test_audit_with_projection_accounts_for_every_changed_image(sim, models, tmp_path):
    r = hallucination_audit(
        sim,
        sr_all=str(models["sr_all"]),
        sr_cdm_only=str(models["sr_cdm"]),
        classifier=models["classifier"],
        out_dir=tmp_path,
        progress=False,
        consistent=True,
    )
    assert list(r["variants"]) == [HR, SR_ALL, SR_CDM, SR_CDM_PROJ]
    p = r["projection"]
    assert 0 <= p["restored"] <= r["changed"]["count"]
    assert p["changed"]["count"] == r["changed"]["count"] - p["restored"] + p["new"]
    assert p["changed"]["fraction"] == pytest.approx(p["changed"]["count"] / 30)


def test_audit_projection_needs_the_simulated_instrument(sim, models, tmp_path):
    hr, lr = tmp_path / "src" / "HR", tmp_path / "src" / "LR"
    hr.mkdir(parents=True)
    lr.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        np.save(hr / f"{i}.npy", rng.random((64, 64), dtype=np.float32))
        np.save(lr / f"{i}.npy", rng.random((32, 32), dtype=np.float32))
    (imported,) = import_dataset(tmp_path / "src", tmp_path / "imp.h5", progress=False)
    kwargs = {"sr_all": str(models["sr_all"]), "sr_cdm_only": str(models["sr_cdm"])}
    with pytest.raises(LensrError, match="--consistent needs a simulated dataset"):
        hallucination_audit(
            imported, classifier=models["classifier"], out_dir=tmp_path / "a", **kwargs,
            progress=False, consistent=True,
        )  # fmt: skip
    assert not (tmp_path / "a").exists()


def test_identical_sr_models_shift_nothing(sim, models, tmp_path):
    r = hallucination_audit(
        sim,
        sr_all=str(models["sr_all"]),
        sr_cdm_only=str(models["sr_all"]),
        classifier=models["classifier"],
        out_dir=tmp_path,
        max_images=9,
        progress=False,
    )
    assert all(v == 0 for row in r["shift"].values() for v in row.values())


def test_attribution_separates_flips_of_any_sr_from_flips_of_cdm_only_training(
    sim, models, tmp_path
):
    # The same model as "all classes" and "cdm only": every flip is SR as such.
    same = hallucination_audit(
        sim,
        sr_all=str(models["sr_all"]),
        sr_cdm_only=str(models["sr_all"]),
        classifier=models["classifier"],
        out_dir=tmp_path / "same",
        progress=False,
    )
    a, count = same["attribution"], same["changed"]["count"]
    assert count > 0  # an untrained SR model moves some images
    assert a == {
        "any_sr": count,
        "any_sr_same_class": count,
        "cdm_training": 0,
        "sr_all_changed": count,
    }
    # Bicubic as the "all classes" model: the counts partition the changed images.
    r = hallucination_audit(
        sim,
        sr_all="bicubic",
        sr_cdm_only=str(models["sr_cdm"]),
        classifier=models["classifier"],
        out_dir=tmp_path / "mixed",
        progress=False,
    )
    a, changed = r["attribution"], r["changed"]
    assert a["any_sr"] + a["cdm_training"] == changed["count"]
    assert a["cdm_training"] == changed["sr_all_agrees_with_hr"]
    assert a["any_sr_same_class"] <= a["any_sr"] <= a["sr_all_changed"]
