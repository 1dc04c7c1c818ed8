"""Every bad input a user can give, tried on the real entry point (``lensr.cli.main``).

Each case asserts the promise of lensr's CLI: exit status 2, exactly one line on stderr
that names the problem, and nothing left behind (the working folder and the inputs are
byte-for-byte as before). The table is grouped by command; ``CASES`` counts them.
"""

from __future__ import annotations

import json
import pickle
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from astropy.io import fits

from lensr.cli import main
from lensr.study.schema import study_path

# Inputs, made once per session (see `assets`): {h5} a 24-pair dataset, {nan_hr}/{nan_lr}
# copies with a NaN, {ckpt} an fsrcnn-tiny x2 checkpoint, {ckpt3} the same weights with a
# sidecar edited to scale 3, {npy} (2, 32, 32) LR images, {fits} one LR image, {folder}
# two .npy files, {notes} a text file, {undecodable} bytes that are not UTF-8, {badyaml}
# broken YAML, {listyaml} a YAML list, {out} the (empty) working folder.


def _sim(overrides) -> tuple[str, dict]:
    return ("sim", overrides)


# (id, argv, fragment of the expected message); argv items may hold {placeholders};
# ("sim", overrides) as the preset writes a preset YAML with those values.
SIM_PRESETS = [
    ("source.r_sersic", {"source": {"r_sersic": [-1, -1]}}),
    ("source.r_sersic", {"source": {"r_sersic": 0}}),
    ("source.q", {"source": {"q": [0, 0]}}),
    ("source.q", {"source": {"q": [0.5, 1.5]}}),
    ("source.q", {"source": {"q": -1}}),
    ("source.n_sersic", {"source": {"n_sersic": -2}}),
    ("source.n_sersic", {"source": {"n_sersic": [1, 0.5]}}),
    ("source.template_size", {"source": {"template_size": 0}}),
    ("source.components", {"source": {"components": -1}}),
    ("source.clumps", {"source": {"clumps": -1}}),
    ("source.template_probability", {"source": {"template_probability": 2}}),
    ("source.magnitude", {"source": {"magnitude": "bright"}}),
    ("unknown key", {"source": {"radius": 1}}),
    ("lens.theta_e", {"lens": {"theta_e": [-1, 1]}}),
    ("lens.theta_e", {"lens": {"theta_e": 0}}),
    ("lens.q", {"lens": {"q": 0}}),
    ("lens.q", {"lens": {"q": [0.5, 2]}}),
    ("lens.q", {"lens": {"q": -0.5}}),
    ("lens.shear", {"lens": {"shear": -0.1}}),
    ("lens.light.probability", {"lens": {"light": {"probability": 1.5}}}),
    ("lens.light.r_sersic", {"lens": {"light": {"r_sersic": -1}}}),
    ("lens.light.q", {"lens": {"light": {"q": 0}}}),
    ("lens.light.n_sersic", {"lens": {"light": {"n_sersic": 0}}}),
    ("noise.snr", {"noise": {"snr": [0, 0]}}),
    ("noise.snr", {"noise": {"snr": -5}}),
    ("noise.snr", {"noise": {"snr": [10, 5]}}),
    ("noise.correlated_sigma", {"noise": {"correlated_sigma": -1}}),
    ("noise.cosmic_rays", {"noise": {"cosmic_rays": -1}}),
    ("noise.offset", {"noise": {"offset": 2}}),
    ("noise.offset", {"noise": {"offset": -0.1}}),
    ("hr_size", {"hr_size": -64}),
    ("hr_size", {"hr_size": 0}),
    ("hr_size", {"hr_size": 4}),
    ("hr_size", {"hr_size": 65}),
    ("hr_size", {"hr_size": 100000}),
    ("hr_size", {"hr_size": "big"}),
    ("hr_pixel_scale", {"hr_pixel_scale": 0}),
    ("hr_pixel_scale", {"hr_pixel_scale": -0.05}),
    ("scale", {"scale": 5}),
    ("scale", {"scale": 0}),
    ("supersampling", {"supersampling": 0}),
    ("supersampling", {"supersampling": 100}),
    ("adaptive_threshold", {"adaptive_threshold": -1}),
    ("adaptive_threshold", {"adaptive_threshold": 1}),
    ("classes", {"classes": []}),
    ("classes", {"classes": ["none", "none"]}),
    ("classes", {"classes": ["dark"]}),
    ("cosmology.H0", {"cosmology": {"H0": 0}}),
    ("cosmology.H0", {"cosmology": {"H0": -70}}),
    ("cosmology.Om0", {"cosmology": {"Om0": 1.5}}),
    ("z_source", {"cosmology": {"z_lens": 1.0, "z_source": 0.5}}),
    ("cosmology.z_lens", {"cosmology": {"z_lens": -1}}),
    ("cdm.n_mean", {"cdm": {"n_mean": -1}}),
    ("cdm.mass", {"cdm": {"mass": [-1, 1e9]}}),
    ("cdm.mass", {"cdm": {"mass": 0}}),
    ("cdm.radius", {"cdm": {"radius": -1}}),
    ("cdm.profile", {"cdm": {"profile": "nfw"}}),
    ("axion.total_mass", {"axion": {"total_mass": 0}}),
    ("axion.n_points", {"axion": {"n_points": 1}}),
    ("axion.length_coeff", {"axion": {"length_coeff": -1}}),
    ("hr.psf.fwhm", {"hr": {"psf": {"fwhm": 0}}}),
    ("hr.psf.fwhm", {"hr": {"psf": {"fwhm": -0.1}}}),
    ("hr.psf.type", {"hr": {"psf": {"type": "airy"}}}),
    ("lr.psf.beta", {"lr": {"psf": {"beta": 1}}}),
    ("lr.psf.beta", {"lr": {"psf": {"beta": 0.5}}}),
    ("hr.exposure_time", {"hr": {"exposure_time": 0}}),
    ("hr.exposure_time", {"hr": {"exposure_time": -5}}),
    ("hr.read_noise", {"hr": {"read_noise": -1}}),
    ("lr.num_exposures", {"lr": {"num_exposures": 0}}),
    ("hr.background_rms", {"hr": {"background_rms": -1}}),
    ("name", {"name": ["x"]}),
    ("unknown key", {"bogus": 1}),
]

