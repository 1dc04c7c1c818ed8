"""The classification ladder: rungs as datasets, the stages they plan, the fair baselines'
data, one rung's scores, the table / figure / verdict, and a tiny ladder end to end."""

import json

import numpy as np
import pytest
import torch
import yaml

from lensr.config import validate
from lensr.errors import LensrError
from lensr.eval.ladder import (
    LR_TRAINED,
    SR,
    SR_TRAINED,
    compare,
    score_rung,
    upscaled_copy,
    write_ladder,
)
from lensr.models import create_model
from lensr.models.checkpoint import resolve_model, save_checkpoint
from lensr.study import StudyConfig, plan_study, run_study
from lensr.study.classify import plan_classification

NAMES = ["none", "cdm", "axion"]
LADDER = {
    "classifier": {"model_kwargs": {"small_input": False}},
    "n_train": 24,
    "n_test": 9,
    "ladder": {
        "faithful": {"preset": "classify", "overrides": {"lens": {"theta_e": 1.2}}},
        "ring": {
            "preset": "classify",
            "overrides": {"lens": {"theta_e": 1.2}, "mass_compensation": True},
            "role": "ring-size",
            "baselines": False,
        },
    },
    "sr": {"model": "fsrcnn-tiny"},
}


def study(classify=None, **more):
    return validate(StudyConfig, {"classify": classify or LADDER, **more}, source="test")


# Schema and planning --------------------------------------------------------------------------


def test_preset_rungs_become_datasets_of_their_preset_overrides_and_sizes():
    s = study()
    assert set(s.datasets) == {
        f"cls-{r}-{k}" for r in ("faithful", "ring") for k in ("train", "test")
    }
    ring = s.datasets["cls-ring-train"]
    assert ring.preset == "classify" and ring.n == 24 and ring.overrides["mass_compensation"]
    assert s.datasets["cls-faithful-test"].n == 9
    assert s.classify.ladder["ring"].dataset == "cls-ring-train"
    assert s.classify.role("faithful") == "faithful" and s.classify.role("ring-size") == "ring"
    assert s.classify.role("realistic") is None and s.classify.audit_rung() == "faithful"


def test_the_one_rung_form_is_a_ladder_named_main():
    s = validate(
        StudyConfig,
        {
            "datasets": {"a": {"preset": "classify", "n": 6}, "b": {"preset": "classify", "n": 3}},
            "classify": {"dataset": "a", "test": "b"},
        },
        source="test",
    )
    assert list(s.classify.ladder) == ["main"] and s.classify.ladder["main"].test == "b"


@pytest.mark.parametrize(
    ("classify", "datasets", "message"),
    [
        ({"ladder": {"x": {"dataset": "a"}}}, {}, "needs either a preset or both"),
        ({}, {}, "give a ladder"),
        ({"ladder": {"x": {"preset": "classify"}}}, {"cls-x-train": {"n": 3}}, "exists already"),
        (
            {
                "ladder": {
                    "x": {"preset": "sim", "role": "faithful"},
                    "y": {"preset": "sim", "role": "faithful"},
                }
            },
            {},
            "more than one rung has role 'faithful'",
        ),
        ({"ladder": {"x": {"preset": "sim"}}, "hallucination_rung": "y"}, {}, "not a rung"),
    ],
)
def test_bad_ladders_are_one_line_errors_and_run_nothing(tmp_path, classify, datasets, message):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"datasets": datasets, "classify": classify}))
    with pytest.raises(LensrError, match=message) as info:
        run_study(path, out=tmp_path / "run")
    assert "\n" not in str(info.value) and not (tmp_path / "run").exists()


