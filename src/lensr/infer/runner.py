"""``upscale_array`` with the trust options: the step that turns LR stacks into outputs.

:class:`Runner` fixes the options of :func:`lensr.infer.arrays.upscale_array`, applies
the two trust options of ``lensr upscale`` (``uncertainty``: the mean and per-pixel sigma
over 8 dihedral transforms and an ensemble, :mod:`lensr.infer.uncertainty`;
``consistent``: back-projection onto the LR image, :mod:`lensr.infer.projection`) and the
units conversion, and drives one progress bar. :func:`load_models` and
:func:`instrument_source` prepare its models and LR instrument, checked before any work.

Example::

    nets = load_models(["bicubic"], scale=None)
    with tqdm() as bar:
        sr, sigma = Runner(nets, factor=1.0, bar=bar, batch_size=16)(lr)   # sigma None
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from torch import nn
from tqdm import tqdm

from lensr.data.store import open_dataset
from lensr.errors import LensrError
from lensr.infer.arrays import check_finite, model_percentile, model_scale, upscale_array
from lensr.infer.prior import checked, prior_range, prior_warning, unchecked_note
from lensr.infer.projection import project
from lensr.infer.sky import remove_sky, restore_sky
from lensr.infer.uncertainty import predict_with_uncertainty
from lensr.instrument.from_dataset import (
    LRInstrument,
    constant_variance,
    gaussian_degradation,
    has_simulated_instrument,
    lr_instrument,
)
from lensr.instrument.noise import estimate_noise_variance
from lensr.models.checkpoint import resolve_model

InstrumentFn = Callable[[np.ndarray, np.ndarray | None], LRInstrument]
"""``(lr images, their positions in an HDF5 dataset or None) -> their LR instrument``."""


class Runner:
    """``upscale_array`` with fixed options, the trust options, the units conversion and
    one progress bar. Calls return ``(sr, sigma)``; sigma is None without uncertainty."""

    def __init__(
        self,
        models: list[nn.Module],
        *,
        factor: float,
        bar: tqdm,
        uncertainty: bool = False,
        instrument: InstrumentFn | None = None,
        sky: str = "none",
        pixel_scale: float | None = None,
        psf_fwhm: float | None = None,
        **options,
    ):
        self.models, self.factor, self.bar, self.options = models, factor, bar, options
        self.uncertainty, self.instrument = uncertainty, instrument
        # lensr.infer.sky and .prior: pedestal removal and the out-of-prior check (on the
        # noise, and on the LR pixel scale and PSF FWHM in arcsec when known), per image.
        self.sky, self.sky_records, self.warnings, self.checked = sky, [], [], []
        self.pixel_scale, self.psf_fwhm = pixel_scale, psf_fwhm

    def __call__(
        self,
        images: np.ndarray,
        *,
        positions: np.ndarray | None = None,
        pixel_scale=None,
        psf_fwhm=None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``pixel_scale`` and ``psf_fwhm``: the LR pixel size and PSF FWHM of these images
        in arcsec (one value, or one per image, NaN where unknown) where the Runner's own
        (the user's) are None."""
        step = self.options["batch_size"]
        parts, sigmas = [], []
        records = []
        if self.sky != "none":
            check_finite(images, "input")  # before the sky statistics see the bad pixels
            meta = getattr(self.models[0], "metadata", None)
            trained_sky_free = prior_range(meta) is not None
            images, records = remove_sky(images, self.sky, sky_subtracted_prior=trained_sky_free)
            self.sky_records += records
            scales = _per_image(self.pixel_scale or pixel_scale, len(records))
            fwhms = _per_image(self.psf_fwhm or psf_fwhm, len(records))
            for r, ps, fwhm in zip(records, scales, fwhms, strict=True):
                known = dict(pixel_scale=ps, psf_fwhm=fwhm)
                self.warnings.append(prior_warning(r, meta, **known))
                self.checked.append(checked(meta, **known))
        for start in range(0, len(images), step):
            chunk = images[start : start + step]
            sr, sigma = self._one(
                chunk, None if positions is None else positions[start : start + step]
            )
            parts.append(sr)
            sigmas.append(sigma)
            self.bar.update(len(sr))
        sr = restore_sky(np.concatenate(parts), records)
        sigma = np.concatenate(sigmas) if self.uncertainty else None
        if self.factor != 1:
            sr = sr * np.float32(self.factor)
            sigma = None if sigma is None else sigma * np.float32(self.factor)
        return sr, sigma

    def prior_summary(self) -> str | None:
        """One line for the inputs outside the model's training prior so far, or None:
        ``"N of M input(s) <the first one's warning>"``."""
        out = [w for w in self.warnings if w]
        return f"{len(out)} of {len(self.warnings)} input(s) {out[0]}" if out else None

    def notes(self) -> list[str]:
        """The lines to show the user after the run: :meth:`prior_summary` and
        :meth:`unchecked_summary`, those that apply."""
        return [line for line in (self.prior_summary(), self.unchecked_summary()) if line]

    def unchecked_summary(self) -> str | None:
        """One line when the model's card records its instrument but the pixel scale of
        some inputs was unknown, so their resolution was not checked; else None."""
        meta = getattr(self.models[0], "metadata", None)
        ranges = prior_range(meta) or {}
        blind = sum("pixel" not in c for c in self.checked)
        if "lr_pixel_scale" not in ranges or not blind:
            return None
        return f"{blind} of {len(self.checked)} input(s): {unchecked_note(meta)}"

    def _one(self, lr: np.ndarray, positions) -> tuple[np.ndarray, np.ndarray | None]:
        sigma = None
        if self.uncertainty:
            sr, sigma = predict_with_uncertainty(lr, self.models, **self.options)
        else:
            sr = upscale_array(lr, self.models[0], **self.options)
        if self.instrument is not None:
            inst = self.instrument(lr, positions)
            sr = project(sr, lr, inst.D, variance=inst.variance)
        return sr, sigma


