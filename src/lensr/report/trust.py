"""The report section "Can we trust it?": LR-consistency, uncertainty calibration and
the consistency projection, read from each evaluation's ``metrics.json``.

It reads the keys :func:`lensr.eval.evaluate.evaluate` adds per model (``chi2_lr``,
``calibration``, ``projected_from``) and per run (``trust``, ``figures["trust"]``); an
evaluation without them is left out, and the section too when none has them.

Example::

    from lensr.report.trust import trust_section
    html = trust_section(Path("runs/demo"))     # None when no evaluation has trust keys
"""

from __future__ import annotations

from pathlib import Path

from lensr.report.components import (
    as_finite,
    esc,
    explain,
    figure,
    fmt,
    fmt_stat,
    guarded,
    note,
    read_json,
    section,
    subdirs,
    table,
)

IDEAL = {"within_1sigma": 0.683, "within_2sigma": 0.954}
"""Coverage of a calibrated Gaussian error bar."""
CHI2_BANDS = ((0.8, "fits the LR noise"), (1.5, "consistent"), (3.0, "mildly inconsistent"))
"""Upper bounds of chi2/pixel for each plain-language reading; above the last: inconsistent."""
OVERCONFIDENT, UNDERCONFIDENT = 0.63, 0.73
"""Within-1-sigma fractions below / above which sigma is called too small / too large
(the ideal 0.683 +- 0.05)."""
UNINFORMATIVE = 0.02
"""Below this within-1-sigma fraction sigma is ~0 everywhere (a symmetric model)."""


def _has_trust(metrics: dict) -> bool:
    return any(
        isinstance(m, dict) and ("chi2_lr" in m or "calibration" in m)
        for m in metrics.get("models") or []
    ) or bool((metrics.get("trust") or {}).get("notes"))


def chi2_reading(summary: dict | None) -> str:
    mean = as_finite((summary or {}).get("mean"))
    if mean is None:
        return ""
    for bound, text in CHI2_BANDS:
        if mean < bound:
            return text
    return "inconsistent with the LR data"


def sigma_reading(calibration: dict | None) -> str:
    within = as_finite(((calibration or {}).get("within_1sigma") or {}).get("mean"))
    if within is None:
        return ""
    if within < UNINFORMATIVE:
        return "σ ≈ 0: no information"
    if within < OVERCONFIDENT:
        return "σ too small (overconfident)"
    if within > UNDERCONFIDENT:
        return "σ too large (cautious)"
    return "σ roughly calibrated"


def _fraction(value: object) -> str:
    number = as_finite(value)
    return "–" if number is None else f"{number:.3f}"


COVERAGE_CAPTION = (
    "sigma coverage per model: raw dihedral sigma, and calibrated sigma (a·σ + b·LR noise + "
    "c·|SR|, 2-fold cross-fit: each half of the test images scored with the fit on the other)"
)


def trust_verdict(metrics: dict) -> str:
    """One sentence: which models the LR chi2 flags, against the truth's own chi2, and
    whether any raw sigma is calibrated."""
    models = [m for m in metrics["models"] if "projected_from" not in m]
    flagged = [
        m["name"]
        for m in models
        if (as_finite(((m.get("chi2_lr") or {}).get("overall") or {}).get("mean")) or 0) >= 3
    ]
    truth = as_finite(((metrics.get("trust") or {}).get("truth_chi2_lr") or {}).get("mean"))
    text = (
        f"Flagged as inconsistent with the LR data (χ²/pixel ≥ 3): {', '.join(flagged)}"
        if flagged
        else "No model is flagged as inconsistent with the LR data (χ²/pixel < 3 for all)"
    )
    if truth is not None:
        text += f"; the noise-free truth itself reads χ²/pixel {truth:.2f} on the same images"
        if truth >= 3 and flagged:
            text += " (so the flags point at the instrument model, not at the models)"
    raw = [
        (
            m["name"],
            as_finite(
                ((m.get("calibration") or {}).get("overall") or {})
                .get("within_1sigma", {})
                .get("mean")
            ),
        )
        for m in models
        if (m.get("params") or 0) > 0
    ]
    raw = [(n, v) for n, v in raw if v is not None]
    if raw:
        text += "; raw σ within 1σ: " + ", ".join(f"{n} {v:.0%}" for n, v in raw) + " (ideal 68 %)"
    return text + "."


