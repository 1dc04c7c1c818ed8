"""Findings first: the report's opening section, in sentences with numbers.

It states, from the run's own outputs: the winning network and the runner-up of each
evaluation (``eval/*/metrics.json``) with both gains over bicubic (against the noisy and
the noise-free HR) and whether they differ (a paired bootstrap over the same images,
:mod:`lensr.eval.paired`: "tie" when its interval covers 0), the winner's flux and
ring-radius errors next to bicubic's (:func:`physics_sentence`), the trust flags on both and
the noise-free truth's own LR chi-square; the transfer verdict per domain (scratch,
fine-tuning, ADDA); the classification verdict (``classify/``, "not run" without it); and
the scale caveat. The verdict sentences are also the opening lines of the Results,
Transfer and Trust sections (:func:`eval_verdict`, :func:`transfer_verdict`).

Example::

    html = summary_section(Path("runs/demo"))
"""

from __future__ import annotations

from pathlib import Path

from lensr.eval.paired import find_pair, paired_from_csv
from lensr.report.components import (
    TARGET_LABELS,
    as_finite,
    esc,
    fmt,
    read_json,
    section,
    subdirs,
)
from lensr.report.trust import chi2_reading, sigma_reading

TRANSFER_ROLES = {
    "sim only": "{m} (sim only)",
    "scratch": "{m} ({d} only)",
    "fine-tune": "{m} fine-tuned",
    "ADDA": "{m} ADDA",
}
"""How the transfer stage names each way of reaching a domain (see lensr.study.transfer)."""
ROLE_WORDS = {
    "sim only": "the simulation-trained model as is",
    "scratch": "training from scratch",
    "fine-tune": "fine-tuning",
    "ADDA": "ADDA",
}


def paired_of(eval_dir: Path, metrics: dict) -> dict:
    """``metrics["paired"]``, or the same recomputed from ``metrics.csv`` for older runs."""
    if isinstance(metrics.get("paired"), dict):
        return metrics["paired"]
    csv = eval_dir / "metrics.csv"
    return paired_from_csv(csv) if csv.exists() else {}


def _mean(model: dict, target: str, metric: str = "psnr") -> float | None:
    block = ((model.get("scores") or {}).get(target) or {}).get("overall") or {}
    return as_finite((block.get(metric) or {}).get("mean"))


def _ci(s: dict, kind: str = "psnr", unit: str = " dB") -> str:
    return (
        f"{fmt(s['mean'], kind=kind, sign=True)}{unit} "
        f"[{fmt(s['ci_low'], kind=kind, sign=True)}, {fmt(s['ci_high'], kind=kind, sign=True)}]"
    )


def _difference(paired: dict, target: str, a: str, b: str) -> tuple[str, bool] | None:
    """'Δ [low, high] dB, tie' (a - b, paired) and whether it is significant."""
    found = find_pair(paired.get(target) or [], a, b)
    if found is None:
        return None
    pair, sign = found
    d = pair["psnr"]
    s = {k: sign * float(d[k]) for k in ("mean", "ci_low", "ci_high")}
    if sign < 0:
        s["ci_low"], s["ci_high"] = s["ci_high"], s["ci_low"]
    word = "significant" if d.get("significant") else "tie (the interval covers 0)"
    return f"{_ci(s)}, {word}", bool(d.get("significant"))


def _target(metrics: dict) -> str:
    targets = metrics.get("targets") or ["noisy"]
    return "clean" if "clean" in targets else targets[0]


def _trust_flags(metrics: dict, names: list[str]) -> str:
    models = {m["name"]: m for m in metrics["models"]}
    bits = []
    for n in names:
        m = models[n]
        chi2 = (m.get("chi2_lr") or {}).get("overall")
        calib = (m.get("calibration") or {}).get("overall")
        words = []
        if chi2:
            words.append(f"LR χ²/pixel {fmt(chi2['mean'], kind='chi2')} ({chi2_reading(chi2)})")
        if calib and "within_1sigma" in calib:
            within = as_finite(calib["within_1sigma"].get("mean"))
            words.append(
                f"raw σ covers {within:.0%} of pixels within 1σ (ideal 68 %; "
                f"{sigma_reading(calib)})"
            )
        cal = m.get("sigma_calibration") or {}
        if cal.get("within_1sigma"):
            words.append(
                f"calibrated σ covers {cal['within_1sigma']['mean']:.0%} / "
                f"{cal['within_2sigma']['mean']:.0%} within 1σ / 2σ on held-out images "
                "(ideal 68 % / 95 %)"
            )
        if words:
            bits.append(f"{esc(n)}: " + "; ".join(esc(w) for w in words))
    truth = (metrics.get("trust") or {}).get("truth_chi2_lr")
    if truth:
        bits.append(
            f"the noise-free HR itself reads LR χ²/pixel {fmt(truth['mean'], kind='chi2')} "
            f"[{fmt(truth['ci_low'], kind='chi2')}, {fmt(truth['ci_high'], kind='chi2')}] on the "
            "same images (the instrument model's yardstick)"
        )
    return ("Trust: " + "; ".join(bits) + ".") if bits else ""