def _per_image(value, n: int) -> list[float | None]:
    """One value or one per image (NaN: unknown) as ``n`` floats or None."""
    values = np.broadcast_to(np.asarray(np.nan if value is None else value, float), (n,))
    return [float(v) if np.isfinite(v) else None for v in values]


def load_models(specs: list[str], *, scale: int | None) -> list[nn.Module]:
    """Resolve every model spec (baseline name or checkpoint); they must share one scale."""
    nets = []
    for spec in specs:
        net = resolve_model(spec, scale=scale)
        model_percentile(net, name=f"model {spec}")
        nets.append(net)
    scales = [model_scale(net) for net in nets]
    if len(set(scales)) > 1:
        raise LensrError(f"the models of an ensemble must share one scale, got {scales}")
    return nets


def uncertainty_note(n_models: int) -> str:
    """The provenance line saying what the uncertainty map of ``n_models`` models is."""
    ensemble = f" x {n_models} models" if n_models > 1 else ""
    return f"sigma over 8 dihedral transforms{ensemble}; the image is their mean"


def instrument_source(
    src: Path, kind: str, *, scale: int, lr_psf_fwhm, hr_psf_fwhm, pixel_scale
) -> InstrumentFn:
    """How to get the LR instrument of a batch of input images, checked before any work.

    An HDF5 dataset ``src`` (``kind`` "h5") gives its own simulated instrument per image;
    otherwise a Gaussian LR PSF of ``lr_psf_fwhm`` arcsec (``hr_psf_fwhm`` on HR) on LR
    pixels of ``pixel_scale`` arcsec, with the noise variance estimated from each image.
    """
    hint = (
        "--consistent needs the LR instrument: give --lr-psf-fwhm and --pixel-scale "
        "(arcsec), or a simulated HDF5 dataset"
    )
    if kind == "h5":
        with open_dataset(src) as ds:
            simulated = has_simulated_instrument(ds)
            if not simulated:
                try:
                    lr_instrument(
                        ds,
                        [0],
                        lr=ds.lr[:1],
                        lr_psf_fwhm=lr_psf_fwhm,
                        hr_psf_fwhm=hr_psf_fwhm,
                        pixel_scale=pixel_scale,
                    )
                except LensrError as err:
                    raise LensrError(f"{hint} ({err})") from None

        def from_dataset(lr: np.ndarray, positions) -> LRInstrument:
            with open_dataset(src) as ds:
                return lr_instrument(
                    ds,
                    positions,
                    lr=lr,
                    lr_psf_fwhm=lr_psf_fwhm,
                    hr_psf_fwhm=hr_psf_fwhm,
                    pixel_scale=pixel_scale,
                )

        return from_dataset
    if lr_psf_fwhm is None or pixel_scale is None:
        raise LensrError(hint)
    D = gaussian_degradation(
        lr_fwhm=lr_psf_fwhm, hr_fwhm=hr_psf_fwhm, pixel_scale=pixel_scale, scale=scale
    )

    def gaussian(lr: np.ndarray, positions) -> LRInstrument:
        variance = constant_variance(estimate_noise_variance(lr))
        return LRInstrument(D=D, variance=variance, source="gaussian")

    return gaussian