def test_every_rung_plans_its_stages_and_baselines_follow_the_rung_switch(tmp_path):
    stages = {s.name: s for s in plan_classification(study(), tmp_path)}
    faithful = [f"classify:faithful:{k}" for k in ("classifier", "sr-all", "lr-classifier",
                                                  "sr-classifier", "eval")]  # fmt: skip
    assert set(faithful) <= set(stages)
    assert "classify:ring:lr-classifier" not in stages and "classify:ring:eval" in stages
    assert stages["classify:audit"].deps[0] == "classify:faithful:classifier"
    assert stages["classify:ladder"].deps == ["classify:faithful:eval", "classify:ring:eval"]
    assert "classify:faithful:sr-all" in stages["classify:faithful:sr-classifier"].deps
    names = [s.name for s in plan_study(study(), tmp_path)]
    assert names.index("data:cls-ring-test") < names.index("classify:faithful:classifier")
    assert not any(tmp_path.iterdir())  # planning does no work


# The fair baselines' data and one rung's scores -----------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from lensr.sim.config import load_sim_config
    from lensr.sim.run import simulate

    root = tmp_path_factory.mktemp("ladder")
    data = simulate(load_sim_config("classify"), n=12, seed=1, out=root / "d.h5", progress=False)
    torch.manual_seed(0)
    meta = {"task": "classification", "class_names": NAMES, "input_size": [64, 64]}
    clfs = [
        save_checkpoint(
            create_model("resnet18", small_input=False), root / f"c{i}.safetensors", metadata=meta
        )
        for i in range(2)
    ]
    sr = save_checkpoint(create_model("fsrcnn-tiny"), root / "sr.safetensors")
    return {"root": root, "data": data, "clf": clfs, "sr": sr}


@pytest.mark.usefixtures("one_thread")
def test_upscaled_copy_holds_the_upscaled_lr_in_the_hr_slot(tiny):
    from lensr.data.store import open_dataset

    out = upscaled_copy(tiny["data"], tiny["root"] / "lr.h5", "bicubic", images="LR (bicubic)")
    bicubic = resolve_model("bicubic", scale=2)
    with open_dataset(tiny["data"]) as src, open_dataset(out) as copy:
        from lensr.eval.classification import upscale_lr

        np.testing.assert_allclose(copy.hr[:], upscale_lr(src.lr[:], bicubic), atol=1e-6)
        np.testing.assert_array_equal(copy.lr[:], src.lr[:])
        np.testing.assert_array_equal(copy.labels, src.labels)
        assert copy.attrs["images"] == "LR (bicubic)" and copy.attrs["seed"] == src.attrs["seed"]


@pytest.mark.usefixtures("one_thread")
def test_score_rung_scores_every_variant_with_intervals(tiny, tmp_path):
    r = score_rung(
        tiny["data"],
        classifier=tiny["clf"][0],
        sr=str(tiny["sr"]),
        lr_classifier=tiny["clf"][0],
        sr_classifier=tiny["clf"][1],
        out_dir=tmp_path,
        n_boot=200,
    )
    assert list(r["variants"]) == ["HR", "LR (bicubic)", SR, LR_TRAINED, SR_TRAINED]
    for v in r["variants"].values():
        acc = v["accuracy"]
        assert 0 <= acc["ci_low"] <= acc["mean"] <= acc["ci_high"] <= 1 and acc["n"] == 12
    # The same classifier on the same images scores the same, whatever the row is called.
    assert r["variants"][LR_TRAINED]["accuracy"] == r["variants"]["LR (bicubic)"]["accuracy"]
    assert json.loads((tmp_path / "rung.json").read_text())["n"] == 12
    assert r["sr"] == "fsrcnn-tiny" and r["classifier"] == "ResNet-18"
    no_baselines = score_rung(
        tiny["data"], classifier=tiny["clf"][0], sr="bicubic", out_dir=tmp_path / "b", n_boot=200
    )
    assert list(no_baselines["variants"]) == ["HR", "LR (bicubic)", SR]
    sr, lr = no_baselines["variants"][SR], no_baselines["variants"]["LR (bicubic)"]
    assert sr["accuracy"] == lr["accuracy"] and sr["macro_auc"] == lr["macro_auc"]


# The table, figure and verdict ----------------------------------------------------------------


