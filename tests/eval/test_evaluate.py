"""`lensr evaluate`: the metrics.json schema, CSV, tables, paired gains, errors, figures."""

import csv
import json
import shutil

import h5py
import numpy as np
import pytest
import torch

from lensr.data.store import open_dataset
from lensr.errors import LensrError
from lensr.eval import evaluate_outputs
from lensr.eval.evaluate import evaluate
from lensr.eval.evaluate_outputs import example_positions
from lensr.eval.figures import auto_zoom, comparison_figure
from lensr.eval.model_runs import display_name, unique_names
from lensr.models import create_model
from lensr.models.checkpoint import save_checkpoint
from lensr.sim.config import load_sim_config
from lensr.sim.run import simulate

torch.set_num_threads(1)

N = 12
BOOT = {"n_boot": 200, "progress": False}
S_KEYS = {"mean", "std", "ci_low", "ci_high", "n"}
METRICS = {"mse", "psnr", "ssim"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 12-image classify set (64 px HR, x2), a x2 checkpoint and a x4 checkpoint."""
    root = tmp_path_factory.mktemp("eval")
    data = simulate(load_sim_config("classify"), n=N, seed=0, out=root / "d.h5", progress=False)
    torch.manual_seed(0)
    meta = {"normalization": {"name": "lr-percentile", "percentile": 99.5}}
    ckpt = save_checkpoint(
        create_model("fsrcnn-tiny"),
        root / "runs/a/models/fsrcnn-tiny/best.safetensors",
        metadata=meta,
    )
    x4 = save_checkpoint(
        create_model("fsrcnn-tiny", scale=4), root / "x4/best.safetensors", metadata=meta
    )
    return {"root": root, "data": data, "ckpt": str(ckpt), "x4": str(x4)}


@pytest.fixture(scope="module")
def run(files):
    """One full evaluation (two baselines and a checkpoint) with figures."""
    out = files["root"] / "out"
    result = evaluate(files["data"], ["bilinear", "bicubic", files["ckpt"]], out_dir=out, **BOOT)
    return result, out


def _check_s(s):
    assert set(s) == S_KEYS
    assert isinstance(s["n"], int)
    assert s["ci_low"] <= s["mean"] <= s["ci_high"]


def test_metrics_json_has_exactly_the_schema(run, files):
    result, out = run
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == result
    assert list(result) == [
        "dataset", "n", "scale", "class_names", "targets",
        "models", "figures", "examples", "gains_vs_bicubic", "paired", "physics", "trust",
    ]  # fmt: skip
    assert result["dataset"] == str(files["data"])
    assert (result["n"], result["scale"]) == (N, 2)
    assert result["class_names"] == ["none", "cdm", "axion"]
    assert result["targets"] == ["noisy", "clean"]
    assert result["figures"] == {
        "comparison": "comparison.png", "residuals": "residuals.png", "trust": "trust.png",
    }  # fmt: skip
    assert result["examples"] == [2, 6, 10]
    assert [m["name"] for m in result["models"]] == ["bilinear", "bicubic", "fsrcnn-tiny"]
    for m in result["models"]:
        trained = {"sigma_calibration"} if m["params"] else set()  # held-out calibration fit
        assert set(m) == {"name", "spec", "arch", "params", "images_per_s", "scores"} | {
            "chi2_lr", "calibration",  # trust measures: see tests/eval/test_consistency.py
        } | trained  # fmt: skip
        assert m["images_per_s"] > 0 and isinstance(m["params"], int)
        assert set(m["scores"]) == {"noisy", "clean"}
        for target in m["scores"].values():
            assert set(target) == {"overall", "per_class"}
            assert set(target["per_class"]) == {"none", "cdm", "axion"}
            for summary in [target["overall"], *target["per_class"].values()]:
                assert set(summary) == METRICS
                for s in summary.values():
                    _check_s(s)
    ckpt = result["models"][2]
    assert (ckpt["spec"], ckpt["arch"], ckpt["params"]) == (files["ckpt"], "fsrcnn-tiny", 5233)
    assert set(result["gains_vs_bicubic"]) == {"noisy", "clean"}
    for gains in result["gains_vs_bicubic"].values():
        assert set(gains) == {"bilinear", "fsrcnn-tiny"}
        for g in gains.values():
            assert set(g) == {"psnr", "ssim"}
            _check_s(g["psnr"]), _check_s(g["ssim"])


def test_per_class_n_sums_to_overall_n(run):
    for m in run[0]["models"]:
        for target in m["scores"].values():
            for metric in METRICS:
                total = sum(c[metric]["n"] for c in target["per_class"].values())
                assert total == target["overall"][metric]["n"] == N


def test_csv_has_a_row_per_model_target_and_image(run):
    result, out = run
    with open(out / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == [
        "model", "target", "index", "label", "class", "mse", "psnr", "ssim",
        "chi2_lr", "within_1sigma", "within_2sigma",
    ]  # fmt: skip
    assert len(rows) == 3 * 2 * N
    assert {(r["model"], r["target"]) for r in rows} == {
        (m, t) for m in ("bilinear", "bicubic", "fsrcnn-tiny") for t in ("noisy", "clean")
    }
    psnr = [float(r["psnr"]) for r in rows if r["model"] == "bicubic" and r["target"] == "clean"]
    mean = result["models"][1]["scores"]["clean"]["overall"]["psnr"]["mean"]
    assert np.mean(psnr) == pytest.approx(mean, abs=1e-12)


def test_bicubic_scores_match_scikit_image(run, files):
    """The bicubic row recomputed independently: torch's bicubic, the README's min-max
    convention, and scikit-image's MSE, PSNR and SSIM (Wang et al. settings)."""
    from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

    result = run[0]
    with h5py.File(files["data"]) as f:
        lr, hr, clean = (f[k][:].astype(np.float64) for k in ("lr", "hr", "hr_clean"))
    sr = torch.nn.functional.interpolate(
        torch.from_numpy(lr)[:, None], scale_factor=2, mode="bicubic", align_corners=False
    )[:, 0].numpy()
    scores = result["models"][1]["scores"]
    for target, truth in (("noisy", hr), ("clean", clean)):
        per = {m: [] for m in METRICS}
        for p, t in zip(sr, truth, strict=True):
            lo, span = t.min(), t.max() - t.min()
            p, t = (p - lo) / span, (t - lo) / span
            per["mse"].append(mean_squared_error(t, p))
            per["psnr"].append(peak_signal_noise_ratio(t, p, data_range=1.0))
            per["ssim"].append(
                structural_similarity(
                    t, p, data_range=1.0, gaussian_weights=True, sigma=1.5,
                    use_sample_covariance=False,
                )
            )  # fmt: skip
        for metric in METRICS:
            got = scores[target]["overall"][metric]["mean"]
            assert got == pytest.approx(np.mean(per[metric]), rel=1e-5), (target, metric)


def test_gains_are_paired_differences(run):
    result = run[0]
    gains = result["gains_vs_bicubic"]["clean"]["bilinear"]
    by_name = {m["name"]: m["scores"]["clean"]["overall"] for m in result["models"]}
    diff = by_name["bilinear"]["psnr"]["mean"] - by_name["bicubic"]["psnr"]["mean"]
    assert gains["psnr"]["mean"] == pytest.approx(diff, abs=1e-9)
    # Paired: the interval of the difference is far narrower than either model's own.
    width = gains["psnr"]["ci_high"] - gains["psnr"]["ci_low"]
    assert width < by_name["bicubic"]["psnr"]["ci_high"] - by_name["bicubic"]["psnr"]["ci_low"]


def test_a_model_against_itself_gains_nothing(files, tmp_path):
    result = evaluate(
        files["data"], ["bicubic", "bicubic"], names=["bicubic", "bicubic-copy"],
        out_dir=tmp_path, examples=0, **BOOT,
    )  # fmt: skip
    for target in ("noisy", "clean"):
        gain = result["gains_vs_bicubic"][target]
        assert list(gain) == ["bicubic-copy"]
        for metric in ("psnr", "ssim"):
            assert all(gain["bicubic-copy"][metric][k] == 0 for k in S_KEYS - {"n"})
    assert result["figures"] == {} and result["examples"] == []
    assert "+0.00 [+0.00, +0.00]" in (tmp_path / "table.md").read_text()


def test_without_bicubic_there_are_no_gains(files, tmp_path):
    with open_dataset(files["data"]) as ds:
        result = evaluate(ds, ["bilinear"], out_dir=tmp_path, examples=0, **BOOT)
        assert len(ds.lr[:2]) == 2  # an open dataset passed in stays open
    assert result["gains_vs_bicubic"] == {}
    assert "Gain over" not in (tmp_path / "table.md").read_text()


def test_noise_free_data_gives_equal_targets(files, tmp_path):
    data = tmp_path / "clean.h5"
    shutil.copy(files["data"], data)
    with h5py.File(data, "r+") as f:
        f["hr"][...] = f["hr_clean"][...]
    result = evaluate(data, ["bilinear", "bicubic"], out_dir=tmp_path / "o", examples=0, **BOOT)
    for m in result["models"]:
        assert m["scores"]["noisy"] == m["scores"]["clean"]


def test_same_seed_same_outputs(files, tmp_path):
    def once(out):
        r = evaluate(
            files["data"], ["bilinear", files["ckpt"]], out_dir=out, seed=3, examples=0, **BOOT
        )
        for m in r["models"]:
            m.pop("images_per_s")  # wall-clock time: the one thing that may differ
        return r, (out / "metrics.csv").read_bytes()

    assert once(tmp_path / "a") == once(tmp_path / "b")


def test_table_bolds_the_best_and_lists_every_model(run):
    text = (run[1] / "table.md").read_text()
    assert text.count("| model | params | MSE |") == 2
    assert "## Against the noisy HR" in text and "## Against the noise-free HR" in text
    assert text.count("| bicubic |") == 3  # two score tables and the trust table
    # bold only where the best's interval clears the runner-up's (else a tie: no bold)
    psnr = {m["name"]: m["scores"]["clean"]["overall"]["psnr"] for m in run[0]["models"]}
    ranked = sorted(psnr.values(), key=lambda v: -v["mean"])
    clear = ranked[0]["ci_low"] > ranked[1]["ci_high"]
    assert ("**" in text.split("## Against the noise-free HR")[1].split("Gain")[0]) or not clear
    assert "| fsrcnn-tiny | 5,233 |" in text


@pytest.mark.parametrize(
    ("models", "data", "message"),
    [
        (["nope"], None, "'nope' is neither a baseline model"),
        (["x4"], None, "upscales x4, but dataset"),
        (["bicubic"], "missing.h5", "does not exist"),
        ([], None, "no models to evaluate"),
    ],
)
def test_user_errors_are_one_line_and_write_nothing(files, tmp_path, models, data, message):
    models = [files.get(m, m) for m in models]
    data = tmp_path / data if data else files["data"]
    with pytest.raises(LensrError) as info:
        evaluate(data, models, out_dir=tmp_path / "out", **BOOT)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_a_failure_leaves_no_metrics_json(files, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("figure failed")

    monkeypatch.setattr(evaluate_outputs, "comparison_figure", broken)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="figure failed"):
        evaluate(files["data"], ["bicubic"], out_dir=out, **BOOT)
    assert list(out.iterdir()) == []  # the temporary files are gone too


def test_figures_are_real_pngs(run):
    import matplotlib.image

    out = run[1]
    for name in ("comparison.png", "residuals.png"):
        path = out / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 20_000
        pixels = matplotlib.image.imread(path)
        assert pixels.shape[0] > 400 and pixels[..., :3].std() > 0.05
    assert not list(out.glob(".*"))


def test_auto_zoom_finds_the_bright_structure(tmp_path):
    img = np.zeros((64, 64))
    img[40:48, 10:18] = 1.0
    y, x, size = auto_zoom(img)
    assert size == 16 and y <= 40 and y + size >= 48 and x <= 10 and x + size >= 18
    with pytest.raises(LensrError, match="does not fit"):
        comparison_figure(
            img[None, ::2, ::2], {"m": img[None]}, img[None], tmp_path / "c.png", zoom=(60, 0, 8)
        )


def test_names_and_examples():
    assert display_name("bicubic") == "bicubic"
    assert display_name("runs/x/models/rcan-tiny/best.safetensors") == "rcan-tiny"
    assert display_name("runs/x/models/rcan-tiny/last.safetensors") == "rcan-tiny-last"
    assert display_name("ckpts/rcan_v2.safetensors") == "rcan_v2"
    assert unique_names(["a", "a", "b", "a"]) == ["a", "a-2", "b", "a-3"]
    assert example_positions(12, 3) == [2, 6, 10]
    assert example_positions(2, 5) == [0, 1]