def eval_verdict(eval_dir: Path) -> str | None:
    """The findings of one evaluation as an HTML paragraph, or None without trained models."""
    metrics = read_json(eval_dir / "metrics.json")
    target = _target(metrics)
    trained = [m for m in metrics["models"] if (m.get("params") or 0) > 0]
    trained = [m for m in trained if "projected_from" not in m and _mean(m, target) is not None]
    if not trained:
        return None
    trained.sort(key=lambda m: -_mean(m, target))
    gains = metrics.get("gains_vs_bicubic") or {}
    paired = paired_of(eval_dir, metrics)

    def gains_of(name: str) -> str:
        parts = [
            f"{_ci(gains[t][name]['psnr'])} against the {TARGET_LABELS.get(t, t)}"
            for t in ("noisy", "clean")
            if name in (gains.get(t) or {})
        ]
        return " and ".join(parts) if parts else "no bicubic reference"

    win = trained[0]["name"]
    text = (
        f"On <em>{esc(eval_dir.name)}</em> ({fmt(metrics.get('n'), kind='int')} test images), "
        f"the best network by PSNR against the {esc(TARGET_LABELS.get(target, target))} is "
        f"<strong>{esc(win)}</strong>: {esc(gains_of(win))} over bicubic."
    )
    if len(trained) > 1:
        second = trained[1]["name"]
        text += f" Runner-up {esc(second)}: {esc(gains_of(second))}."
        diffs = []
        for t in metrics.get("targets") or [target]:
            d = _difference(paired, t, win, second)
            if d:
                diffs.append(f"{d[0]} against the {TARGET_LABELS.get(t, t)}")
        if diffs:
            text += (
                f" {esc(win)} minus {esc(second)}, paired over the same images: "
                + esc("; ".join(diffs))
                + "."
            )
    physics = physics_sentence(metrics, win)
    if physics:
        text += " " + esc(physics)
    flags = _trust_flags(metrics, [m["name"] for m in trained[:2]])
    return f"<p>{text}</p>" + (f"<p>{flags}</p>" if flags else "")


PHYSICS_WORDS = (
    ("flux_error", "flux error in the arc region", 100.0, "{:+.2f} %"),
    ("radius_error", "ring-radius error", 1000.0, "{:+.1f} mas"),
)


def _has_ci(s: object) -> bool:
    return isinstance(s, dict) and all(
        as_finite(s.get(k)) is not None for k in ("mean", "ci_low", "ci_high")
    )


def _show(s: dict, factor: float, pattern: str) -> str:
    """``+1.55 % [+1.31, +1.79]``: the mean with its interval, in ``pattern``'s unit."""
    lo, hi = (pattern.format(s[k] * factor).split()[0] for k in ("ci_low", "ci_high"))
    return f"{pattern.format(s['mean'] * factor)} [{lo}, {hi}]"


def _closer(a: dict, b: dict) -> str:
    """ " (closer to the truth)" when |a| < |b| with disjoint intervals of |error|,
    " (further from the truth)" for the reverse, else ""."""

    def abs_interval(s: dict) -> tuple[float, float] | None:
        lo, hi = float(s["ci_low"]), float(s["ci_high"])
        if lo <= 0 <= hi:
            return None  # |error| may be 0: no ordering can be claimed
        return tuple(sorted((abs(lo), abs(hi))))  # type: ignore[return-value]

    ia, ib = abs_interval(a), abs_interval(b)
    if ia is None and ib is not None:
        return " (closer to the truth)"
    if ia is None or ib is None:
        return ""
    if ia[1] < ib[0]:
        return " (closer to the truth)"
    if ib[1] < ia[0]:
        return " (further from the truth)"
    return ""


def physics_sentence(metrics: dict, winner: str) -> str:
    """One sentence: the winner's flux and ring-radius errors against the noise-free HR
    next to bicubic's, with 95 % intervals; "" without physics metrics for both."""
    models = (metrics.get("physics") or {}).get("models") or {}
    if winner not in models or "bicubic" not in models:
        return ""
    bits = []
    for key, words, factor, pattern in PHYSICS_WORDS:
        a, b = models[winner].get(key), models["bicubic"].get(key)
        if not _has_ci(a) or not _has_ci(b):
            continue
        bits.append(
            f"{words} {_show(a, factor, pattern)} against bicubic's "
            f"{_show(b, factor, pattern)}{_closer(a, b)}"
        )
    if not bits:
        return ""
    return f"Physics against the noise-free HR: {winner}'s " + "; ".join(bits) + "."