def summary(mean, half=0.03):
    return {"mean": mean, "std": 0.1, "ci_low": mean - half, "ci_high": mean + half, "n": 300}


def rung_file(tmp_path, name, hr, lr, sr_acc, lr_own=None, **extra):
    """A rung.json with these accuracies (and ``extra`` keys: classifier, sr, dataset)."""
    variants = {
        "HR": {"label": "HR-trained on HR", "accuracy": summary(hr), "macro_auc": summary(0.9)},
        "LR (bicubic)": {"label": "x", "accuracy": summary(lr), "macro_auc": summary(0.8)},
        SR: {"label": "HR-trained on SR", "accuracy": summary(sr_acc), "macro_auc": summary(0.9)},
    }
    if lr_own is not None:
        variants[LR_TRAINED] = {"label": LR_TRAINED, "accuracy": summary(lr_own),
                                "macro_auc": summary(0.85)}  # fmt: skip
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"n": 300, "class_names": NAMES, "chance": 1 / 3,
                                "variants": variants, **extra}))  # fmt: skip
    return path


def test_compare_calls_overlapping_intervals_a_tie():
    assert compare(summary(0.80), summary(0.85)) == "tie"
    assert compare(summary(0.80), summary(0.90)) == "lower"
    assert compare(summary(0.90), summary(0.80)) == "higher"
    assert compare(None, summary(0.8)) is None