def _trust_table(models: list[dict], truth: dict | None = None) -> str:
    rows = []
    for m in models:
        chi2 = (m.get("chi2_lr") or {}).get("overall")
        calib = (m.get("calibration") or {}).get("overall")
        cells = [fmt_stat(chi2, kind="chi2") if chi2 else "–"]
        cells += [_fraction(((calib or {}).get(k) or {}).get("mean")) for k in IDEAL]
        fit = m.get("sigma_calibration") or {}
        cells += [
            fmt_stat(fit.get(k), kind="ssim").replace(".0000", "") if fit.get(k) else "–"
            for k in IDEAL
        ]
        reading = "; ".join(r for r in (chi2_reading(chi2), sigma_reading(calib)) if r)
        rows.append([esc(m["name"]), *cells, esc(reading or "–")])
    if truth:
        rows.append(
            ["<em>noise-free HR (truth, measured)</em>", fmt_stat(truth, kind="chi2")]
            + ["–"] * 4
            + [esc(chi2_reading(truth) + ": the instrument model's yardstick")]
        )
    rows.append(
        ['<span class="muted">ideal</span>', "≈ 1"]
        + [_fraction(v) for v in IDEAL.values()] * 2
        + ['<span class="muted">a truthful, calibrated model</span>']
    )
    header = [
        "model",
        "LR χ²/pixel [95 % CI]",
        "raw σ: within 1σ",
        "raw σ: within 2σ",
        "calibrated σ (held out): within 1σ [95 % CI]",
        "calibrated σ (held out): within 2σ [95 % CI]",
        "reading",
    ]
    return table(header, rows, numeric=(1, 2, 3, 4, 5), caption=COVERAGE_CAPTION)


def _projection_table(metrics: dict) -> str | None:
    models = {m["name"]: m for m in metrics["models"]}
    pairs = [
        (models[m["projected_from"]], m)
        for m in metrics["models"]
        if m.get("projected_from") in models
    ]
    if not pairs:
        return None
    targets = metrics.get("targets") or []
    target = "clean" if "clean" in targets else (targets[0] if targets else "noisy")
    rows = []
    for before, after in pairs:
        cells = [esc(before["name"])]
        for metric in ("psnr", "ssim"):
            a = as_finite(((before["scores"][target]["overall"]).get(metric) or {}).get("mean"))
            b = as_finite(((after["scores"][target]["overall"]).get(metric) or {}).get("mean"))
            cells.append(fmt(None if a is None or b is None else b - a, kind=metric, sign=True))
        chi2 = [
            as_finite(((m.get("chi2_lr") or {}).get("overall") or {}).get("mean"))
            for m in (before, after)
        ]
        cells.append(f"{fmt(chi2[0])} → {fmt(chi2[1])}")
        iters = ((after.get("projection") or {}).get("iterations") or {}).get("mean")
        cells.append(fmt(iters, kind="auto"))
        rows.append(cells)
    label = "noise-free HR" if target == "clean" else "HR"
    return table(
        [
            "model",
            f"ΔPSNR (dB, vs {label})",
            "ΔSSIM",
            "LR χ²/pixel before → after",
            "mean iterations",
        ],
        rows,
        numeric=(1, 2, 3, 4),
        caption="effect of the consistency projection (projected minus original, means)",
    )


RELIABILITY_CAPTION = (
    "reliability diagrams: the fraction of held-out pixels (each half of the test images, "
    "under the calibration fitted on the other half) whose "
    "error against the noise-free HR lies within the Gaussian interval of each nominal "
    "level, for the raw dihedral σ and for the calibrated σ; on the dotted diagonal σ is "
    "calibrated, below it σ is too small (overconfident), above it too large"
)


def _reliability_html(run_dir: Path, eval_dir: Path, models: list[dict]) -> str | None:
    """The reliability diagrams of the models whose metrics hold ``sigma_calibration``
    ``reliability`` curves (drawn into ``report_assets/``), or None when none has them."""
    from lensr.report.plots import reliability_figure

    curves = {
        m["name"]: (m.get("sigma_calibration") or {}).get("reliability")
        for m in models
        if isinstance((m.get("sigma_calibration") or {}).get("reliability"), dict)
    }
    if not curves:
        return None
    slug = "-".join(p for p in eval_dir.relative_to(run_dir).parts if p != "eval")
    path = run_dir / "report_assets" / f"reliability_{slug}.png"
    failed = guarded("reliability curves", lambda: str(reliability_figure(curves, path)) and "")
    return failed or figure(path, caption=RELIABILITY_CAPTION, run_dir=run_dir)


