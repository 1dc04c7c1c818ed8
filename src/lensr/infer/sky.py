"""Sky and normalisation of real inputs for ``lensr upscale`` (the out-of-prior check that
uses them is :mod:`lensr.infer.prior`).

Real cutouts rarely look like the training pairs: they carry a sky pedestal (a survey's
residual background, or ~0.15 after DeepLense's per-image min-max normalisation) that the
sky-subtracted HR targets of every lensr prior lack, and their noise may be far from
anything a model saw. Units do not matter otherwise: a network sees ``x / scale`` (the LR
image's 99.5th percentile, :mod:`lensr.data.normalize`), so surface brightness, counts or
[0, 1] min-max values give the same output up to that factor.

* :func:`estimate_sky` measures the background level and its noise with astropy's
  ``sigma_clipped_stats`` on the image border (the lens sits in the middle), and
  :func:`remove_sky` subtracts the level when it is a real pedestal (``sky="auto"``: above
  half the noise, for a model whose card says it was trained on sky-subtracted pairs, i.e.
  records a ``prior_range``; for other models and baselines "auto" only measures and
  records), always (``"subtract"``), or never (``"none"``); ``"keep"`` subtracts it for
  the model and adds it back to the output.
* :func:`noise_to_signal` is the noise statistic a model card stores for its training
  prior (``prior_range.noise_rel``: the MAD noise estimate over the LR scale), which
  :mod:`lensr.infer.prior` compares an input with.

Example::

    images, records = remove_sky(lr_stack, "auto")
    levels = [r.level for r in records]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from astropy.stats import sigma_clipped_stats

from lensr.data.inspect import estimate_noise_sigma
from lensr.data.normalize import lr_scale_np
from lensr.errors import LensrError

SKY_MODES = ("auto", "subtract", "keep", "none")
BORDER = 0.2
"""Share of the image side, on each edge, whose pixels measure the sky."""
PEDESTAL_IN_SIGMA = 0.5
"""``sky="auto"`` subtracts a level above this many noise sigmas."""


@dataclass
class SkyRecord:
    """What ``lensr upscale`` assumed about one input image."""

    level: float
    """Background level (sigma-clipped median of the border), input units."""
    sigma: float
    """Background noise (sigma-clipped std of the border), input units."""
    subtracted: bool
    """Whether ``level`` was removed before the model ran."""
    added_back: bool
    """Whether ``level`` was added to the output again (``sky="keep"``)."""
    noise_rel: float
    """MAD noise estimate / LR scale of the image the model saw (the card's statistic)."""

    def as_dict(self) -> dict:
        return asdict(self)


def estimate_sky(image: np.ndarray, *, border: float = BORDER) -> tuple[float, float]:
    """Background ``(level, sigma)`` of one (H, W) image from the pixels within ``border``
    of its edges, 3-sigma clipped (the whole image if it is too small for a border)."""
    img = np.asarray(image, dtype=np.float64)
    h, w = img.shape
    bh, bw = max(1, int(border * h)), max(1, int(border * w))
    mask = np.zeros((h, w), dtype=bool)
    mask[:bh], mask[-bh:], mask[:, :bw], mask[:, -bw:] = True, True, True, True
    pixels = img[mask] if mask.sum() >= 16 else img.ravel()
    _, median, std = sigma_clipped_stats(pixels, sigma=3.0, maxiters=10)
    return float(median), float(std)


def noise_to_signal(images: np.ndarray) -> np.ndarray:
    """Per image (N,): the MAD noise estimate over the LR normalisation scale, i.e. the noise
    level in the units the network sees."""
    images = np.asarray(images, dtype=np.float64)
    return estimate_noise_sigma(images) / lr_scale_np(images)


def remove_sky(
    images: np.ndarray, mode: str = "auto", *, sky_subtracted_prior: bool = True
) -> tuple[np.ndarray, list[SkyRecord]]:
    """``images`` (N, H, W) with their sky pedestal removed as ``mode`` says, and a record
    per image of what was assumed; ``sky_subtracted_prior`` False makes "auto" only
    measure."""
    if mode not in SKY_MODES:
        raise LensrError(f"unknown sky mode {mode!r}; use one of {', '.join(SKY_MODES)}")
    out = np.array(images, dtype=np.float32, copy=True)
    records = []
    for i, img in enumerate(out):
        level, sigma = estimate_sky(img) if mode != "none" else (0.0, 0.0)
        subtract = mode in ("subtract", "keep") or (
            mode == "auto" and sky_subtracted_prior and abs(level) > PEDESTAL_IN_SIGMA * sigma
        )
        if subtract:
            out[i] = img - np.float32(level)
        records.append(
            SkyRecord(
                level=level,
                sigma=sigma,
                subtracted=bool(subtract),
                added_back=bool(subtract and mode == "keep"),
                noise_rel=float(noise_to_signal(out[i][None])[0]),
            )
        )
    return out, records


def restore_sky(sr: np.ndarray, records: list[SkyRecord]) -> np.ndarray:
    """Add the level back to the outputs whose record says ``added_back`` (``sky="keep"``)."""
    sr = np.asarray(sr)
    for i, r in enumerate(records):
        if r.added_back:
            sr[i] = sr[i] + np.float32(r.level)
    return sr


def header_cards(mode: str, record: SkyRecord, warning: str | None, checked: str) -> dict:
    """FITS keywords (value, comment) recording what upscale assumed about one image;
    ``warning`` and ``checked`` are the out-of-prior check's (:mod:`lensr.infer.prior`)."""
    return {
        "LSKYMODE": (mode, "lensr sky mode: auto/subtract/keep/none"),
        "LSKYLEV": (record.level, "sky level estimated (input units, clipped)"),
        "LSKYSIG": (record.sigma, "sky noise estimated (input units, clipped)"),
        "LSKYSUB": (record.subtracted, "sky level subtracted before the model"),
        "LSKYADD": (record.added_back, "sky level added back to the output"),
        "LNOISREL": (record.noise_rel, "noise / LR scale seen by the model"),
        "LPRIOR": ("out" if warning else "in", "input vs the model's training prior"),
        "LPRCHK": (checked, "what was compared with the prior"),
    }
