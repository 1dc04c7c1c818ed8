"""The LR instrument as an operator: HR image -> LR image, and its adjoint.

``D(x) = block_mean_s(x * PSF_LR)``: the LR PSF applied on the HR grid, then an s x s block
mean, exactly the simulator's recipe (:mod:`lensr.sim.render`), in torch so that it runs
on any device, batched, and is differentiable. Each image may have its own PSF (the
``observed`` preset varies FWHM, shape and sub-pixel offset per image).

An SR image estimates the HR image, which already carries the HR PSF, so the operator that
maps it to LR uses the *matching* kernel K with PSF_LR = PSF_HR * K (:func:`matching_kernel`);
the sky itself maps to LR with PSF_LR. For simulated datasets, :func:`instrument_for`
rebuilds each image's kernels and LR noise variance from the stored ``params`` and config,
so an SR image can be degraded and compared with the observed LR image in units of its
noise (chi-square per pixel).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from lensr.sim.config import SimConfig
from lensr.sim.noise import band_rate, sky_rate
from lensr.sim.psf import psf_kernel

FFT_ABOVE = 25
"""Kernels wider than this (pixels) are applied by FFT: seeing-limited Moffat PSFs on a
0.1" grid are ~121 px wide, where a direct convolution costs ~100x more."""