def _domain_verdict(domain_dir: Path) -> str | None:
    eval_dir = domain_dir / "eval"
    metrics = read_json(eval_dir / "metrics.json")
    target = _target(metrics)
    models = {m["name"]: m for m in metrics["models"]}
    paired = paired_of(eval_dir, metrics)
    bases = sorted(
        n.removesuffix(" fine-tuned") for n in models if n.endswith(" fine-tuned")
    ) or sorted(n.removesuffix(" ADDA") for n in models if n.endswith(" ADDA"))
    sentences = []
    for base in bases:
        roles = {
            r: p.format(m=base, d=domain_dir.name)
            for r, p in TRANSFER_ROLES.items()
            if p.format(m=base, d=domain_dir.name) in models
        }
        scored = {r: _mean(models[n], target) for r, n in roles.items()}
        scored = {r: v for r, v in scored.items() if v is not None}
        if len(scored) < 2:
            continue
        order = sorted(scored, key=lambda r: -scored[r])
        best = order[0]
        ties, beaten = [], []
        for r in order[1:]:
            d = _difference(paired, target, roles[best], roles[r])
            text = f"{ROLE_WORDS[r]} ({fmt(scored[r], kind='psnr')} dB; Δ {d[0] if d else '?'})"
            (beaten if d and d[1] else ties).append(text)
        s = (
            f"{base}: {ROLE_WORDS[best]} leads ({fmt(scored[best], kind='psnr')} dB against the "
            f"{TARGET_LABELS.get(target, target)})"
        )
        if ties:
            s += "; it ties " + " and ".join(ties)
        if beaten:
            s += "; it beats " + " and ".join(beaten)
        sentences.append(s + ".")
    if not sentences:
        return None
    return f"On <em>{esc(domain_dir.name)}</em>: " + esc(" ".join(sentences))


def transfer_verdict(run_dir: Path) -> str | None:
    """One paragraph per transfer domain: which of scratch / fine-tune / ADDA wins."""
    lines = []
    for d in subdirs(run_dir / "transfer"):
        if not (d / "eval" / "metrics.json").exists():
            continue
        try:
            line = _domain_verdict(d)
        except Exception:  # noqa: BLE001 - the Transfer section shows the note
            continue
        if line:
            lines.append(f"<p>Transfer. {line}</p>")
    return "\n".join(lines) or None


def classification_verdict(run_dir: Path) -> str:
    """The classification ladder's verdict (``classify/ladder/ladder.json``), else the
    single evaluation's accuracies, else "not run"."""
    root = run_dir / "classify"
    ladder = root / "ladder" / "ladder.json"
    try:
        if ladder.exists():
            verdict = read_json(ladder).get("verdict") or []
            if verdict:
                return "Classification: " + esc(" ".join(str(v) for v in verdict))
        single = root / "eval" / "classification.json"
        if single.exists():
            variants = read_json(single).get("variants") or {}
            acc = [
                f"{k} {float(v['accuracy']):.2f}"
                for k, v in variants.items()
                if isinstance(v, dict) and as_finite(v.get("accuracy")) is not None
            ]
            if acc:
                return "Classification accuracy on the test set: " + esc(", ".join(acc)) + "."
    except Exception:  # noqa: BLE001 - the Classification section shows the note
        return "Classification: its outputs could not be read (see its section)."
    return "Classification: not run."


def _scale_caveat(run_dir: Path) -> str:
    study, steps = {}, None
    try:
        import yaml

        study = yaml.safe_load((run_dir / "study.yaml").read_text()) or {}
        steps = (study.get("train_defaults") or {}).get("max_steps")
    except Exception:  # noqa: BLE001 - the caveat still applies, with fewer numbers
        pass
    name = study.get("name", "this")
    scale = "demo" if name != "paper" else "paper"
    bits = [f"Scale: the {esc(name)} study"]
    if steps:
        bits.append(f"trains each network for {fmt(steps, kind='int')} steps")
    text = ", ".join(bits) + (
        f" ({scale} scale, not the paper's). Every interval covers the test images of one "
        "training run (one seed): it does not include the spread between training runs."
    )
    return f"<p>{text}</p>"


def summary_section(run_dir: Path) -> str | None:
    """Summary of findings: evaluation, trust, transfer, classification and scale."""
    parts = []
    for d in subdirs(run_dir / "eval"):
        if (d / "metrics.json").exists():
            try:
                para = eval_verdict(d)
            except Exception:  # noqa: BLE001 - the Results section shows the note
                continue
            if para:
                parts.append(para)
    if not any((run_dir / d).is_dir() for d in ("eval", "transfer", "classify")):
        return None
    if not parts:
        parts.append("<p>Results: no readable evaluation with a trained model (see Results).</p>")
    parts.append(transfer_verdict(run_dir) or "<p>Transfer: not run.</p>")
    parts.append(f"<p>{classification_verdict(run_dir)}</p>")
    parts.append(_scale_caveat(run_dir))
    return section("Summary of findings", '<div class="headline">' + "\n".join(parts) + "</div>")