def _eval_trust_html(run_dir: Path, eval_dir: Path) -> str:
    metrics = read_json(eval_dir / "metrics.json")
    if not isinstance(metrics["models"], list):
        raise ValueError("'models' is not a list")
    trust = metrics.get("trust") or {}
    originals = [m for m in metrics["models"] if "projected_from" not in m]
    parts = []
    source = {
        "simulation": "the simulated instrument (per-image PSF and noise model)",
        "gaussian": "a Gaussian PSF given by the user, noise estimated from each LR image",
    }.get(trust.get("lr_instrument"))
    if source:
        parts.append(f"<p>LR instrument: {esc(source)}.</p>")
    if any("chi2_lr" in m or "calibration" in m for m in originals):
        parts.insert(0, f'<div class="headline"><p>{esc(trust_verdict(metrics))}</p></div>')
        parts.append(_trust_table(originals, trust.get("truth_chi2_lr")))
    reliability = _reliability_html(run_dir, eval_dir, originals)
    if reliability:
        parts.append(reliability)
    projection = _projection_table(metrics)
    if projection:
        parts.append(projection)
    parts.extend(note(str(n)) for n in trust.get("notes") or [])
    name = (metrics.get("figures") or {}).get("trust")
    if name:
        parts.append(
            figure(
                eval_dir / Path(str(name)).name,
                caption="the image each model's measures flag most (highest LR χ²), each "
                "image once: its HR, then per model that flags it the χ² map on the LR "
                "grid, the σ map and, on simulations, the actual error (one colour scale "
                "per quantity; σ and error share theirs)",
                run_dir=run_dir,
            )
        )
    return "\n".join(parts)


def trust_section(run_dir: Path) -> str | None:
    """Can we trust it?: per evaluation (``eval/*`` and ``transfer/*/eval``), LR chi2, sigma
    calibration, projection and the figure of the images the measures flag."""
    dirs = {d.name: d for d in subdirs(run_dir / "eval")}
    dirs |= {f"transfer: {d.name}": d / "eval" for d in subdirs(run_dir / "transfer")}
    wanted = {}
    for title, d in dirs.items():
        try:
            if _has_trust(read_json(d / "metrics.json")):
                wanted[title] = d
        except Exception:  # noqa: BLE001 - missing or bad: the Results section notes it
            continue
    if not wanted:
        return None
    parts = [
        explain(
            "PSNR and SSIM say how close an output is on average; they do not say whether a "
            "model invents or erases structure in a given image. Two checks do. "
            "LR-consistency: the output, blurred and binned by the LR instrument, must give "
            "back the observed LR image within its noise; the chi-square per LR pixel is "
            "about 1 for the truth, larger when the output contradicts the data "
            "(over-smoothed arcs, invented clumps), smaller when it copies the LR noise. "
            "Readings: below 0.8 fits the noise, up to 1.5 consistent, up to 3 mildly "
            "inconsistent, above that inconsistent. "
            "Uncertainty: the spread (σ) of the model's outputs over the 8 rotations and "
            "mirror images of the input marks pixels where the model guesses; on "
            "simulations it is checked against the true error: a calibrated σ holds the "
            "error within 1σ in 68.3 % and within 2σ in 95.4 % of the pixels. Lower "
            "fractions mean σ understates the error (interpolation baselines are exactly "
            "symmetric, so their σ is 0 and says nothing). "
            "The consistency projection nudges an output until it agrees with the LR data "
            "(iterative back-projection), changing only what the LR image constrains."
        )
    ]
    for title, d in wanted.items():
        parts.append(f"<h3>{esc(title)}</h3>")
        parts.append(
            guarded(
                str((d / "metrics.json").relative_to(run_dir)),
                lambda d=d: _eval_trust_html(run_dir, d),
            )
        )
    return section("Can we trust it?", "\n".join(parts), anchor="trust")
