"""The report section "Can we trust it?": built from evaluate's trust keys, robust to bad input."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from lensr.eval.evaluate import evaluate  # noqa: E402
from lensr.report import SECTIONS, build_report  # noqa: E402
from lensr.report.results import results_section  # noqa: E402
from lensr.report.trust import trust_section  # noqa: E402
from lensr.sim.config import load_sim_config  # noqa: E402
from lensr.sim.run import simulate  # noqa: E402

torch.set_num_threads(1)
CLASSES = ["none", "cdm", "axion"]


def _stat(mean: float, half: float = 0.01) -> dict:
    return {"mean": mean, "std": half, "ci_low": mean - half, "ci_high": mean + half, "n": 40}


def _per(block: dict) -> dict:
    return {"overall": block, "per_class": {c: block for c in CLASSES}}


def _model(name: str, *, psnr: float, ssim: float, chi2: float, within=None, proj=None) -> dict:
    overall = {"mse": _stat(1e-4), "psnr": _stat(psnr), "ssim": _stat(ssim)}
    m = {
        "name": name,
        "spec": name,
        "arch": name,
        "params": 0,
        "images_per_s": 100.0,
        "scores": {"clean": _per(overall), "noisy": _per(overall)},
        "chi2_lr": _per(_stat(chi2, 0.1)),
    }
    if within is not None:
        m["calibration"] = _per(
            {"within_1sigma": _stat(within[0]), "within_2sigma": _stat(within[1])}
        )
    if proj is not None:
        m["projected_from"] = proj
        m["projection"] = {"iterations": _stat(7.5)}
    return m


def _png(path: Path) -> None:
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.imshow(np.random.default_rng(0).random((8, 12)))
    fig.savefig(path, dpi=40)
    plt.close(fig)


def _metrics(**changes) -> dict:
    models = [
        _model("bicubic", psnr=34.0, ssim=0.95, chi2=3.5, within=(0.0, 0.0)),
        _model("rcan-tiny", psnr=36.0, ssim=0.97, chi2=1.2, within=(0.45, 0.7)),
        _model("bicubic+proj", psnr=35.5, ssim=0.949, chi2=0.98, proj="bicubic"),
        _model("rcan-tiny+proj", psnr=36.2, ssim=0.968, chi2=0.99, proj="rcan-tiny"),
    ]
    return {
        "dataset": "data/sim_test.h5",
        "n": 40,
        "scale": 2,
        "class_names": CLASSES,
        "targets": ["noisy", "clean"],
        "models": models,
        "figures": {"trust": "trust.png"},
        "examples": [],
        "gains_vs_bicubic": {},
        "trust": {
            "lr_instrument": "simulation",
            "uncertainty": "dihedral-tta-8",
            "calibration_target": "clean",
            "notes": [],
            "flagged": {},
        },
        **changes,
    }


def _run_dir(tmp_path: Path, metrics: dict | str, *, png: bool = True) -> Path:
    folder = tmp_path / "run" / "eval" / "sim"
    folder.mkdir(parents=True)
    text = metrics if isinstance(metrics, str) else json.dumps(metrics)
    (folder / "metrics.json").write_text(text)
    if png:
        _png(folder / "trust.png")
    return tmp_path / "run"


def test_section_shows_chi2_calibration_projection_and_figure(tmp_path):
    html = trust_section(_run_dir(tmp_path, _metrics()))
    assert html.startswith('<section id="trust">') and "<h2>Can we trust it?</h2>" in html
    assert "the simulated instrument" in html
    # chi2 with its interval, the fractions and the ideal row, and plain-language readings.
    assert '3.50 <span class="ci">[3.40, 3.60]</span>' in html
    assert "0.450" in html and "0.683" in html and "0.954" in html
    assert "inconsistent with the LR data" in html and "σ ≈ 0: no information" in html
    assert "consistent; σ too small (overconfident)" in html
    # The projection table: effect on PSNR/SSIM and chi2 before -> after.
    assert "+1.50" in html and "-0.0010" in html and "3.5 → 0.98" in html
    assert "7.5" in html
    assert 'src="data:image/png;base64,' in html


def test_without_trust_keys_there_is_no_section(tmp_path):
    metrics = _metrics()
    for m in metrics["models"]:
        m.pop("chi2_lr"), m.pop("calibration", None)
    metrics.pop("trust")
    assert trust_section(_run_dir(tmp_path, metrics)) is None
    assert trust_section(tmp_path / "nothing") is None


def test_notes_and_missing_pieces_are_shown_not_fatal(tmp_path):
    metrics = _metrics(figures={"trust": "trust.png"})
    metrics["models"] = [metrics["models"][0]]
    metrics["models"][0].pop("chi2_lr")
    metrics["trust"]["notes"] = ["LR-consistency skipped: no PSF"]
    html = trust_section(_run_dir(tmp_path, metrics, png=False))
    assert "LR-consistency skipped: no PSF" in html
    assert "trust.png is missing" in html
    assert "effect of the consistency projection" not in html


def test_a_malformed_file_becomes_a_note(tmp_path):
    metrics = _metrics()
    metrics["models"][1]["scores"] = "oops"
    html = trust_section(_run_dir(tmp_path, metrics))
    assert 'class="note"' in html and "could not be read" in html


def test_transfer_evaluations_are_included_and_the_figure_is_shown_once(tmp_path):
    run = _run_dir(tmp_path, _metrics())
    domain = run / "transfer" / "ground" / "eval"
    domain.mkdir(parents=True)
    (domain / "metrics.json").write_text(json.dumps(_metrics()))
    _png(domain / "trust.png")
    html = trust_section(run)
    assert "<h3>sim</h3>" in html and "<h3>transfer: ground</h3>" in html
    assert html.count('src="data:image/png;base64,') == 2
    results = results_section(run)
    assert results is not None and "data:image/png" not in results  # not repeated there


def test_the_section_follows_the_results():
    assert SECTIONS[SECTIONS.index(results_section) + 1] is trust_section


def test_a_real_evaluation_makes_the_section(tmp_path):
    data = simulate(load_sim_config("classify"), n=6, seed=0, out=tmp_path / "d.h5", progress=False)
    run = tmp_path / "run"
    evaluate(
        data, ["bilinear", "bicubic"], out_dir=run / "eval" / "classify", n_boot=50,
        progress=False, consistent=True, examples=2,
    )  # fmt: skip
    page = build_report(run).read_text()
    trust = page[page.index('<section id="trust">') :]
    trust = trust[: trust.index("</section>")]
    assert "bicubic+proj" not in trust.split("<table")[1]  # originals only in the first table
    assert "effect of the consistency projection" in trust
    assert trust.count('src="data:image/png;base64,') == 1
    assert page.index("<h2>Results</h2>") < page.index("<h2>Can we trust it?</h2>")