SIMULATE = [
    (["--n", "0"], "--n"),
    (["--n", "-5"], "--n"),
    (["--n", "abc"], "--n"),
    (["--workers", "0"], "--workers"),
    (["--workers", "-1"], "--workers"),
    (["--seed", "-1"], "--seed"),
    (["--seed", "abc"], "--seed"),
    (["--shard", "3/3"], "0 <= K < N"),
    (["--shard", "a/b"], "K/N"),
    (["--shard", "1/0"], "--shard"),
    (["--shard", "-1/2"], "--shard"),
    (["--shard", "5"], "K/N"),
    (["--preset", "nosuch"], "unknown preset"),
    (["--preset", "{out}/missing.yaml"], "does not exist"),
    (["--preset", "{undecodable}"], "not UTF-8"),
    (["--preset", "{badyaml}"], "invalid YAML"),
    (["--preset", "{listyaml}"], "mapping"),
    (["--engine", "bogus"], "engine"),
    (["--bogus"], "No such option"),
]
SIMULATE_OUT = [
    ("{out}/x.txt", "should end in .h5"),
    ("{h5}", "already exists"),
    ("{folder_h5}", "is a directory"),
    ("{notes}/child.h5", "not a directory"),
    ("/sys/lensr-x.h5", "/sys/lensr-x.h5"),
    ("/proc/lensr/x.h5", "/proc/lensr"),
]

CASES: list[tuple[str, list[str], str]] = []
for i, (fragment, overrides) in enumerate(SIM_PRESETS):
    CASES.append((f"preset-{i}-{fragment}", ["simulate", "--preset", ("sim", overrides),
                  "--n", "2", "--out", "{out}/s.h5"], fragment))  # fmt: skip
