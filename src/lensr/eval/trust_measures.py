"""The trust measures of an ``evaluate`` run ("Can we trust it?"), and their summaries.

Per chunk of images and per model: the LR chi-square of the output against the observed
LR image (:mod:`lensr.eval.consistency`; needs the LR instrument of
:mod:`lensr.instrument.from_dataset`, stored for simulations or given as a Gaussian PSF),
the dihedral test-time sigma and its
calibration against the noise-free HR (:mod:`lensr.infer.uncertainty`), the image the
measures flag most, and, with ``consistent``, the output's consistency projection
(:mod:`lensr.infer.projection`) scored as a model of its own named ``"<name>+proj"``.
:func:`trust_keys` and :func:`trust_summary` make the trust entries of ``metrics.json``.

Example::

    trust = TrustOptions(uncertainty=True)
    check_trust(ds, trust, names)          # finds the LR instrument, or notes why not
    trust.instrument                       # "simulation", "gaussian" or None
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from lensr.errors import LensrError
from lensr.eval.consistency import lr_chi2
from lensr.eval.model_runs import ModelRun
from lensr.eval.stats import bootstrap_summary
from lensr.infer.projection import back_project
from lensr.infer.uncertainty import (
    RELIABILITY_LEVELS,
    calibrated_sigma,
    calibration_per_image,
    coverage,
    fit_calibration,
    image_noise,
    predict_with_uncertainty,
)
from lensr.instrument.from_dataset import LRInstrument, lr_instrument

PROJ_SUFFIX = "+proj"
"""Name suffix of a model scored after the consistency projection."""
UNCERTAINTY_METHOD = "dihedral-tta-8"
CALIBRATION_KEYS = ("within_1sigma", "within_2sigma")
SAMPLES_PER_IMAGE = 3000
"""Pixels per image kept to fit and test the sigma calibration (2-fold cross-fit)."""
HELD_OUT = "2-fold cross-fit: even images scored with the fit on odd ones, and vice versa"


@dataclass
class TrustOptions:
    """The trust options of one run, and what could be measured."""

    uncertainty: bool = True
    consistent: bool = False
    lr_psf_fwhm: float | None = None
    hr_psf_fwhm: float = 0.0
    pixel_scale: float | None = None
    instrument: str | None = None  # "simulation", "gaussian" or None (chi2 skipped)
    notes: list[str] = field(default_factory=list)
    truth_chi2: list[np.ndarray] = field(default_factory=list)  # noise-free HR's LR chi2

    def for_chunk(self, ds, start: int, lr: np.ndarray) -> LRInstrument | None:
        if self.instrument is None:
            return None
        return lr_instrument(
            ds,
            np.arange(start, start + len(lr)),
            lr=lr,
            lr_psf_fwhm=self.lr_psf_fwhm,
            hr_psf_fwhm=self.hr_psf_fwhm,
            pixel_scale=self.pixel_scale,
        )


def check_trust(ds, trust: TrustOptions, names: list[str]) -> None:
    """Find the LR instrument (or why there is none) before any work; fills ``trust``."""
    try:
        found = lr_instrument(
            ds,
            [0],
            lr=ds.lr[:1],
            lr_psf_fwhm=trust.lr_psf_fwhm,
            hr_psf_fwhm=trust.hr_psf_fwhm,
            pixel_scale=trust.pixel_scale,
        )
        trust.instrument = found.source
    except LensrError as err:
        if trust.consistent:
            raise LensrError(f"the consistency projection needs the LR instrument: {err}") from None
        trust.notes.append(f"LR-consistency skipped: {err}")
    if trust.consistent:
        clash = next((f"{n}{PROJ_SUFFIX}" for n in names if f"{n}{PROJ_SUFFIX}" in names), None)
        if clash:
            raise LensrError(f"model name {clash!r} is taken; it names a projected model")
    if trust.uncertainty and ds.hr_clean is None:
        trust.notes.append("calibration skipped: the dataset has no noise-free HR images")


def with_projections(entries: list[ModelRun]) -> list[ModelRun]:
    """Each model followed, after all originals, by its projected twin."""
    for e in entries:
        e.proj = ModelRun(
            name=f"{e.name}{PROJ_SUFFIX}", spec=e.spec, module=e.module, projected_from=e.name
        )
    return entries + [e.proj for e in entries]


# Per chunk ---------------------------------------------------------------------------------


def measure_trust(entry, start, lr, sr, truth, instrument, trust, options) -> None:
    """LR chi2, TTA sigma and its calibration against the noise-free HR, the flagged image."""
    chi2 = maps = sigma = None
    if instrument is not None:
        chi2, maps = lr_chi2(sr, lr, instrument.D, instrument.variance)
        entry.chi2.append(chi2)
    if trust.uncertainty:
        mean, sigma = predict_with_uncertainty(
            lr, entry.module, identity=sr, calibrate=False, **options
        )
        if "clean" in truth:
            for key, values in calibration_per_image(mean, sigma, truth["clean"]).items():
                entry.calibration.setdefault(key, []).append(values)
            _sample(entry, start, lr, mean, sigma, truth["clean"])
    reference = truth.get("clean", truth["noisy"])
    entry.flag(start, sr, chi2, maps, sigma, reference)


def _sample(entry, start, lr, mean, sigma, clean) -> None:
    """Keep a fixed random subset of (|error|, sigma, LR noise, mean) per image."""
    samples = entry.__dict__.setdefault("sigma_samples", [])
    noise = image_noise(lr)
    for i in range(len(lr)):
        rng = np.random.default_rng(start + i)
        err = np.abs(mean[i] - clean[i]).ravel()
        pick = rng.choice(err.size, size=min(SAMPLES_PER_IMAGE, err.size), replace=False)
        s, m = sigma[i].ravel()[pick], mean[i].ravel()[pick]
        samples.append((start + i, err[pick], s, np.full(pick.size, noise[i]), m))


def _pooled(samples: list) -> list[np.ndarray]:
    return [np.concatenate(v) for v in list(zip(*samples, strict=True))[1:]]


def sigma_calibration(e: ModelRun, boot: dict) -> dict | None:
    """The sigma calibration of a model and its coverage on held-out images.

    Held out by a 2-fold cross-fit: the even-numbered images are scored with the
    calibration fitted on the odd ones and vice versa, so every image is scored by a fit
    that never saw it. The calibration stored (``a``, ``b``, ``c``) is fitted on all.
    """
    samples = getattr(e, "sigma_samples", None) or []
    folds = [[x for x in samples if x[0] % 2 == p] for p in (0, 1)]
    if not all(folds):
        return None
    err, sigma, noise, mean = _pooled(samples)
    if next(e.module.parameters(), None) is None or not np.any(sigma > 0):
        return None  # a baseline: sigma is ~0 (exactly symmetric), nothing to calibrate
    held = []  # (err, raw sigma, calibrated sigma) per image, fitted on the other fold
    for fit, test in ((folds[1], folds[0]), (folds[0], folds[1])):
        calib = fit_calibration(*_pooled(fit))
        held += [(er, s, calibrated_sigma(calib, s, n, m)) for _, er, s, n, m in test]
    out = {
        **fit_calibration(err, sigma, noise, mean),
        "held_out": HELD_OUT,
        "n_images": len(samples),
    }
    per_image = [coverage(er, cal) for er, _, cal in held]
    for key in CALIBRATION_KEYS:
        out[key] = bootstrap_summary([p[key] for p in per_image], **boot)
    raw = [coverage(er, s) for er, s, _ in held]
    out["raw"] = {k: float(np.mean([p[k] for p in raw])) for k in CALIBRATION_KEYS}
    err, raw_sigma, cal_sigma = (np.concatenate(v) for v in zip(*held, strict=True))
    out["reliability"] = reliability(err, raw_sigma, cal_sigma)
    return out


def reliability(err, raw_sigma, calibrated_sigma) -> dict[str, list[float]]:
    """Observed coverage at each nominal level of :data:`RELIABILITY_LEVELS`: the fraction
    of held-out pixels with ``|err| <= z * sigma``, z the Gaussian two-sided quantile of
    the level (1.0 at 0.683), for the raw and the calibrated sigma (pooled pixel samples).

    Example::

        reliability(err, s, 2 * s)["calibrated"]   # one fraction per level
    """
    from scipy.special import ndtri

    err = np.abs(np.asarray(err, dtype=np.float64))
    z = ndtri((1.0 + np.asarray(RELIABILITY_LEVELS)) / 2.0)
    return {
        "levels": list(RELIABILITY_LEVELS),
        "raw": [float((err <= k * np.asarray(raw_sigma)).mean()) for k in z],
        "calibrated": [float((err <= k * np.asarray(calibrated_sigma)).mean()) for k in z],
    }


def store_calibrations(entries: list[ModelRun], result: dict, dataset) -> None:
    """Add each checkpoint's fitted calibration to its sidecar (``sigma_calibration``, one
    entry per dataset preset, replaced when refitted), where ``lensr upscale
    --uncertainty`` finds it."""
    import json
    from pathlib import Path

    from lensr.io import file_lock, write_json

    by_name = {m["name"]: m for m in result["models"]}
    for e in entries:
        fit = (by_name.get(e.name) or {}).get("sigma_calibration")
        sidecar = Path(e.spec).with_suffix(".json")
        if fit is None or not sidecar.is_file() or "lensr/weights" in sidecar.as_posix():
            continue
        entry = {
            **{k: fit[k] for k in ("a", "b", "c", "terms")},
            "dataset": str(dataset.path),
            "preset": dataset.attrs.get("preset"),
            "coverage": {k: fit[k]["mean"] for k in CALIBRATION_KEYS},
        }
        with file_lock(sidecar):
            info = json.loads(sidecar.read_text())
            fits = [
                f for f in info.get("sigma_calibration", []) if f.get("preset") != entry["preset"]
            ]
            info["sigma_calibration"] = fits + [entry]
            write_json(sidecar, info)


def measure_truth(trust: TrustOptions, lr, truth, instrument) -> None:
    """The noise-free HR's own LR chi2 on the same images: the instrument model's yardstick
    (~1 when the noise model is right; a model flagged while the truth also reads high
    points at the instrument model, not at the model)."""
    if instrument is not None and "clean" in truth:
        trust.truth_chi2.append(lr_chi2(truth["clean"], lr, instrument.D, instrument.variance)[0])


def project(proj: ModelRun, lr, sr, truth, instrument: LRInstrument, here, elapsed) -> None:
    """Score the consistency projection of ``sr``; its time includes the upscale's."""
    t0 = time.perf_counter()
    x, info = back_project(sr, lr, instrument.D, variance=instrument.variance)
    proj.seconds += elapsed + time.perf_counter() - t0
    proj.add_scores(x, truth)
    proj.chi2.append(lr_chi2(x, lr, instrument.D, instrument.variance)[0])
    proj.iterations.append(info.iterations)
    proj.examples.extend(x[here])


