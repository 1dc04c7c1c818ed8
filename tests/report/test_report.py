"""`lensr report`: a fake study run folder in, one self-contained HTML page out, parsed back."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lensr.errors import LensrError  # noqa: E402
from lensr.report import SECTIONS, build_report, section  # noqa: E402
from lensr.report.components import fmt, fmt_stat  # noqa: E402
from lensr.report.plots import training_curves_figure  # noqa: E402

HEADINGS = [
    "Summary of findings",
    "Data",
    "Learning rate",
    "Training",
    "Results",
    "Pipeline",
    "Environment",
]
CLASSES = ["none", "cdm", "axion"]


def _png(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.imshow(np.random.default_rng(seed).random((8, 12)), cmap="magma")
    fig.savefig(path, dpi=40)
    plt.close(fig)


def _stat(mean: float, half: float) -> dict:
    return {"mean": mean, "std": 3 * half, "ci_low": mean - half, "ci_high": mean + half, "n": 40}


def _scores(psnr: float, ssim: float, mse: float) -> dict:
    overall = {"mse": _stat(mse, mse / 10), "psnr": _stat(psnr, 0.1), "ssim": _stat(ssim, 0.002)}
    per_class = {
        c: {
            "mse": _stat(mse * (1 + k / 10), mse / 10),
            "psnr": _stat(psnr - k / 4, 0.2),
            "ssim": _stat(ssim - k / 100, 0.003),
        }
        for k, c in enumerate(CLASSES)
    }
    return {"overall": overall, "per_class": per_class}


EVAL = {
    "dataset": "data/sim_test.h5",
    "n": 40,
    "scale": 2,
    "class_names": CLASSES,
    "targets": ["noisy", "clean"],
    "models": [
        {
            "name": "bicubic",
            "spec": "bicubic",
            "arch": "bicubic",
            "params": 0,
            "images_per_s": 812.5,
            "scores": {
                "noisy": _scores(31.2468, 0.81234, 7.5e-4),
                "clean": _scores(33.1111, 0.84444, 4.9e-4),
            },
        },
        {
            "name": "rcan-tiny",
            "spec": "models/rcan-tiny/best.safetensors",
            "arch": "rcan",
            "params": 123456,
            "images_per_s": 95.25,
            "scores": {
                "noisy": _scores(32.7531, 0.85678, 5.31e-4),
                "clean": _scores(36.4242, 0.91357, 2.28e-4),
            },
        },
    ],
    "gains_vs_bicubic": {
        "noisy": {"rcan-tiny": {"psnr": _stat(1.5063, 0.11), "ssim": _stat(0.04444, 0.003)}},
        "clean": {"rcan-tiny": {"psnr": _stat(3.3131, 0.21), "ssim": _stat(0.06913, 0.004)}},
    },
    "figures": {"comparison": "comparison.png", "residuals": "residuals.png"},
    "examples": [3, 17],
}

CSV_HEADER = (
    "epoch,step,train_loss_step,train_loss_epoch,val_loss,val_psnr,val_ssim,"
    "val_psnr_clean,val_ssim_clean"
)


def _metrics_csv(path: Path, start: int, epochs: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [CSV_HEADER]
    for e in range(epochs):
        step = start + 10 * (e + 1)
        lines.append(f"{e},{step - 1},{0.1 / (e + 1):.4f},,,,,,")
        lines.append(f"{e},{step - 1},,,{0.05 / (e + 1)},{28 + e},{0.8 + e / 100},{30 + e},0.85")
        lines.append(f"{e},{step - 1},,{0.09 / (e + 1):.4f},,,,,")
    path.write_text("\n".join(lines) + "\n")


def _model(run: Path, name: str, psnr: float) -> None:
    folder = run / "models" / name
    _metrics_csv(folder / "logs" / "version_0" / "metrics.csv", 0, 2)
    _metrics_csv(folder / "logs" / "version_1" / "metrics.csv", 20, 2)  # a resumed attempt
    sidecar = {
        "arch": "rcan",
        "kwargs": {"n_groups": 2},
        "scale": 2,
        "metrics": {
            "val_loss": 0.0123,
            "val_psnr": psnr,
            "val_ssim": 0.87654,
            "val_psnr_clean": psnr + 2,
            "val_ssim_clean": 0.9,
        },
        "epoch": 3,
        "step": 40,
        "training": {"lr": 0.0003, "model": name},
        "data": {"path": "data/sim_train.h5"},
    }
    (folder / "best.json").write_text(json.dumps(sidecar))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    (run / "study.yaml").write_text("name: demo <study>\nseed: 0\nmodels: [rcan-tiny]\n")
    stages = {
        "simulate": {"status": "done", "seconds": 12.5, "finished": "2024-05-01T10:00:00",
                     "outputs": ["data/sim_train.h5"]},
        "train": {"status": "skipped(cached)", "seconds": 0.01, "finished": "2024-05-01T10:05:00",
                  "outputs": ["models/rcan-tiny"]},
        "evaluate": {"status": "done", "seconds": 185.0, "finished": "2024-05-01T10:08:00",
                     "outputs": ["eval/sim_test"]},
    }  # fmt: skip
    (run / "stages.json").write_text(json.dumps({"stages": stages}))
    env = {"lensr": "0.1.0", "python": "3.11.9", "torch": "2.3.1", "lightning": "2.4.0",
           "lenstronomy": "1.14.0", "numpy": "1.26.4", "platform": "Linux-x86_64",
           "device": "cpu", "threads": 2, "seed": 0}  # fmt: skip
    (run / "environment.json").write_text(json.dumps(env))
    summary = {
        "path": "data/sim_train.h5", "n": 1200, "hr_shape": [150, 150], "lr_shape": [75, 75],
        "scale": 2, "classes": {"none": 400, "cdm": 400, "axion": 400}, "preset": "sim",
        "units": "surface-brightness",
        "hr": {"min": -0.01, "p50": 0.02, "p99": 0.7, "max": 1.3},
        "lr": {"min": -0.005, "p50": 0.02, "p99": 0.6, "max": 1.1},
        "hr_clean": {"min": 0.0, "p50": 0.019, "p99": 0.69, "max": 1.25},
        "snr": {"how": "simulated", "hr": {"p5": 20.0, "p50": 45.5, "p95": 80.0},
                "lr": {"p5": 30.0, "p50": 61.25, "p95": 99.0}},
    }  # fmt: skip
    (run / "data" / "sim_train.json").write_text(json.dumps(summary))
    _png(run / "data" / "sim_train.png", 1)
    sweep = {"model": "rcan-tiny", "steps": 200, "best_lr": 0.0003,
             "curves": {"0.0001": [[40, 0.05], [200, 0.02]], "0.0003": [[40, 0.04], [200, 0.0137]],
                        "0.001": [[40, 0.06], [200, 0.03]]}}  # fmt: skip
    (run / "lr_sweep").mkdir()
    (run / "lr_sweep" / "lr_sweep.json").write_text(json.dumps(sweep))
    _png(run / "lr_sweep" / "lr_sweep.png", 2)
    _model(run, "rcan-tiny", 31.98765)
    _model(run, "srresnet", 30.5)
    folder = run / "eval" / "sim_test"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(EVAL))
    (folder / "table.md").write_text("| model | psnr |\n")
    _png(folder / "comparison.png", 3)
    _png(folder / "residuals.png", 4)
    return run


class _Page(HTMLParser):
    """Collects headings, image sources, links and the visible text of a page."""

    def __init__(self):
        super().__init__()
        self.headings: dict[str, list[str]] = {"h1": [], "h2": [], "h3": [], "h4": []}
        self.srcs: list[str] = []
        self.hrefs: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if "src" in attrs:
            self.srcs.append(attrs["src"])
        if "href" in attrs:
            self.hrefs.append(attrs["href"])
        if tag in self.headings:
            self._in, self.headings[tag] = tag, [*self.headings[tag], ""]

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        self.text.append(data)
        if self._in:
            self.headings[self._in][-1] += data

    @property
    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def test_full_report_sections_images_and_numbers(run_dir: Path):
    path = build_report(run_dir)
    assert path == run_dir / "report.html"
    page = _parse(path)
    assert page.headings["h2"] == HEADINGS
    assert "demo <study>" in page.headings["h1"][0]  # escaped in the source, text when parsed
    assert "<study>" not in path.read_text()
    assert {"noisy HR", "noise-free HR"} <= {
        h.removeprefix("Against the ") for h in page.headings["h4"]
    }
    assert page.srcs, "no images"
    assert len(page.srcs) == 5  # preview, sweep, training curves, comparison, residuals
    for src in page.srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    for link in page.srcs + page.hrefs:
        assert not link.lower().startswith(("http:", "https:", "file:", "//", "/"))
        assert link.startswith(("data:", "#"))
    assert "script" not in page.tags
    assert "link" not in page.tags
    assert (run_dir / "report_assets" / "training_curves.png").exists()

    text = page.all_text
    for number in ("36.42", "0.9136", "2.28e-04", "31.25", "0.8123", "7.50e-04", "123.5 k"):
        assert number in text, number
    assert "[36.32, 36.52]" in text  # the CI
    assert "+3.31" in text and "+0.0691" in text  # gains vs bicubic
    assert "+1.51 dB [+1.40, +1.62] against the noisy HR" in text  # findings first
    assert "+3.31 dB [+3.10, +3.52] against the noise-free HR over bicubic" in text
    assert "31.99" in text and "0.8765" in text  # best.json validation metrics
    assert "1,200" in text and "61.25" in text  # dataset summary
    assert "0.0003" in text and "0.0137" in text  # sweep
    assert "3 min 05 s" in text and "skipped(cached)" in text  # pipeline
    assert "lenstronomy" in text and "1.14.0" in text and "seed: 0" in text  # environment
    assert "could not be read" not in text


def test_best_values_are_bold_and_per_class_is_collapsible(run_dir: Path):
    source = build_report(run_dir).read_text()
    assert "<strong>36.42" in source and "<strong>2.28e-04" in source
    assert "<strong>33.11" not in source
    results = source[source.index('<section id="results">') :]
    assert results.count("<details>") == 2  # per-class tables, one per target
    assert "axion" in results.split("<details>")[1]
    data = source[source.index('<section id="data">') : source.index('<section id="results">')]
    assert data.count("<details>") == 1  # the dataset's block, collapsed under the overview


def test_malformed_metrics_gives_a_note_not_a_crash(run_dir: Path):
    (run_dir / "eval" / "sim_test" / "metrics.json").write_text("{not json")
    bad = run_dir / "eval" / "broken"
    bad.mkdir()
    (bad / "metrics.json").write_text(json.dumps({"dataset": "x", "n": 1}))
    (run_dir / "models" / "srresnet" / "best.json").write_text("[]")
    (run_dir / "stages.json").write_text(json.dumps({"nothing": 1}))
    page = _parse(build_report(run_dir))
    text = page.all_text
    assert "eval/sim_test/metrics.json could not be read: bad JSON" in text
    assert "eval/broken/metrics.json could not be read: missing key 'models'" in text
    assert "models/srresnet/best.json could not be read" in text
    assert "stages.json could not be read: missing key 'stages'" in text
    assert page.headings["h2"] == HEADINGS  # everything else still there
    assert "31.99" in text  # rcan-tiny's row survives


def test_a_broken_section_builder_becomes_a_note(run_dir: Path):
    def broken(run_dir: Path) -> str | None:
        raise RuntimeError("boom")

    def extra(run_dir: Path) -> str | None:
        return section("Trust", "<p>hallucination audit</p>")

    page = _parse(build_report(run_dir, sections=[*SECTIONS, broken, extra]))
    assert page.headings["h2"] == [*HEADINGS, "Trust"]
    assert "section broken failed: RuntimeError: boom" in page.all_text
    assert "#trust" in page.hrefs


def test_partial_run_has_only_its_sections(tmp_path: Path):
    run = tmp_path / "partial"
    run.mkdir()
    (run / "environment.json").write_text(json.dumps({"python": "3.11"}))
    out = build_report(run, out=tmp_path / "elsewhere" / "r.html")
    assert out == tmp_path / "elsewhere" / "r.html"
    assert _parse(out).headings["h2"] == ["Environment"]


def test_missing_or_empty_run_dir_is_a_lensr_error(tmp_path: Path):
    with pytest.raises(LensrError, match="does not exist"):
        build_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LensrError, match="nothing to report"):
        build_report(tmp_path / "empty")


def test_number_formatting():
    assert fmt(31.2468, kind="psnr") == "31.25"
    assert fmt(0.812345, kind="ssim") == "0.8123"
    assert fmt(0.000123456, kind="mse") == "1.23e-04"
    assert fmt(1.5, kind="psnr", sign=True) == "+1.50"
    assert fmt(None) == "–" and fmt(float("nan"), kind="psnr") == "–"
    assert fmt(1200) == "1,200"
    assert fmt_stat({"mean": 1.0, "ci_low": 0.5, "ci_high": 1.5}, kind="psnr").startswith("1.00 ")


def test_training_curves_figure(run_dir: Path, tmp_path: Path):
    models = {d.name: d for d in sorted((run_dir / "models").iterdir())}
    path = training_curves_figure(models, tmp_path / "curves.png")
    image = mpimg.imread(path)
    assert image.shape[1] > image.shape[0] > 100
    assert not list(tmp_path.glob("*.partial*"))


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_headless_chromium_renders_the_page(run_dir: Path, tmp_path: Path):
    path = build_report(run_dir)
    shot = tmp_path / "shot.png"
    cmd = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
        "--window-size=1200,2000", path.resolve().as_uri(),
    ]  # fmt: skip
    subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    assert shot.exists(), "chromium made no screenshot"
    pixels = mpimg.imread(shot)
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    assert float(pixels[..., :3].var()) > 1e-3  # not a blank page


def test_datasets_are_listed_in_the_study_order(run_dir: Path):
    summary = (run_dir / "data" / "sim_train.json").read_text()
    for name in ("a_test", "z_extra"):
        (run_dir / "data" / f"{name}.json").write_text(summary)
    (run_dir / "study.yaml").write_text(
        "name: demo\ndatasets:\n  sim_train: {n: 1}\n  a_test: {n: 1}\n"
    )
    source = build_report(run_dir).read_text()
    data = source[source.index('<section id="data">') : source.index('<section id="results">')]
    order = [data.index(f"<td>{n}</td>") for n in ("sim_train", "a_test", "z_extra")]
    assert order == sorted(order)
    assert data.count("<details>") == 3