for i, (args, fragment) in enumerate(SIMULATE):
    base = ["simulate", "--preset", "classify", "--n", "2", "--out", "{out}/s.h5"]
    CASES.append((f"simulate-{i}", base + args, fragment))
for i, (out, fragment) in enumerate(SIMULATE_OUT):
    CASES.append((f"simulate-out-{i}", ["simulate", "--preset", "classify", "--n", "2",
                  "--out", out], fragment))  # fmt: skip
CASES += [
    ("simulate-no-out", ["simulate", "--n", "2"], "--out"),
    ("merge-missing", ["merge", "{out}/nosuch.h5", "--out", "{out}/m.h5"], "does not exist"),
    ("merge-text", ["merge", "{notes}", "--out", "{out}/m.h5"], "notes"),
    ("merge-exists", ["merge", "{h5}", "--out", "{h5}"], "already exists"),
    ("merge-overlap", ["merge", "{h5}", "{h5}", "--out", "{out}/m.h5"], "overlaps"),
    ("merge-suffix", ["merge", "{h5}", "--out", "{out}/m.txt"], ".h5"),
    ("merge-nan", ["merge", "{out}/a.h5", "--out", "{out}/b.h5"], "does not exist"),
    ("inspect-missing", ["inspect", "{out}/nosuch.h5"], "does not exist"),
    ("inspect-text", ["inspect", "{notes}"], "not a readable HDF5"),
    ("inspect-undecodable", ["inspect", "{undecodable}"], "not a readable HDF5"),
    ("inspect-per-class-neg", ["inspect", "{h5}", "--per-class", "-1"], "--per-class"),
    ("inspect-per-class-0", ["inspect", "{h5}", "--per-class", "0"], "--per-class"),
    ("inspect-png-sys", ["inspect", "{h5}", "--png", "/sys/lensr-x.png"], "lensr-x.png"),
    ("inspect-png-suffix", ["inspect", "{h5}", "--png", "{out}/p.txt"], "--png"),
    ("inspect-folder", ["inspect", "{folder}"], "folder"),
    ("import-missing", ["import", "{out}/nosuch", "--out", "{out}/i.h5"], "nosuch"),
    ("import-exists", ["import", "{pairs}", "--out", "{h5}"], "already exists"),
    ("import-suffix", ["import", "{pairs}", "--out", "{out}/i.txt"], ".h5"),
    ("import-layout", ["import", "{pairs}", "--out", "{out}/i.h5", "--layout", "bogus"],
     "layout"),
    ("import-scale-0", ["import", "{pairs}", "--out", "{out}/i.h5", "--scale", "0"], "scale"),
    ("import-unknown-layout", ["import", "{folder}", "--out", "{out}/i.h5"], "layout"),
    ("import-text", ["import", "{notes}", "--out", "{out}/i.h5"], "notes"),
]

TRAIN = [
    (["--data", "{out}/nosuch.h5"], "does not exist"),
    (["--data", "{notes}"], "not a readable HDF5"),
    (["--data", "{nan_hr}"], "NaN"),
    (["--data", "{nan_lr}"], "NaN"),
    (["--model", "nosuch"], "nosuch"),
    (["--model", "bicubic"], "bicubic"),
    (["--precision", "bogus"], "precision"),
    (["--accelerator", "gpu"], "accelerator"),
    (["--accelerator", "bogus"], "accelerator"),
    (["--patch", "0"], "patch"),
    (["--patch", "1000"], "patch"),
    (["--batch-size", "0"], "batch_size"),
    (["--lr", "-1"], "lr"),
    (["--lr", "0"], "lr"),
    (["--epochs", "-1"], "epochs"),
    (["--max-steps", "-5"], "max_steps"),
    (["--loss", "bogus"], "loss"),
    (["--ema", "2"], "ema"),
    (["--threads", "0"], "threads"),
    (["--config", "{out}/nosuch.yaml"], "does not exist"),
    (["--config", "{undecodable}"], "not UTF-8"),
    (["--config", "{badyaml}"], "invalid YAML"),
    (["--config", "{listyaml}"], "mapping"),
    (["--config", "{unknown_key_yaml}"], "unknown key"),
    (["--preset", "classify"], "exactly one"),
    (["--seed", "x"], "--seed"),
]