# Summaries ---------------------------------------------------------------------------------


def trust_keys(e: ModelRun, class_arr: np.ndarray, order: list[str], boot: dict) -> dict:
    """The per-model trust entries of metrics.json (only what was measured)."""
    out: dict = {}

    def split(values: np.ndarray) -> dict:
        return {
            "overall": bootstrap_summary(values, **boot),
            "per_class": {c: bootstrap_summary(values[class_arr == c], **boot) for c in order},
        }

    chi2 = e.chi2_per_image()
    if chi2 is not None:
        out["chi2_lr"] = split(chi2)
    calib = e.calibration_per_image()
    if calib is not None:
        out["calibration"] = {
            "overall": {k: bootstrap_summary(v, **boot) for k, v in calib.items()},
            "per_class": {
                c: {k: bootstrap_summary(v[class_arr == c], **boot) for k, v in calib.items()}
                for c in order
            },
        }
    fit = sigma_calibration(e, boot)
    if fit is not None:
        out["sigma_calibration"] = fit
    if e.projected_from is not None:
        out["projected_from"] = e.projected_from
        out["projection"] = {"iterations": bootstrap_summary(np.concatenate(e.iterations), **boot)}
    return out


def trust_summary(
    trust: TrustOptions, entries: list[ModelRun], index, classes, has_clean, boot=None
) -> dict:
    """The run-level ``trust`` entry of metrics.json: instrument, method, notes, flagged and,
    when measured, ``truth_chi2_lr`` (the noise-free HR's LR chi2 summary)."""
    flagged = {}
    for e in entries:
        f = e.flagged
        if f is None:
            continue
        flagged[e.name] = {
            "position": f.position,
            "index": int(index[f.position]),
            "class": classes[f.position],
            "chi2_lr": float(f.chi2_map.mean()) if f.chi2_map is not None else None,
            "sigma_mean": float(f.sigma.mean()) if f.sigma is not None else None,
        }
    truth = {}
    if trust.truth_chi2:
        values = np.concatenate(trust.truth_chi2)
        truth["truth_chi2_lr"] = bootstrap_summary(values, **(boot or {}))
    return {
        **truth,
        "lr_instrument": trust.instrument,
        "uncertainty": UNCERTAINTY_METHOD if trust.uncertainty else None,
        "calibration_target": "clean" if trust.uncertainty and has_clean else None,
        "notes": list(trust.notes),
        "flagged": flagged,
    }
