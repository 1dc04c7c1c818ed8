"""The study engine: a tiny end-to-end run, caching, forced and changed stages, bad configs,
the transfer, classification and physics stages, and the shipped studies."""

import json
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
import yaml

from lensr.config import load
from lensr.errors import LensrError
from lensr.study import PLANNERS, StudyConfig, run_study, study_path

STUDY = {
    "name": "tiny",
    "seed": 0,
    "threads": 1,
    "datasets": {
        "train": {"preset": "classify", "n": 24},
        "test": {"preset": "classify", "n": 6},
    },
    "lr_sweep": {
        "dataset": "train",
        "model": "fsrcnn-tiny",
        "lrs": [1e-3, 1e-2],
        "steps": 4,
        "points": 2,
    },
    "train_defaults": {
        "patch": 16,
        "batch_size": 4,
        "max_val_images": 4,
        "val_fraction": 0.25,
        "max_epochs": 1,
    },
    "models": {"f": {"dataset": "train", "train": {"model": "fsrcnn-tiny"}}},
    "evaluate": {"t": {"dataset": "test", "models": ["f"]}},
}


class Headings(HTMLParser):
    def __init__(self):
        super().__init__()
        self.h2, self._in = [], False

    def handle_starttag(self, tag, attrs):
        self._in = tag == "h2"

    def handle_data(self, data):
        if self._in and data.strip():
            self.h2.append(data.strip())
            self._in = False


def write(path, study):
    path.write_text(yaml.safe_dump(study))
    return path


def statuses(run_dir):
    return {
        k: v["status"]
        for k, v in json.loads((run_dir / "stages.json").read_text())["stages"].items()
    }


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_tiny_study_end_to_end_then_cached_then_changed(tmp_path):
    config = write(tmp_path / "study.yaml", STUDY)
    run_dir = run_study(config, out=tmp_path / "run")
    assert set(statuses(run_dir).values()) == {"done"}
    parser = Headings()
    parser.feed((run_dir / "report.html").read_text())
    for section in ("Data", "Learning rate", "Training", "Results", "Pipeline", "Environment"):
        assert any(section in h for h in parser.h2), (section, parser.h2)
    best = run_dir / "models" / "f" / "best.safetensors"
    mtime = best.stat().st_mtime_ns

    # Unchanged config: nothing runs, nothing is rewritten.
    run_study(config, out=run_dir)
    assert set(statuses(run_dir).values()) == {"cached"}
    assert best.stat().st_mtime_ns == mtime

    # A changed training budget reruns that model and what reads it, nothing else.
    changed = json.loads(json.dumps(STUDY))
    changed["models"]["f"]["train"]["lr"] = 1e-3
    run_study(write(tmp_path / "study.yaml", changed), out=run_dir)
    s = statuses(run_dir)
    assert s["train:f"] == s["eval:t"] == s["report"] == "done"
    assert s["data:train"] == s["data:test"] == s["lr_sweep"] == "cached"

    # --force reruns one stage and its dependants.
    run_study(config := write(tmp_path / "study.yaml", changed), out=run_dir, force=["data:test"])
    s = statuses(run_dir)
    assert s["data:test"] == s["eval:t"] == "done" and s["train:f"] == "cached"
    with pytest.raises(LensrError, match="no such stage"):
        run_study(config, out=run_dir, force=["train:nope"])


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"models": {"f": {"dataset": "nope"}}}, "models.f refers to unknown dataset 'nope'"),
        ({"evaluate": {"t": {"dataset": "test", "models": ["g"]}}}, "unknown model 'g'"),
        (
            {
                "datasets": {
                    **STUDY["datasets"],
                    "train": {"preset": "classify", "n": 24, "overrides": {"hr_size": 63}},
                }
            },
            "not a multiple of scale",
        ),
        ({"train_defaults": {"patchsize": 3}}, "unknown key 'patchsize'"),
        ({"train_defaults": {"devices": 2, "strategy": "ddp"}}, "each stage on one device"),
    ],
)
def test_bad_study_configs_fail_before_any_work(tmp_path, patch, message):
    config = write(tmp_path / "s.yaml", {**STUDY, **patch})
    with pytest.raises(LensrError, match=message) as info:
        run_study(config, out=tmp_path / "run")
    assert "\n" not in str(info.value) and len(str(info.value)) < 300
    assert not (tmp_path / "run" / "data").exists()