def _train_case(i, extra, fragment):
    args = ["train", "--out", "{out}/run", "--model", "fsrcnn-tiny", "--max-steps", "2"]
    args += [] if "--patch" in extra else ["--patch", "16"]
    if "--data" not in extra:
        args += ["--data", "{h5}"]
    return (f"train-{i}", args + extra, fragment)


CASES += [_train_case(i, extra, frag) for i, (extra, frag) in enumerate(TRAIN)]
CASES += [
    ("train-neither", ["train", "--out", "{out}/run"], "exactly one"),
    ("train-out-file", ["train", "--data", "{h5}", "--out", "{notes}"], "is a file"),
    ("train-out-sys", ["train", "--data", "{h5}", "--patch", "16", "--out", "/sys/lensr-run"],
     "lensr-run"),
    ("train-resume-none", ["train", "--data", "{h5}", "--out", "{out}/run", "--resume"],
     "cannot resume"),
    ("train-resume-noconfig", ["train", "--data", "{h5}", "--out", "{run_noconfig}",
     "--resume"], "train_config.json is missing"),
    ("train-resume-badconfig", ["train", "--data", "{h5}", "--out", "{run_badconfig}",
     "--resume"], "unreadable"),
    ("train-resume-truncated", ["train", "--data", "{h5}", "--out", "{run_truncated}",
     "--resume"], "not a readable checkpoint"),
    ("train-resume-pickle", ["train", "--data", "{h5}", "--out", "{run_pickle}",
     "--resume"], "not a readable checkpoint"),
    ("train-preset-unknown", ["train", "--preset", "nosuch", "--out", "{out}/run"],
     "nosuch"),
    ("lr-sweep-missing", ["lr-sweep", "--data", "{out}/n.h5", "--out", "{out}/s"],
     "does not exist"),
    ("lr-sweep-lrs", ["lr-sweep", "--data", "{h5}", "--out", "{out}/s", "--lrs", "a,b"],
     "lrs"),
    ("lr-sweep-steps", ["lr-sweep", "--data", "{h5}", "--out", "{out}/s", "--steps", "0",
     "--patch", "16"],
     "steps"),
    ("train-physics-missing", ["train-physics", "--data", "{out}/n.h5", "--out",
     "{out}/p"], "does not exist"),
    ("train-physics-epochs", ["train-physics", "--data", "{h5}", "--out", "{out}/p",
     "--epochs", "-1"], "epochs"),
    ("finetune-model", ["finetune", "--model", "{out}/n.safetensors", "--data", "{h5}",
     "--out", "{out}/f"], "n.safetensors"),
    ("finetune-data", ["finetune", "--model", "{ckpt}", "--data", "{out}/n.h5", "--out",
     "{out}/f"], "does not exist"),
    ("adda-source", ["adda", "--model", "{ckpt}", "--source", "{out}/n.h5", "--target",
     "{h5}", "--out", "{out}/a"], "does not exist"),
    ("adda-model", ["adda", "--model", "nosuch", "--source", "{h5}", "--target", "{h5}",
     "--out", "{out}/a"], "nosuch"),
]