def test_write_ladder_states_what_survives_and_what_is_ring_size(tmp_path):
    files = {
        "faithful": rung_file(tmp_path, "f", 0.93, 0.70, 0.92, lr_own=0.85),
        "realistic": rung_file(tmp_path, "r", 0.53, 0.40, 0.50),
        "ring": rung_file(tmp_path, "g", 0.63, 0.50, 0.60),
    }
    roles = {"faithful": "faithful", "realistic": "realistic", "ring-size": "ring"}
    r = write_ladder(files, out_dir=tmp_path / "out", labels={"ring": "mass-compensated"},
                     roles=roles)  # fmt: skip
    text = " ".join(r["verdict"])
    # (0.53 - 1/3) / (0.93 - 1/3) = 33 %; (0.93 - 0.63) / (0.93 - 1/3) = 50 %.
    assert "33 % of the above-chance accuracy survives" in text
    assert "about 50 % of the DeepLense-faithful rung's above-chance accuracy is ring size" in text
    assert "0.920 [0.890, 0.950] on SR (tie with HR)" in text
    assert "0.850 [0.820, 0.880] (15.0 points above the HR-trained one on LR" in text
    assert r["comparisons"]["faithful"]["LR (bicubic) vs HR"] == "lower"
    assert [x["label"] for x in r["rungs"]] == ["faithful", "realistic", "mass-compensated"]
    md = (tmp_path / "out" / "ladder.md").read_text()
    assert "| mass-compensated | 0.630 [0.600, 0.660] |" in md and "## Verdict" in md
    assert (tmp_path / "out" / "ladder.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "out" / "ladder.json").read_text()) == r


def test_a_classifier_at_chance_on_the_faithful_rung_gets_no_verdict(tmp_path):
    files = {
        "faithful": rung_file(tmp_path, "f", 0.36, 0.33, 0.34),
        "realistic": rung_file(tmp_path, "r", 0.35, 0.33, 0.33),
    }
    r = write_ladder(files, out_dir=tmp_path / "o", roles={"faithful": "faithful",
                                                           "realistic": "realistic"})  # fmt: skip
    assert "not above chance" in r["verdict"][-1] and "survives" not in " ".join(r["verdict"])


def test_a_missing_rung_file_is_one_line_and_writes_nothing(tmp_path):
    with pytest.raises(LensrError, match="score the rung first"):
        write_ladder({"x": tmp_path / "none.json"}, out_dir=tmp_path / "o")
    assert not (tmp_path / "o").exists()


# End to end -----------------------------------------------------------------------------------


def test_a_two_rung_ladder_runs_end_to_end_into_the_report(tmp_path):
    classify = {
        **LADDER,
        "n_boot": 200,
        "classifier": {"max_epochs": 1, "batch_size": 8, "model_kwargs": {"small_input": False}},
        "sr": {"model": "fsrcnn-tiny", "max_steps": 4, "val_check_interval": 2},
        "consistent": False,
    }
    classify["ladder"] = {
        **LADDER["ladder"],
        "eq-sr": {  # another SR model under the faithful rung's (shared) classifier
            "dataset": "cls-faithful-train",
            "test": "cls-faithful-test",
            "sr": {"model": "fsrcnn-equivariant"},
            "baselines": False,
        },
    }
    s = {
        "name": "ladder",
        "threads": 1,
        "train_defaults": {
            "patch": 16,
            "batch_size": 4,
            "max_val_images": 4,
            "val_fraction": 0.25,
        },  # fmt: skip
        "classify": classify,
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(s, sort_keys=False))  # the ladder's order
    run = run_study(path, out=tmp_path / "run")
    ladder = json.loads((run / "classify" / "ladder" / "ladder.json").read_text())
    assert [r["name"] for r in ladder["rungs"]] == ["faithful", "ring", "eq-sr"]
    assert LR_TRAINED in ladder["rungs"][0]["variants"]
    assert LR_TRAINED not in ladder["rungs"][1]["variants"]
    faithful, eq = ladder["rungs"][0], ladder["rungs"][2]
    assert (faithful["sr"], eq["sr"]) == ("fsrcnn-tiny", "fsrcnn-equivariant")
    assert eq["label"] == "eq-sr, SR fsrcnn-equivariant"
    assert eq["variants"]["HR"] == faithful["variants"]["HR"]  # the same classifier and images
    assert not (run / "classify" / "eq-sr" / "classifier").exists()
    audit = json.loads((run / "classify" / "audit" / "hallucination.json").read_text())
    assert audit["models"]["SR (cdm only)"]["trained_on"] == ["cdm"]
    html = (run / "report.html").read_text()
    assert "The ladder: DeepLense-faithful to realistic" in html
    assert ("Attribution" in html) == (audit["changed"]["count"] > 0)


def on_faithful_images(name: str, **settings) -> dict:
    """LADDER's faithful rung and rung ``name`` on its datasets with other ``settings``."""
    rung = {"dataset": "cls-faithful-train", "test": "cls-faithful-test", **settings}
    return {**LADDER, "ladder": {"faithful": LADDER["ladder"]["faithful"], name: rung}}


def test_a_rung_can_swap_the_classifier_on_another_rungs_images_and_share_its_sr(tmp_path):
    """Classifiers compared on the ladder: a rung naming the faithful rung's datasets with
    its own classifier config trains only its classifiers, on the faithful SR model."""
    ladder = on_faithful_images(
        "equivariant", classifier={"model": "equivariant-cnn", "lr": 1e-3}, baselines=False
    )
    stages = {s.name: s for s in plan_classification(study(ladder), tmp_path)}
    assert "classify:equivariant:sr-all" not in stages
    assert "classify:faithful:sr-all" in stages["classify:equivariant:eval"].deps
    own, base = stages["classify:equivariant:classifier"], stages["classify:faithful:classifier"]
    assert own.config["model"] == "equivariant-cnn" and own.config["lr"] == 1e-3
    assert base.config["model"] == "resnet18"
    assert base.config["model_kwargs"]["small_input"] is False
    assert own.config["model_kwargs"] == {}  # ResNet-18's stem option is not inherited
    bad = {**ladder, "ladder": {"x": {**ladder["ladder"]["faithful"], "classifier": {"lr": -1}}}}
    with pytest.raises(LensrError, match="classify.ladder.x.classifier"):
        plan_classification(study(bad), tmp_path)


def test_rows_of_other_classifiers_are_named_and_compared_on_the_same_images(tmp_path):
    same = {"dataset": "test.h5"}
    files = {
        "faithful": rung_file(tmp_path, "f", 0.77, 0.78, 0.77, classifier="ResNet-18", **same),
        "eq": rung_file(
            tmp_path, "e", 0.89, 0.70, 0.33, classifier="D4-invariant group CNN", **same
        ),  # fmt: skip
    }
    r = write_ladder(files, out_dir=tmp_path / "o", roles={"faithful": "faithful"})
    assert [x["label"] for x in r["rungs"]] == ["faithful, ResNet-18", "eq, D4-invariant group CNN"]
    text = r["verdict"][-1]
    assert text.startswith("On the eq, D4-invariant group CNN rung the HR-trained D4-invariant")
    assert "it is higher against the ResNet-18 on HR and lower on SR." in text


def test_a_rung_can_swap_the_sr_model_and_share_the_classifiers_of_its_training_set(tmp_path):
    """SR models compared on the ladder: a rung naming the faithful rung's datasets with its
    own SR settings trains its SR model and the classifier on its outputs, and shares the
    HR- and LR-trained classifiers; the audit keeps the faithful rung's."""
    ladder = on_faithful_images("eq-sr", sr={"model": "fsrcnn-equivariant", "lr": 2e-3})
    assert study(ladder).classify.role("realistic") is None  # the same images: not realistic
    stages = {s.name: s for s in plan_classification(study(ladder), tmp_path)}
    owned = {n.split(":")[2] for n in stages if n.startswith("classify:eq-sr:")}
    assert owned == {"sr-all", "sr-classifier", "eval"}
    deps = stages["classify:eq-sr:eval"].deps
    assert {"classify:faithful:classifier", "classify:faithful:lr-classifier"} <= set(deps)
    assert {"classify:eq-sr:sr-all", "classify:eq-sr:sr-classifier"} <= set(deps)
    assert "classify:faithful:sr-all" not in deps
    assert stages["classify:eq-sr:sr-all"].config["model"] == "fsrcnn-equivariant"
    assert stages["classify:eq-sr:sr-all"].config["lr"] == 2e-3
    assert stages["classify:faithful:sr-all"].config["model"] == "fsrcnn-tiny"
    assert "classify:eq-sr:sr-all" in stages["classify:eq-sr:sr-classifier"].deps
    assert "classify:faithful:sr-all" in stages["classify:audit"].deps
    # a rung without baselines does not borrow another rung's: it has none
    ladder["ladder"]["eq-sr"]["baselines"] = False
    deps = {s.name: s for s in plan_classification(study(ladder), tmp_path)}["classify:eq-sr:eval"]
    assert not any("-classifier" in d for d in deps.deps)
    bad = {**ladder, "ladder": {"x": {**ladder["ladder"]["faithful"], "sr": {"lr": -1}}}}
    with pytest.raises(LensrError, match="classify.ladder.x.sr"):
        plan_classification(study(bad), tmp_path)


def test_rows_of_other_sr_models_are_named_and_compared_on_the_same_images(tmp_path):
    same = {"classifier": "ResNet-18", "dataset": "test.h5"}
    files = {
        "faithful": rung_file(tmp_path, "f", 0.80, 0.78, 0.80, sr="rcan-tiny", **same),
        "eq": rung_file(tmp_path, "e", 0.80, 0.78, 0.60, sr="fsrcnn-equivariant", **same),
    }
    r = write_ladder(files, out_dir=tmp_path / "o", roles={"faithful": "faithful"})
    assert [x["label"] for x in r["rungs"]] == [
        "faithful, SR rcan-tiny",
        "eq, SR fsrcnn-equivariant",
    ]
    assert r["verdict"][-1] == (
        "On the test images of the faithful, SR rcan-tiny rung, under the same ResNet-18, the "
        "outputs of fsrcnn-equivariant score 0.600 [0.570, 0.630]: below those of rcan-tiny "
        "(0.800 [0.770, 0.830]) and below HR (0.800 [0.770, 0.830])."
    )
    assert r["roles"]["realistic"] is None  # a rung on the faithful images is not "realistic"