def test_transfer_and_classification_stages_reach_the_report(tmp_path):
    shrink = {"hr_size": 64, "hr_pixel_scale": 0.08}
    study = {
        **STUDY,
        "lr_sweep": None,
        "evaluate": {},
        "datasets": {
            **STUDY["datasets"],
            "obs-train": {"preset": "observed", "n": 20, "overrides": shrink},
            "obs-test": {"preset": "observed", "n": 6, "overrides": shrink},
        },
        "transfer": {
            "source": "train",
            "models": ["f"],
            "domains": {"observed": {"train": "obs-train", "test": "obs-test"}},
            "finetune": {
                "stage1_epochs": 1,
                "stage2_epochs": 1,
                "batch_size": 4,
                "patch": 16,
                "val_fraction": 0.25,
            },
            "adda": {
                "steps": 3,
                "batch_size": 4,
                "patch": 16,
                "val_every": 3,
                "val_fraction": 0.25,
            },
        },
        "classify": {
            "dataset": "train",
            "test": "test",
            "classifier": {
                "max_epochs": 1,
                "batch_size": 8,
                "model_kwargs": {"small_input": False},
            },
            "sr": {"model": "fsrcnn-tiny"},
        },
    }
    run_dir = run_study(write(tmp_path / "s.yaml", study), out=tmp_path / "run")
    names = [
        m["name"]
        for m in json.loads(
            (run_dir / "transfer" / "observed" / "eval" / "metrics.json").read_text()
        )["models"]
    ]
    assert names == [
        "bilinear",
        "bicubic",
        "f (sim only)",
        "f (observed only)",
        "f fine-tuned",
        "f ADDA",
    ]
    audit = json.loads((run_dir / "classify" / "audit" / "hallucination.json").read_text())
    assert set(audit["variants"]) == {
        "HR",
        "SR (all classes)",
        "SR (cdm only)",
        "SR (cdm only) + projection",
    }
    assert "projection" in audit
    parser = Headings()
    parser.feed((run_dir / "report.html").read_text())
    assert any("Transfer" in h for h in parser.h2) and any("Classification" in h for h in parser.h2)


def test_a_physics_model_is_trained_and_scored_beside_the_others(tmp_path):
    # That physics training never reads HR images: tests/train/test_physics_train.py.
    study = {
        **STUDY,
        "lr_sweep": None,
        "models": {
            **STUDY["models"],
            "p": {
                "dataset": "train",
                "kind": "physics",
                "train": {
                    "max_epochs": 1,
                    "batch_size": 4,
                    "max_val_images": 4,
                    "val_fraction": 0.25,
                    "refine_steps": 1,
                    "model_kwargs": {"n_feats": 8, "n_blocks": 1, "cg_iters": 3},
                },
            },
        },
        "evaluate": {"t": {"dataset": "test", "models": ["f", "p"], "uncertainty": False}},
    }
    run_dir = run_study(write(tmp_path / "s.yaml", study), out=tmp_path / "run")
    metrics = json.loads((run_dir / "eval" / "t" / "metrics.json").read_text())
    assert [m["name"] for m in metrics["models"]][-2:] == ["f", "p"]
    saved = json.loads((run_dir / "models" / "p" / "best.json").read_text())
    assert saved["arch"] == "physics-tiny"
    # Scored like the others, on every test image, against both targets.
    p = next(m for m in metrics["models"] if m["name"] == "p")
    for target in ("noisy", "clean"):
        psnr = p["scores"][target]["overall"]["psnr"]
        assert psnr["n"] == metrics["n"] and np.isfinite(psnr["mean"]) and psnr["mean"] > 10


def test_transfer_refuses_a_physics_model(tmp_path):
    study = {
        **STUDY,
        "models": {"p": {"dataset": "train", "kind": "physics"}},
        "evaluate": {},
        "transfer": {"source": "train", "models": ["p"], "domains": {}},
    }
    with pytest.raises(LensrError, match="'p' is not a supervised model"):
        run_study(write(tmp_path / "s.yaml", study), out=tmp_path / "run")


@pytest.mark.parametrize("name", ["demo", "paper"])
def test_shipped_studies_validate_and_plan_every_stage(tmp_path, name):
    study = load(StudyConfig, study_path(name))
    planned = [s for planner in PLANNERS for s in planner(study, tmp_path)]
    stages = [s.name for s in planned]
    assert len(stages) == len(set(stages))
    for i, stage in enumerate(planned):  # every stage reads only stages planned before it
        assert set(stage.deps) <= set(stages[:i]), stage.name
    assert {f"data:{d}" for d in study.datasets} <= set(stages)
    assert {f"train:{m}" for m in study.models} <= set(stages)
    assert "classify:audit" in stages and any(s.startswith("transfer:ground") for s in stages)
    assert not any(tmp_path.iterdir())  # planning does no work


@pytest.mark.parametrize("text", ["- 1\n- 2\n", "words\n"])
def test_a_study_that_is_not_a_mapping_is_one_line_naming_the_file(tmp_path, text):
    config = tmp_path / "s.yaml"
    config.write_text(text)
    with pytest.raises(LensrError, match="expected a mapping") as info:
        run_study(config, out=tmp_path / "run")
    assert str(config) in str(info.value) and "\n" not in str(info.value)