UPSCALE = [
    (["{out}/nosuch.npy", "--out", "{out}/o.npy"], "no such file"),
    (["{notes}", "--out", "{out}/o.npy"], "unsupported file type"),
    (["{corrupt_npy}", "--out", "{out}/o.npy"], "corrupt"),
    (["{rgb_npy}", "--out", "{out}/o.npy"], "channels"),
    (["{empty_npy}", "--out", "{out}/o.npy"], "no pixels"),
    (["{nan_npy}", "--out", "{out}/o.npy"], "NaN"),
    (["{five_d_npy}", "--out", "{out}/o.npy"], "shape"),
    (["{object_npy}", "--out", "{out}/o.npy"], "object"),
    (["{corrupt_fits}", "--out", "{out}/o.fits"], "corrupt"),
    (["{empty_folder}", "--out", "{out}/o"], "empty folder"),
    (["{folder}", "--out", "{out}/o.npy"], "must be a folder"),
    (["{npy}", "--out", "{out}/o.fits"], "must end in .npy"),
    (["{npy}", "--out", "{npy}"], "is the input"),
    (["{npy}", "--out", "{npy_exists}"], "already exists"),
    (["{h5}", "--out", "{h5_exists}"], "already exists"),
    (["{folder}", "--out", "{folder}/sub"], "inside the input"),
    (["{npy}", "--out", "/sys/lensr-x.npy"], "lensr-x.npy"),
    (["{npy}", "--out", "{notes}/x.npy"], "not a folder"),
]
UPSCALE_OPTIONS = [
    (["--model", "nosuch"], "nosuch"),
    (["--model", "{notes}"], "notes"),
    (["--model", "{ckpt3}"], "scale"),
    (["--model", "{ckpt}", "--scale", "3"], "scale 3"),
    (["--model", "{ckpt}", "--scale", "0"], "scale"),
    (["--model", "bicubic", "--units", "bogus"], "units"),
    (["--model", "bicubic", "--batch-size", "0"], "batch"),
    (["--model", "bicubic", "--tile", "-1"], "tile"),
    (["--model", "bicubic", "--overlap", "-1"], "overlap"),
    (["--model", "bicubic", "--device", "bogus"], "device"),
    (["--model", "bicubic", "--consistent"], "lr-psf-fwhm"),
    (["--model", "bicubic", "--consistent", "--lr-psf-fwhm", "50", "--pixel-scale", "0.1"],
     "kernel"),
    (["--model", "bicubic", "--consistent", "--lr-psf-fwhm", "-1", "--pixel-scale", "0.1"],
     "fwhm"),
    (["--model", "bicubic", "--consistent", "--lr-psf-fwhm", "0.2", "--pixel-scale", "0"],
     "pixel"),
    (["--model", "{ckpt}", "--model", "{ckpt}"], "--uncertainty"),
    (["--model", "bicubic", "--sky", "bogus"], "sky"),
    (["--model", "bicubic", "--pixel-scale", "0"], "--pixel-scale must be a positive"),
    (["--model", "bicubic", "--lr-psf-fwhm", "-0.5"], "--lr-psf-fwhm must be a positive"),
    (["--model", "bicubic", "--pixel-scale", "nan"], "--pixel-scale must be a positive"),
]
for i, (args, fragment) in enumerate(UPSCALE):
    CASES.append((f"upscale-{i}", ["upscale", *args, "--model", "bicubic"], fragment))
for i, (args, fragment) in enumerate(UPSCALE_OPTIONS):
    CASES.append((f"upscale-opt-{i}", ["upscale", "{npy}", "--out", "{out}/o.npy", *args],
                  fragment))  # fmt: skip

