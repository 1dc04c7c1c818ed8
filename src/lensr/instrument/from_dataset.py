"""The LR instrument of a dataset's images: ``D`` (HR -> LR) and the LR noise variance.

Simulated datasets carry their instrument: :func:`instrument_for` rebuilds each image's
kernels and LR noise model from the stored ``params`` and the simulation config (read as
the stored JSON, so this layer needs no simulator). An SR image estimates the HR image,
which already carries the HR PSF, so the operator that maps it to LR uses the *matching*
kernel K with PSF_LR = PSF_HR * K (``source="hr"``); the PSF-free sky maps to LR with
PSF_LR itself (``source="sky"``).

Any other data: :func:`lr_instrument` builds a Gaussian ``D`` from a user-given LR PSF
FWHM (:func:`gaussian_degradation`) and a constant noise variance per image estimated from
the LR image itself (:func:`lensr.instrument.noise.estimate_noise_variance`).
:class:`LRInstrumentTable` holds the same per image, by dataset position, for the
physics-informed training's data loaders.

Example::

    D, variance = instrument_for(ds, np.arange(8))
    chi2 = (D.apply_numpy(sr) - ds.lr[:8]) ** 2 / variance(D.apply_numpy(sr))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lensr.data.inspect import estimate_noise_sigma
from lensr.data.store import open_dataset
from lensr.errors import LensrError
from lensr.instrument.noise import (
    band_rate,
    estimate_noise_variance,
    noise_variance,
    read_variance,
    sky_rate,
)
from lensr.instrument.operators import Degradation
from lensr.instrument.psf import band_kernel, matching_kernel, pad_kernels, psf_kernel

VarianceFn = Callable[[np.ndarray], np.ndarray]
"""``variance(lr_model (N, h, w)) -> per-pixel LR noise variance``, broadcastable to it."""


def has_simulated_instrument(ds) -> bool:
    """Whether ``ds`` stores the simulation parameters :func:`instrument_for` needs: not a
    mixture of several variants (the parameters do not record each image's variant; a
    one-variant preset is stored resolved, :func:`lensr.sim.run.simulate`)."""
    if ds.params is None or not ds.attrs.get("config"):
        return False
    return len(ds.config.get("variants") or []) <= 1


def instrument_for(ds, positions, *, source: str = "hr") -> tuple[Degradation, VarianceFn]:
    """The LR instrument of images ``positions`` of a simulated dataset.

    ``source="hr"`` (default) degrades HR-like images (SR outputs, the noise-free HR) with
    the matching kernel; ``source="sky"`` degrades the PSF-free sky with the LR PSF.
    Returns ``(D, variance)`` where ``variance(lr_model)`` gives the LR noise variance per
    pixel (surface-brightness units squared) for a noise-free LR image ``lr_model`` (N, h, w):
    Poisson source + sky + read noise with each image's exposure time, as simulated.
    Correlated noise and cosmic rays (``observed``) are not in this diagonal model.

    Example::

        D, variance = instrument_for(ds, [0, 1, 2], source="sky")
    """
    if not has_simulated_instrument(ds):
        raise ValueError(
            f"{ds.path} has no simulation parameters per image (imported, or a mixture of "
            "variants): its LR instrument is unknown"
        )
    cfg = ds.config
    params = ds.params[np.asarray(positions)]
    if source not in ("hr", "sky"):
        raise ValueError(f"source must be 'hr' or 'sky', not {source!r}")
    try:
        hr_pixel, scale, lr = cfg["hr_pixel_scale"], cfg["scale"], cfg["lr"]
        kinds = {"hr": cfg["hr"]["psf"]["type"], "lr": lr["psf"]["type"]}
        rate = band_rate(lr["zero_point"], cfg["flux_zero_point"])
        area = (hr_pixel * scale) ** 2
        sky = sky_rate(lr["sky_brightness"], lr["zero_point"], area)
        read_var = read_variance(lr["read_noise"], lr["num_exposures"])
        background_rms = lr.get("background_rms", 0.0)  # e-/s per pixel (deeplense-1)
    except (KeyError, TypeError) as err:
        raise LensrError(f"{ds.path}: its stored simulation config lacks {err}") from err
    kernels = []
    for p in params:
        k = band_kernel(p, "lr", kind=kinds["lr"], pixel_scale=hr_pixel)
        if source == "hr":
            k = matching_kernel(k, band_kernel(p, "hr", kind=kinds["hr"], pixel_scale=hr_pixel))
        kernels.append(k)
    rate = rate * area  # e-/s per unit surface brightness
    t = params["lr_exposure"][:, None, None]

    def variance(lr_model: np.ndarray) -> np.ndarray:
        background = (background_rms * t) ** 2  # the simulator adds it to the read noise
        electrons = noise_variance(lr_model * rate * t, sky=sky * t, read_var=read_var + background)
        return electrons / (rate * t) ** 2

    return Degradation(kernels=pad_kernels(kernels), scale=scale), variance


@dataclass
class LRInstrument:
    """The LR instrument of some images: ``D``, its noise ``variance`` and where they came from.

    ``source`` is "simulation" (per-image PSF and noise model from the stored parameters)
    or "gaussian" (a user-given FWHM, noise variance estimated from each LR image).
    """

    D: Degradation
    variance: VarianceFn
    source: str


def constant_variance(variance: np.ndarray) -> VarianceFn:
    """A noise model with one variance per image (N,), whatever the model image.

    Example::

        chi2, _ = lr_chi2(sr, lr, D, constant_variance(estimate_noise_variance(lr)))
    """
    per_image = np.asarray(variance, dtype=np.float64)[:, None, None]
    return lambda model: np.broadcast_to(per_image, np.shape(model))


def gaussian_degradation(
    *, lr_fwhm: float, pixel_scale: float, scale: int, hr_fwhm: float = 0.0
) -> Degradation:
    """A Gaussian LR instrument for images with no simulation parameters.

    ``lr_fwhm`` and ``hr_fwhm`` (default 0: the SR image is taken as the PSF-free sky)
    are PSF FWHMs in arcsec, ``pixel_scale`` the LR pixel size in arcsec and ``scale``
    the SR factor. SR images carry the HR PSF, so ``D`` blurs them with the matching
    Gaussian, FWHM sqrt(lr_fwhm^2 - hr_fwhm^2), on the HR grid, then block-averages.
    ``lr_fwhm=0`` gives a plain block mean (LR made by binning HR).

    Example::

        D = gaussian_degradation(lr_fwhm=0.16, hr_fwhm=0.087, pixel_scale=0.1, scale=2)
    """
    if not (lr_fwhm >= 0 and hr_fwhm >= 0 and pixel_scale > 0 and scale >= 1):
        raise LensrError(
            f"need lr_fwhm >= 0, hr_fwhm >= 0 and pixel_scale > 0 (arcsec), got "
            f"{lr_fwhm}, {hr_fwhm}, {pixel_scale}"
        )
    if hr_fwhm > lr_fwhm:
        raise LensrError(f'the HR PSF ({hr_fwhm}") cannot be wider than the LR PSF ({lr_fwhm}")')
    fwhm = float(np.sqrt(lr_fwhm**2 - hr_fwhm**2))
    hr_pixel = pixel_scale / scale
    if fwhm < 1e-3 * hr_pixel:
        kernel = np.ones((1, 1))
    else:
        kernel = psf_kernel(kind="gaussian", fwhm=fwhm, pixel_scale=hr_pixel)
    return Degradation(kernels=kernel, scale=scale)


def lr_instrument(
    ds,
    positions: Sequence[int],
    *,
    lr: np.ndarray,
    lr_psf_fwhm: float | None = None,
    hr_psf_fwhm: float = 0.0,
    pixel_scale: float | None = None,
) -> LRInstrument:
    """The LR instrument of images ``positions`` of dataset ``ds`` (their LR stack ``lr``).

    Simulated datasets: the stored per-image instrument and noise model (the user options
    are ignored). Otherwise a Gaussian ``D`` (:func:`gaussian_degradation`) from
    ``lr_psf_fwhm`` (arcsec; default None: raise), ``hr_psf_fwhm`` (default 0) and
    ``pixel_scale`` (LR arcsec per pixel; default the dataset's ``lr_pixel_scale``
    attribute), with a constant noise variance per image estimated from ``lr``.
    Raises a one-line :class:`LensrError` naming what is missing.

    Example::

        inst = lr_instrument(ds, [0, 1], lr=ds.lr[:2], lr_psf_fwhm=0.16, pixel_scale=0.1)
    """
    if has_simulated_instrument(ds):
        D, variance = instrument_for(ds, np.asarray(positions), source="hr")
        return LRInstrument(D=D, variance=variance, source="simulation")
    if lr_psf_fwhm is None:
        raise LensrError(
            f"{ds.path.name} has no simulation parameters per image (imported, or a mixture "
            "of variants), so its LR PSF is unknown; "
            "give the LR PSF FWHM (--lr-psf-fwhm, arcsec) to check LR-consistency"
        )
    if pixel_scale is None:
        pixel_scale = dataset_pixel_scale(ds)
    if pixel_scale is None:
        raise LensrError(
            f"{ds.path.name} records no LR pixel scale; give it (--pixel-scale, arcsec per LR "
            "pixel) with --lr-psf-fwhm"
        )
    D = gaussian_degradation(
        lr_fwhm=lr_psf_fwhm, hr_fwhm=hr_psf_fwhm, pixel_scale=pixel_scale, scale=ds.scale
    )
    return LRInstrument(
        D=D, variance=constant_variance(estimate_noise_variance(lr)), source="gaussian"
    )


def dataset_pixel_scale(ds) -> float | None:
    """The LR pixel size in arcsec a dataset records (attr ``lr_pixel_scale``), or None."""
    value = ds.attrs.get("lr_pixel_scale")
    try:
        return float(value) if value is not None and float(value) > 0 else None
    except (TypeError, ValueError):
        return None


class LRInstrumentTable:
    """The LR instrument of each of the images ``positions`` of the dataset at ``path``, by
    position, as the physics-informed training's data loaders need it.

    ``kernels[i]`` is image i's HR-to-LR kernel (for HR-like images: the matching kernel),
    float32, padded to one odd size, and ``variance(pos, lr)`` its LR noise variance per
    pixel for the (raw, unnormalised) LR image ``lr``. ``simulated`` says whether they come
    from the stored simulation parameters (:func:`instrument_for`); else (``noise`` is
    "uniform", or the data has no parameters) the kernel is the Gaussian matching kernel of
    ``psf_fwhm`` = (LR, HR) FWHMs in HR pixels and the variance one constant per image
    from :func:`lensr.data.inspect.estimate_noise_sigma`.

    Example::

        table = LRInstrumentTable("sim.h5", [0, 1], noise="auto", psf_fwhm=(3.2, 1.74))
        table.kernel(1), table.variance(1, lr)
    """

    def __init__(self, path, positions, *, noise: str, psf_fwhm: tuple[float, float]):
        positions = np.asarray(positions)
        with open_dataset(path) as ds:
            self.scale = ds.scale
            has_params = has_simulated_instrument(ds)
            if noise == "instrument" and not has_params:
                raise LensrError(
                    f"{path} has no simulation parameters per image (imported, or a mixture "
                    "of variants): use noise='uniform'"
                )
            self.simulated = has_params and noise != "uniform"
            if self.simulated:
                D, variance = instrument_for(ds, positions, source="hr")
                kernels = torch.flip(D.kernels[:, 0], (-2, -1)).numpy()
                # The variance is affine in the clipped LR model: keep its two coefficients.
                zeros = np.zeros((len(positions), 1, 1))
                self._offset = variance(zeros)[:, 0, 0]
                self._slope = variance(zeros + 1.0)[:, 0, 0] - self._offset
            else:
                lr_fwhm, hr_fwhm = psf_fwhm
                fwhm = float(np.sqrt(max(lr_fwhm**2 - hr_fwhm**2, 1e-6)))
                k = psf_kernel(kind="gaussian", fwhm=fwhm, pixel_scale=1.0)
                kernels = np.repeat(k[None], len(positions), axis=0)
        self.kernels = kernels.astype(np.float32)
        self.row = {int(p): i for i, p in enumerate(positions)}

    def kernel(self, pos: int) -> np.ndarray:
        return self.kernels[self.row[pos]]

    def variance(self, pos: int, lr: np.ndarray) -> np.ndarray:
        if not self.simulated:
            # Floored: a noise-free image must not get a zero variance.
            return np.full_like(lr, float(max(estimate_noise_sigma(lr) ** 2, 1e-20)))
        i = self.row[pos]
        return self._offset[i] + self._slope[i] * np.clip(lr, 0, None)

    def describe(self) -> dict:
        """JSON-able summary of how the LR-consistency term is computed."""
        return {"simulated": self.simulated, "kernel_size": int(self.kernels.shape[-1])}
