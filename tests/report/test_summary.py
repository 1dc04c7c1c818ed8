"""Findings first: a tiny run folder in, the summary, significance and coverage parsed out."""

from __future__ import annotations

import json
import re
from pathlib import Path

from lensr.report import build_report


def _s(mean, half=0.1, **more):
    return {
        "mean": mean,
        "std": half,
        "ci_low": mean - half,
        "ci_high": mean + half,
        "n": 20,
        **more,
    }


def _model(name, params, noisy, clean, **more):
    def block(p):
        return {"overall": {"psnr": _s(p), "ssim": _s(0.9, 0.01), "mse": _s(1e-4, 1e-5)}}

    return {
        "name": name,
        "params": params,
        "images_per_s": 10.0,
        "scores": {"noisy": block(noisy), "clean": block(clean)},
        **more,
    }


def _pair(a, b, mean, half):
    d = _s(mean, half, significant=abs(mean) > half)
    return {"a": a, "b": b, "psnr": d, "ssim": _s(0.0, 0.01, significant=False)}


def _run(tmp_path: Path) -> Path:
    run = tmp_path / "run"

    def calib(w1, w2):
        return {"overall": {"within_1sigma": _s(w1, 0.01), "within_2sigma": _s(w2, 0.01)}}

    fit = {"a": 2.0, "b": 0.001, "within_1sigma": _s(0.69, 0.02), "within_2sigma": _s(0.95, 0.01)}
    levels = [0.1, 0.5, 0.683, 0.954, 0.99]
    fit["reliability"] = {"levels": levels, "raw": [v / 2 for v in levels], "calibrated": levels}
    metrics = {
        "dataset": "test.h5",
        "n": 20,
        "scale": 2,
        "targets": ["noisy", "clean"],
        "models": [
            _model("bicubic", 0, 30.0, 33.0),
            _model(
                "rcan-tiny",
                1000,
                33.5,
                42.5,
                chi2_lr={"overall": _s(0.9)},
                calibration=calib(0.30, 0.54),
                sigma_calibration=fit,
            ),
            _model(
                "srresnet-tiny",
                900,
                33.4,
                41.0,
                chi2_lr={"overall": _s(1.1)},
                calibration=calib(0.56, 0.83),
                sigma_calibration=fit,
            ),
        ],
        "gains_vs_bicubic": {
            t: {
                "rcan-tiny": {"psnr": _s(g1), "ssim": _s(0.1, 0.01)},
                "srresnet-tiny": {"psnr": _s(g2), "ssim": _s(0.1, 0.01)},
            }
            for t, g1, g2 in (("noisy", 3.5, 3.4), ("clean", 9.5, 8.0))
        },
        "paired": {
            "noisy": [_pair("rcan-tiny", "srresnet-tiny", 0.1, 0.3)],
            "clean": [_pair("rcan-tiny", "srresnet-tiny", 1.5, 0.2)],
        },
        "physics": {
            "models": {
                "bicubic": {"flux_error": _s(-0.05, 0.01), "radius_error": _s(0.004, 0.001)},
                "rcan-tiny": {"flux_error": _s(0.01, 0.005), "radius_error": _s(0.0005, 0.001)},
            }
        },
        "trust": {
            "lr_instrument": "simulation",
            "notes": [],
            "flagged": {},
            "truth_chi2_lr": _s(1.002, 0.01),
        },
    }
    (run / "eval" / "sim-test").mkdir(parents=True)
    (run / "eval" / "sim-test" / "metrics.json").write_text(json.dumps(metrics))
    names = ["bicubic", "m (sim only)", "m (ground only)", "m fine-tuned", "m ADDA"]
    transfer = {
        "dataset": "g.h5",
        "n": 12,
        "scale": 2,
        "targets": ["noisy"],
        "models": [
            _model(n, 0 if n == "bicubic" else 5, 30 + k, 30 + k)
            for k, n in zip([0, 1.0, 2.0, 2.05, 1.02], names, strict=False)
        ],
        "paired": {
            "noisy": [
                _pair("m fine-tuned", "m (ground only)", 0.05, 0.2),
                _pair("m fine-tuned", "m ADDA", 1.03, 0.2),
                _pair("m fine-tuned", "m (sim only)", 1.05, 0.2),
            ]
        },
    }
    (run / "transfer" / "ground" / "eval").mkdir(parents=True)
    (run / "transfer" / "ground" / "eval" / "metrics.json").write_text(json.dumps(transfer))
    return run


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def test_summary_comes_first_with_gains_significance_and_verdicts(tmp_path):
    html = build_report(_run(tmp_path)).read_text()
    first = html.index("<section")
    assert html[first:].startswith('<section id="summary-of-findings">')
    summary = _text(html[first : html.index("</section>", first)])
    assert "the best network by PSNR against the noise-free HR is rcan-tiny" in summary
    assert "+3.50 dB [+3.40, +3.60] against the noisy HR" in summary
    assert "+9.50 dB [+9.40, +9.60] against the noise-free HR" in summary
    assert "Runner-up srresnet-tiny" in summary
    # paired differences: a tie on the noisy HR, significant on the noise-free HR
    assert "+0.10 dB [-0.20, +0.40], tie (the interval covers 0) against the noisy HR" in summary
    assert "+1.50 dB [+1.30, +1.70], significant against the noise-free HR" in summary
    assert "LR χ²/pixel 0.90" in summary and "calibrated σ covers 69% / 95%" in summary
    assert "noise-free HR itself reads LR χ²/pixel 1.00" in summary
    assert "On ground: m: fine-tuning leads" in summary
    assert "it ties training from scratch" in summary and "it beats" in summary
    assert "Classification: not run." in summary
    assert "one training run (one seed)" in summary