CASES += [
    ("evaluate-missing", ["evaluate", "--data", "{out}/n.h5", "--out", "{out}/e"],
     "does not exist"),
    ("evaluate-text", ["evaluate", "--data", "{notes}", "--out", "{out}/e"], "HDF5"),
    ("evaluate-model", ["evaluate", "--data", "{h5}", "--models", "nosuch", "--out",
     "{out}/e"], "nosuch"),
    ("evaluate-baseline", ["evaluate", "--data", "{h5}", "--baselines", "bogus", "--out",
     "{out}/e"], "bogus"),
    ("evaluate-max-images", ["evaluate", "--data", "{h5}", "--max-images", "0", "--out",
     "{out}/e"], "max"),
    ("evaluate-batch", ["evaluate", "--data", "{h5}", "--batch-size", "0", "--out",
     "{out}/e"], "batch"),
    ("evaluate-device", ["evaluate", "--data", "{h5}", "--device", "bogus", "--out",
     "{out}/e"], "device"),
    ("evaluate-out-file", ["evaluate", "--data", "{h5}", "--out", "{notes}"], "notes"),
    ("evaluate-psf", ["evaluate", "--data", "{npy}", "--out", "{out}/e"], "npy"),
    ("classify-train-missing", ["classify", "train", "--data", "{out}/n.h5", "--out",
     "{out}/c"], "does not exist"),
    ("classify-eval-missing", ["classify", "eval", "--data", "{out}/n.h5", "--classifier",
     "{ckpt}", "--out", "{out}/c"], "n.h5"),
    ("classify-unknown", ["classify", "bogus"], "bogus"),
    ("report-missing", ["report", "{out}/nosuch"], "nosuch"),
    ("report-file", ["report", "{notes}"], "notes"),
    ("run-unknown-study", ["run", "nosuch", "--out", "{out}/r"], "unknown study"),
    ("run-undecodable", ["run", "{undecodable_yaml}", "--out", "{out}/r"], "not UTF-8"),
    ("run-invalid", ["run", "{badyaml}", "--out", "{out}/r"], "invalid YAML"),
    ("run-list", ["run", "{listyaml}", "--out", "{out}/r"], "mapping"),
    ("run-unknown-model", ["run", "{study_bad_model}", "--out", "{out}/r"], "nosuch-net"),
    ("run-unknown-dataset", ["run", "{study_bad_dataset}", "--out", "{out}/r"],
     "unknown dataset"),
    ("run-bad-preset-value", ["run", "{study_bad_preset}", "--out", "{out}/r"], "q"),
    ("run-force", ["run", "demo", "--out", "{out}/r", "--force", "bogus"], "bogus"),
    ("no-command", ["nosuch"], "No such command"),
]


