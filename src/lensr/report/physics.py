"""The physics table of one evaluation (``metrics.json["physics"]``): flux, ring radius,
radial profile and substructure-region PSNR per model, against the noise-free HR.

Example::

    html = physics_html(read_json(Path("runs/demo/eval/test/metrics.json")))   # "" if absent
"""

from __future__ import annotations

from lensr.report.components import as_finite, esc, explain, table

COLUMNS = (
    ("flux_error", "flux error in arc [%]", 100.0, "{:+.2f}"),
    ("radius_error", "ring-radius error [mas]", 1000.0, "{:+.1f}"),
    ("profile_error", "radial-profile error [%]", 100.0, "{:.2f}"),
    ("psnr_sub", "PSNR near subhalos [dB]", 1.0, "{:.2f}"),
    ("psnr_rest", "PSNR elsewhere [dB]", 1.0, "{:.2f}"),
)


def _cell(s: dict | None, factor: float, pattern: str) -> str:
    if not s or as_finite(s.get("mean")) is None:
        return "–"
    text = pattern.format(s["mean"] * factor)
    if as_finite(s.get("ci_low")) is not None and as_finite(s.get("ci_high")) is not None:
        low, high = pattern.format(s["ci_low"] * factor), pattern.format(s["ci_high"] * factor)
        text += f' <span class="ci">[{low}, {high}]</span>'
    return text


def substructure_gap(models: dict) -> list[str]:
    """Model names whose PSNR near subhalos is below elsewhere with disjoint intervals."""
    out = []
    for name, m in models.items():
        sub, rest = m.get("psnr_sub"), m.get("psnr_rest")
        if sub and rest and sub["ci_high"] < rest["ci_low"]:
            out.append(name)
    return out


def physics_html(metrics: dict) -> str:
    """The physics table with its explanation, or "" without a ``physics`` entry."""
    physics = metrics.get("physics")
    if not isinstance(physics, dict) or not physics.get("models"):
        return ""
    rows = [
        [esc(name)] + [_cell(m.get(k), f, p) for k, _, f, p in COLUMNS]
        for name, m in physics["models"].items()
    ]
    ratio = physics.get("radius_vs_theta_e") or {}
    check = ""
    if as_finite(ratio.get("mean")) is not None:
        check = (
            f" The ring-radius estimator, applied to the noise-free HR, gives "
            f"{ratio['mean']:.3f} [{ratio['ci_low']:.3f}, {ratio['ci_high']:.3f}] × the "
            "simulator's θ_E (flux-weighted, so the brighter outer image pulls it up): "
            "differences between models, not the absolute value, are what it measures."
        )
    gap = substructure_gap(physics["models"])
    worse = (
        f" PSNR is lower near the subhalos than elsewhere for {', '.join(gap)}: SR does worst "
        "exactly where the substructure is."
        if gap
        else ""
    )
    return "\n".join(
        [
            "<h4>Physics against the noise-free HR</h4>",
            explain(
                "Arc region: noise-free HR above "
                f"{physics.get('arc_fraction', 0.1):.0%} of its peak, dilated by "
                f"{physics.get('arc_dilate_px', 2)} pixels. Flux error: flux of the output in "
                "that region relative to the truth's. Ring-radius error: flux-weighted mean "
                "distance of the region from the lens centre, output minus truth "
                "(milliarcseconds). Radial-profile error: relative L2 error of the "
                "azimuthally averaged profile. PSNR near subhalos: in the arc region inside "
                f"discs of {physics.get('sub_radius_arcsec', 0.15)}″ around the subhalos of "
                "the simulation, against the rest of the arc region in the same images "
                "(images with subhalos on the arc only). Mean [95 % bootstrap interval]." + check
            ),
            table(["model"] + [c[1] for c in COLUMNS], rows, numeric=range(1, 6)),
        ]
        + ([f"<p>{esc(worse.strip())}</p>"] if worse else [])
    )
