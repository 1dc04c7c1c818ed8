"""The Markdown tables of an ``evaluate`` run (``table.md``), made from its ``metrics.json``.

Per target (noisy and noise-free HR): a table of MSE, PSNR and SSIM with 95 % intervals
and throughput, best values in bold, the paired gains over bicubic and the paired
differences between every two models below it; then the
"Can we trust it?" table (LR chi-square and sigma calibration per model) with the notes.

Example::

    print(markdown_tables(json.loads(Path("eval/metrics.json").read_text())))
"""

from __future__ import annotations

from pathlib import Path

from lensr.eval.model_runs import REFERENCE
from lensr.eval.trust_measures import CALIBRATION_KEYS

TARGET_TITLES = {"noisy": "noisy HR", "clean": "noise-free HR"}


def _fmt_ci(s: dict, digits: int, *, signed: bool = False) -> tuple[str, str]:
    f = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    return f.format(s["mean"]), f"[{f.format(s['ci_low'])}, {f.format(s['ci_high'])}]"


def _fmt_rate(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def _bold_best(values: list[str], *, higher: bool) -> list[str]:
    """Bold every entry whose displayed number equals the best displayed number."""
    if len(values) < 2:
        return values
    nums = [float(v.replace(",", "")) for v in values]
    best = max(nums) if higher else min(nums)
    return [f"**{v}**" if x == best else v for v, x in zip(values, nums, strict=True)]


def clear_best(summaries: list[dict], *, higher: bool) -> int | None:
    """The position of the best mean when its 95 % interval does not overlap the runner-up's
    (a clear winner), else None (a tie: nothing is bolded).

    Example::

        clear_best([{"mean": 2, "ci_low": 1.5, "ci_high": 2.5},
                    {"mean": 1, "ci_low": 0.5, "ci_high": 1.4}], higher=True)   # 0
    """
    if len(summaries) < 2:
        return None
    sign = 1.0 if higher else -1.0
    order = sorted(range(len(summaries)), key=lambda i: -sign * summaries[i]["mean"])
    best, second = summaries[order[0]], summaries[order[1]]
    apart = best["ci_low"] > second["ci_high"] if higher else best["ci_high"] < second["ci_low"]
    return order[0] if apart else None


def _bold_at(values: list[str], position: int | None) -> list[str]:
    return [f"**{v}**" if i == position else v for i, v in enumerate(values)]


def _target_table(models: list[dict], target: str) -> list[str]:
    rows = [m["scores"][target]["overall"] for m in models]
    mse = _bold_at(
        [f"{r['mse']['mean']:.3e}" for r in rows],
        clear_best([r["mse"] for r in rows], higher=False),
    )
    psnr = [_fmt_ci(r["psnr"], 2) for r in rows]
    ssim = [_fmt_ci(r["ssim"], 4) for r in rows]
    psnr_mean = _bold_at([p[0] for p in psnr], clear_best([r["psnr"] for r in rows], higher=True))
    ssim_mean = _bold_at([s[0] for s in ssim], clear_best([r["ssim"] for r in rows], higher=True))
    rate = _bold_best([_fmt_rate(m["images_per_s"]) for m in models], higher=True)
    lines = [
        "| model | params | MSE | PSNR (dB) [95 % CI] | SSIM [95 % CI] | upscale img/s |",
        "|:--|--:|--:|--:|--:|--:|",
    ]
    for i, m in enumerate(models):
        lines.append(
            f"| {m['name']} | {m['params']:,} | {mse[i]} | {psnr_mean[i]} {psnr[i][1]} "
            f"| {ssim_mean[i]} {ssim[i][1]} | {rate[i]} |"
        )
    return lines


def _gain_table(gains: dict[str, dict]) -> list[str]:
    lines = [
        f"Gain over {REFERENCE} (per-image differences, paired bootstrap):",
        "",
        "| model | ΔPSNR (dB) [95 % CI] | ΔSSIM [95 % CI] |",
        "|:--|--:|--:|",
    ]
    for name, g in gains.items():
        p, s = _fmt_ci(g["psnr"], 2, signed=True), _fmt_ci(g["ssim"], 4, signed=True)
        lines.append(f"| {name} | {p[0]} {p[1]} | {s[0]} {s[1]} |")
    return lines


def _paired_table(pairs: list[dict]) -> list[str]:
    """Every pair of models, a minus b over the same images (paired bootstrap); "tie"
    where the 95 % interval covers 0."""
    lines = [
        "Paired differences between models (a − b over the same images, paired bootstrap; "
        "tie: the 95 % interval covers 0):",
        "",
        "| a − b | ΔPSNR (dB) [95 % CI] | ΔSSIM [95 % CI] | PSNR verdict |",
        "|:--|--:|--:|:--|",
    ]
    for pair in pairs:
        p, s = _fmt_ci(pair["psnr"], 2, signed=True), _fmt_ci(pair["ssim"], 4, signed=True)
        if not pair["psnr"].get("significant"):
            verdict = "tie"
        else:
            verdict = f"{pair['a'] if pair['psnr']['mean'] > 0 else pair['b']} better"
        lines.append(f"| {pair['a']} − {pair['b']} | {p[0]} {p[1]} | {s[0]} {s[1]} | {verdict} |")
    return lines


def markdown_tables(result: dict) -> str:
    """The ``table.md`` text of an ``evaluate`` result (or a loaded ``metrics.json``).

    Example::

        print(markdown_tables(json.loads(Path("eval/metrics.json").read_text())))
    """
    lines = [
        f"# Evaluation on {Path(result['dataset']).name} (n = {result['n']}, x{result['scale']})",
        "",
        "Per image, the HR target is min-max normalised to [0, 1] and the prediction mapped "
        "the same way (data range 1); mean over images [95 % bootstrap CI]. "
        "Best value per column in bold only where its interval clears the runner-up's.",
    ]
    for target in result["targets"]:
        lines += ["", f"## Against the {TARGET_TITLES[target]}", ""]
        lines += _target_table(result["models"], target)
        gains = result.get("gains_vs_bicubic", {}).get(target)
        if gains:
            lines += [""] + _gain_table(gains)
        pairs = (result.get("paired") or {}).get(target)
        if pairs:
            lines += [""] + _paired_table(pairs)
    lines += _trust_table(result)
    return "\n".join(lines) + "\n"


def _trust_table(result: dict) -> list[str]:
    """The "Can we trust it?" part of table.md: LR chi2 and sigma calibration per model."""
    trust = result.get("trust") or {}
    models = [m for m in result["models"] if "chi2_lr" in m or "calibration" in m]
    notes = [f"Note: {n}" for n in trust.get("notes", [])]
    if not models:
        return ["", "## Can we trust it?", "", *notes] if notes else []
    lines = [
        "",
        "## Can we trust it?",
        "",
        "LR-consistency: each output degraded with the LR instrument vs the observed LR "
        "image, chi-square per LR pixel (~1: consistent within the noise; more: the output "
        "contradicts the data). Calibration: fraction of pixels whose error against the "
        "noise-free HR lies within 1 / 2 sigma of the dihedral test-time spread "
        "(ideal 0.683 / 0.954; lower: overconfident; 0.000: sigma is zero, as for a model "
        "that is symmetric under those transforms, e.g. bicubic).",
        "",
        "| model | χ²/pixel (LR) [95 % CI] | within 1σ (0.683) | within 2σ (0.954) |",
        "|:--|--:|--:|--:|",
    ]
    for m in models:
        chi2 = m.get("chi2_lr", {}).get("overall")
        calib = m.get("calibration", {}).get("overall", {})
        cells = [" ".join(_fmt_ci(chi2, 3)) if chi2 else "–"]
        cells += [f"{calib[k]['mean']:.3f}" if k in calib else "–" for k in CALIBRATION_KEYS]
        lines.append(f"| {m['name']} | " + " | ".join(cells) + " |")
    truth = trust.get("truth_chi2_lr")
    if truth:
        lines.append(f"| noise-free HR (truth) | {' '.join(_fmt_ci(truth, 3))} | – | – |")
    return lines + ([""] + notes if notes else [])