@pytest.fixture(scope="session")
def assets(tmp_path_factory, tiny_h5, sr_ckpts) -> dict[str, str]:
    """The inputs of the bad-input cases (see the module docstring)."""
    root = tmp_path_factory.mktemp("bad-inputs")
    a = {"h5": str(tiny_h5), "ckpt": sr_ckpts[0]}
    for name, array in (("hr", "nan_hr"), ("lr", "nan_lr")):
        path = root / f"{array}.h5"
        shutil.copy(tiny_h5, path)
        with h5py.File(path, "r+") as f:
            f[name][3, 5, 5] = np.nan
        a[array] = str(path)
    ckpt3 = root / "edited" / "m.safetensors"
    ckpt3.parent.mkdir()
    shutil.copy(sr_ckpts[0], ckpt3)
    sidecar = json.loads(Path(sr_ckpts[0]).with_suffix(".json").read_text())
    sidecar["scale"], sidecar["kwargs"]["scale"] = 3, 3
    ckpt3.with_suffix(".json").write_text(json.dumps(sidecar))
    a["ckpt3"] = str(ckpt3)
    rng = np.random.default_rng(0)
    arrays = {
        "npy": rng.random((2, 32, 32), dtype=np.float32),
        "npy_exists": np.zeros((2, 64, 64), np.float32),
        "rgb_npy": np.zeros((3, 32, 32), np.float32),
        "empty_npy": np.zeros((0, 32, 32), np.float32),
        "nan_npy": np.full((32, 32), np.nan, np.float32),
        "five_d_npy": np.zeros((1, 1, 1, 8, 8), np.float32),
    }
    for name, array in arrays.items():
        np.save(root / f"{name}.npy", array)
        a[name] = str(root / f"{name}.npy")
    np.save(root / "object_npy.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    a["object_npy"] = str(root / "object_npy.npy")
    (root / "corrupt.npy").write_bytes(b"\x93NUMPY garbage")
    a["corrupt_npy"] = str(root / "corrupt.npy")
    (root / "corrupt.fits").write_bytes(b"SIMPLE  = nonsense" + b" " * 100)
    a["corrupt_fits"] = str(root / "corrupt.fits")
    fits.PrimaryHDU(arrays["npy"][0]).writeto(root / "img.fits")
    a["fits"] = str(root / "img.fits")
    folder = root / "folder"
    folder.mkdir()
    for k in range(2):
        np.save(folder / f"i{k}.npy", arrays["npy"][k])
    a["folder"] = str(folder)
    for band, size in (("HR", 64), ("LR", 32)):
        (root / "pairs" / band).mkdir(parents=True)
        np.save(root / "pairs" / band / "sample0.npy", np.ones((1, size, size), np.float32))
    a["pairs"] = str(root / "pairs")
    (root / "empty").mkdir()
    a["empty_folder"] = str(root / "empty")
    (root / "dir.h5").mkdir()
    a["folder_h5"] = str(root / "dir.h5")
    shutil.copy(tiny_h5, root / "exists.h5")
    a["h5_exists"] = str(root / "exists.h5")
    (root / "notes.txt").write_text("not data\n")
    a["notes"] = str(root / "notes.txt")
    (root / "undecodable.yaml").write_bytes(b"\x89\xff")
    a["undecodable"] = a["undecodable_yaml"] = str(root / "undecodable.yaml")
    (root / "bad.yaml").write_text("a: [1\n")
    a["badyaml"] = str(root / "bad.yaml")
    (root / "list.yaml").write_text("- 1\n- 2\n")
    a["listyaml"] = str(root / "list.yaml")
    (root / "unknown.yaml").write_text("bogus_key: 1\n")
    a["unknown_key_yaml"] = str(root / "unknown.yaml")
    # Run folders for `train --resume` that are broken in one way each.
    config = {"model": "fsrcnn-tiny"}
    for name, cfg_text, ckpt_bytes in (
        ("run_noconfig", None, b"x"),
        ("run_badconfig", "{not json", b"x"),
        ("run_truncated", "{}", b"PK\x03\x04trunc"),
        ("run_pickle", "{}", pickle.dumps(config)),
    ):
        run = root / name
        (run / "lightning").mkdir(parents=True)
        (run / "lightning" / "last.ckpt").write_bytes(ckpt_bytes)
        if cfg_text is not None:
            (run / "train_config.json").write_text(cfg_text)
        a[name] = str(run)
    # Studies, each broken in one way.
    base = yaml.safe_load(study_path("demo").read_text())
    for name, edit in (
        ("study_bad_model", lambda s: next(iter(s["models"].values()))["train"].update(
            model="nosuch-net")),
        ("study_bad_dataset", lambda s: next(iter(s["models"].values())).update(
            dataset="nosuch-data")),
        ("study_bad_preset", lambda s: next(iter(s["datasets"].values())).update(
            overrides={"lens": {"q": 0}})),
    ):  # fmt: skip
        study = json.loads(json.dumps(base))
        edit(study)
        (root / f"{name}.yaml").write_text(yaml.safe_dump(study))
        a[name] = str(root / f"{name}.yaml")
    return a


def _tree(folder: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


def _argv(args, assets: dict, work: Path, inputs: Path) -> list[str]:
    out = []
    for arg in args:
        if isinstance(arg, tuple):  # ("sim", overrides): a preset file with those values
            path = inputs / "preset.yaml"
            path.write_text(yaml.safe_dump({"name": "bad", **arg[1]}))
            arg = str(path)
        out.append(arg.format(out=work, **assets))
    return out


@pytest.mark.parametrize(("args", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(
    args, fragment, assets, tmp_path, monkeypatch, capsys
):
    work, inputs = tmp_path / "work", tmp_path / "inputs"
    work.mkdir()
    inputs.mkdir()
    argv = _argv(args, assets, work, inputs)
    asset_root = Path(assets["notes"]).parent
    before = _tree(asset_root)
    monkeypatch.chdir(work)
    monkeypatch.setattr(sys, "argv", ["lensr", *argv])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert fragment.lower() in err.lower(), err
    assert "Traceback" not in err
    assert _tree(work) == {}, "left behind in the working folder"
    assert _tree(asset_root) == before, "an input was changed"


def test_the_suite_tries_at_least_200_distinct_bad_inputs():
    distinct = {json.dumps(c[1], default=str) for c in CASES}
    assert len(CASES) == len(distinct) >= 200, len(distinct)
