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
from lensr.infer.uncertainty import calibration_per_image, predict_with_uncertainty
from lensr.instrument.from_dataset import LRInstrument, lr_instrument

PROJ_SUFFIX = "+proj"
"""Name suffix of a model scored after the consistency projection."""
UNCERTAINTY_METHOD = "dihedral-tta-8"
CALIBRATION_KEYS = ("within_1sigma", "within_2sigma")


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
        mean, sigma = predict_with_uncertainty(lr, entry.module, identity=sr, **options)
        if "clean" in truth:
            for key, values in calibration_per_image(mean, sigma, truth["clean"]).items():
                entry.calibration.setdefault(key, []).append(values)
    reference = truth.get("clean", truth["noisy"])
    entry.flag(start, sr, chi2, maps, sigma, reference)


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
    if e.projected_from is not None:
        out["projected_from"] = e.projected_from
        out["projection"] = {"iterations": bootstrap_summary(np.concatenate(e.iterations), **boot)}
    return out


def trust_summary(trust: TrustOptions, entries: list[ModelRun], index, classes, has_clean) -> dict:
    """The run-level ``trust`` entry of metrics.json: instrument, method, notes, flagged."""
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
    return {
        "lr_instrument": trust.instrument,
        "uncertainty": UNCERTAINTY_METHOD if trust.uncertainty else None,
        "calibration_target": "clean" if trust.uncertainty and has_clean else None,
        "notes": list(trust.notes),
        "flagged": flagged,
    }