def _correlate_fft(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``F.conv2d(x, k, padding=K//2)`` (zero padding, per-image or shared k) by FFT."""
    h, w = x.shape[-2:]
    size, pad = k.shape[-1], k.shape[-1] // 2
    shape = (h + size - 1, w + size - 1)  # linear, not circular, convolution
    # conv2d correlates with k, i.e. convolves with flip(k).
    spectrum = torch.fft.rfft2(x, s=shape) * torch.fft.rfft2(torch.flip(k, (-2, -1)), s=shape)
    return torch.fft.irfft2(spectrum, s=shape)[..., pad : pad + h, pad : pad + w]


def _pad_to(kernels: list[np.ndarray]) -> np.ndarray:
    size = max(k.shape[0] for k in kernels)
    out = np.zeros((len(kernels), size, size))
    for i, k in enumerate(kernels):
        o = (size - k.shape[0]) // 2
        out[i, o : o + k.shape[0], o : o + k.shape[1]] = k
    return out


class Degradation:
    """``D`` and its adjoint ``D^T`` for a batch of HR images (N, 1, H, W).

    ``kernels``: one PSF kernel on the HR grid for all images (k, k) or one per image
    (N, k, k), odd sizes, as made by :func:`lensr.sim.psf.psf_kernel`; ``scale``: s.

    >>> D = Degradation(kernels=psf_kernel(kind="gaussian", fwhm=0.16, pixel_scale=0.05), scale=2)
    >>> lr = D(hr)               # (N, 1, H/2, W/2)
    """

    def __init__(self, *, kernels: np.ndarray | torch.Tensor, scale: int):
        k = torch.as_tensor(np.asarray(kernels), dtype=torch.float64)
        if k.ndim == 2:
            k = k[None]
        if k.shape[-1] % 2 == 0 or k.shape[-1] != k.shape[-2]:
            raise ValueError(f"PSF kernels must be square with an odd size, got {tuple(k.shape)}")
        # F.conv2d correlates; flipping the kernel makes it the convolution the simulator uses.
        self.kernels = torch.flip(k, dims=(-2, -1))[:, None]  # (N or 1, 1, k, k)
        self.scale = scale

    def _correlate(self, x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        k = kernels.to(x)
        if k.shape[0] not in (1, n):
            raise ValueError(f"{k.shape[0]} PSF kernels for a batch of {n} images")
        if k.shape[-1] > FFT_ABOVE:
            return _correlate_fft(x, k)
        pad = k.shape[-1] // 2
        if k.shape[0] == 1:
            return F.conv2d(x, k, padding=pad)
        # One kernel per image: images become channels of a grouped convolution.
        return F.conv2d(x.transpose(0, 1), k, padding=pad, groups=n).transpose(0, 1)

    def __call__(self, hr: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self._correlate(hr, self.kernels), self.scale)

    def adjoint(self, lr: torch.Tensor) -> torch.Tensor:
        """``D^T``: spread each LR pixel over its s x s block (/ s^2), then the flipped PSF."""
        up = lr.repeat_interleave(self.scale, dim=-2).repeat_interleave(self.scale, dim=-1)
        return self._correlate(up / self.scale**2, torch.flip(self.kernels, dims=(-2, -1)))


def matching_kernel(k_lr: np.ndarray, k_hr: np.ndarray, *, eps: float = 1e-4) -> np.ndarray:
    """K with ``k_hr * K ~= k_lr`` (Wiener-regularised Fourier division), same size as k_lr.

    Exact for two Gaussians (K is then the Gaussian of sigma^2 = s_lr^2 - s_hr^2), close for
    Moffat profiles, where ``eps`` (relative to the peak power of k_hr) tames the division.
    """
    size = k_lr.shape[0] + k_hr.shape[0]
    size += 1 - size % 2
    f_lr = np.fft.rfft2(k_lr, s=(size, size))
    f_hr = np.fft.rfft2(k_hr, s=(size, size))
    power = np.abs(f_hr) ** 2
    full = np.fft.irfft2(f_lr * np.conj(f_hr) / (power + eps * power.max()), s=(size, size))
    # The quotient is centred at (c_lr - c_hr); roll it to the middle, crop to k_lr's size.
    c = (k_lr.shape[0] // 2) - (k_hr.shape[0] // 2)
    full = np.roll(full, (size // 2 - c, size // 2 - c), axis=(0, 1))
    h = k_lr.shape[0] // 2
    k = full[size // 2 - h : size // 2 + h + 1, size // 2 - h : size // 2 + h + 1]
    return k / k.sum()


def instrument_for(
    ds, positions, *, source: str = "hr"
) -> tuple[Degradation, Callable[[np.ndarray], np.ndarray]]:
    """The LR instrument of images ``positions`` of a simulated dataset.

    ``source="hr"`` (default) degrades HR-like images (SR outputs, the noise-free HR) with
    the matching kernel; ``source="sky"`` degrades the PSF-free sky with the LR PSF.
    Returns ``(D, variance)`` where ``variance(lr_model)`` gives the LR noise variance per
    pixel (surface-brightness units squared) for a noise-free LR image ``lr_model`` (N, h, w):
    Poisson source + sky + read noise with each image's exposure time, as simulated.
    Correlated noise and cosmic rays (``observed``) are not in this diagonal model.
    """
    if ds.params is None or not ds.attrs.get("config"):
        raise ValueError(f"{ds.path} has no simulation parameters: its LR instrument is unknown")
    cfg = SimConfig.model_validate(json.loads(ds.attrs["config"]))
    params = ds.params[np.asarray(positions)]
    if source not in ("hr", "sky"):
        raise ValueError(f"source must be 'hr' or 'sky', not {source!r}")
    kernels = []
    for p in params:
        k = psf_kernel(
            kind=cfg.lr.psf.type,
            fwhm=p["lr_fwhm"],
            beta=p["lr_beta"],
            pixel_scale=cfg.hr_pixel_scale,
            offset=(p["offset_x"], p["offset_y"]),
        )
        if source == "hr":
            k_hr = psf_kernel(
                kind=cfg.hr.psf.type,
                fwhm=p["hr_fwhm"],
                beta=p["hr_beta"],
                pixel_scale=cfg.hr_pixel_scale,
            )
            k = matching_kernel(k, k_hr)
        kernels.append(k)
    area = cfg.lr_pixel_scale**2
    rate = band_rate(cfg.lr, cfg.flux_zero_point) * area  # e-/s per unit surface brightness
    sky = sky_rate(cfg.lr, area)
    read_var = cfg.lr.num_exposures * cfg.lr.read_noise**2
    t = params["lr_exposure"][:, None, None]

    def variance(lr_model: np.ndarray) -> np.ndarray:
        electrons = np.clip(lr_model, 0, None) * rate * t
        return (electrons + sky * t + read_var) / (rate * t) ** 2

    return Degradation(kernels=_pad_to(kernels), scale=cfg.scale), variance