def test_coverage_table_and_no_bold_for_a_tie(tmp_path):
    html = build_report(_run(tmp_path)).read_text()
    trust = html[html.index('<section id="trust">') :]
    table = trust[trust.index("<table>") : trust.index("</table>")]
    assert "calibrated σ (held out): within 1σ" in table
    cells = [
        re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r) for r in re.findall(r"<tr>.*?</tr>", table)
    ]
    rows = {_text(c[0]): _text(" ".join(c)) for c in cells}
    assert "0.6900 [0.6700, 0.7100]" in rows["rcan-tiny"]
    assert "0.9500 [0.9400, 0.9600]" in rows["rcan-tiny"]
    assert "noise-free HR (truth, measured)" in table
    assert "σ too small" in rows["srresnet-tiny"]  # 56 % within 1σ is not "roughly calibrated"
    results = html[html.index('<section id="results">') : html.index('<section id="trust">')]
    noisy = results[results.index("Against the noisy HR") : results.index("Against the noise-free")]
    assert "<strong>33.50" not in noisy  # rcan's 33.5 overlaps srresnet's 33.4: a tie
    assert "<strong>42.50" in results  # clear on the noise-free HR


def test_summary_states_physics_and_table_md_the_paired_differences(tmp_path):
    from lensr.eval.tables import markdown_tables

    run = _run(tmp_path)
    html = build_report(run).read_text()
    first = html.index("<section")
    summary = _text(html[first : html.index("</section>", first)]).replace("&#x27;", "'")
    # rcan's flux error (+1.00 % [+0.50, +1.50]) is closer to the truth than bicubic's -5 %;
    # its ring-radius interval covers 0, bicubic's (+3.0 .. +5.0 mas) does not.
    assert (
        "rcan-tiny's flux error in the arc region +1.00 % [+0.50, +1.50] against bicubic's "
        "-5.00 % [-6.00, -4.00] (closer to the truth)" in summary
    )
    assert (
        "ring-radius error +0.5 mas [-0.5, +1.5] against bicubic's +4.0 mas [+3.0, +5.0] "
        "(closer to the truth)" in summary
    )
    trust = html[html.index('<section id="trust">') :]
    assert "reliability diagrams" in trust
    assert (run / "report_assets" / "reliability_sim-test.png").is_file()
    metrics = json.loads((run / "eval" / "sim-test" / "metrics.json").read_text())
    text = markdown_tables(metrics)
    assert "Paired differences between models" in text
    tie = "| rcan-tiny − srresnet-tiny | +0.10 [-0.20, +0.40] | +0.0000 [-0.0100, +0.0100] | tie |"
    assert tie in text
    assert "| rcan-tiny − srresnet-tiny | +1.50 [+1.30, +1.70] |" in text
    assert "rcan-tiny better |" in text
