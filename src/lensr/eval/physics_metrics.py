"""Physics metrics of SR images against the noise-free truth: what a lensing scientist checks.

Per image, on the HR grid, against the noise-free HR (``hr_clean``):

``flux_error``     relative flux error inside the arc region: sum(SR) / sum(truth) - 1 over
                   the arc mask (truth above ``ARC_FRACTION`` of its peak, dilated by
                   ``ARC_DILATE`` pixels)
``radius_error``   ring-radius error in arcsec: flux-weighted mean distance of the arc mask
                   pixels from the lens centre, SR minus truth (:func:`ring_radius`; on the
                   noise-free images it tracks the simulator's theta_E, see
                   ``radius_vs_theta_e``)
``profile_error``  relative L2 error of the arc's azimuthally averaged radial profile
``psnr_sub`` / ``psnr_rest``  PSNR (project convention: min-max of the truth, data range
                   1) in the arc region inside discs of ``SUB_RADIUS`` arcsec around the
                   subhalos of the dataset's subhalo table, and in the rest of the arc
                   region (images with subhalos on the arc only)

:class:`PhysicsRecorder` collects them chunk by chunk during ``evaluate`` and summarises
them (mean and 95 % bootstrap interval) into ``metrics.json["physics"]``.

Example::

    mask = arc_mask(clean)
    ring_radius(clean, mask, centre=(74.5, 74.5), pixel_scale=0.05)   # arcsec
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lensr.eval.stats import bootstrap_summary

ARC_FRACTION = 0.1
ARC_DILATE = 2
SUB_RADIUS = 0.15
"""Arc mask threshold (fraction of the truth's peak), its dilation (pixels), and the radius
(arcsec) of the discs around subhalos."""
PHYSICS_KEYS = ("flux_error", "radius_error", "profile_error", "psnr_sub", "psnr_rest")


def arc_mask(clean: np.ndarray, *, fraction: float = ARC_FRACTION, dilate: int = ARC_DILATE):
    """Boolean mask of the arc region: ``clean`` above ``fraction`` of its peak, dilated.

    Example::

        arc_mask(np.pad(np.ones((3, 3)), 5), dilate=1).sum()   # 5x5 = 25 pixels
    """
    clean = np.asarray(clean, dtype=np.float64)
    mask = clean > fraction * clean.max()
    if dilate > 0:
        mask = ndimage.binary_dilation(mask, iterations=dilate)
    return mask


def _radii(shape, centre) -> np.ndarray:
    rows, cols = np.indices(shape, dtype=np.float64)
    return np.hypot(rows - centre[0], cols - centre[1])


def ring_radius(image: np.ndarray, mask: np.ndarray, *, centre, pixel_scale: float) -> float:
    """Flux-weighted mean distance (arcsec) of the ``mask`` pixels from ``centre`` (row, col
    in pixels); negative flux is clipped to 0. NaN when the mask holds no flux.

    Example::

        ring_radius(ring_image, arc_mask(ring_image), centre=(74.5, 74.5), pixel_scale=0.05)
    """
    w = np.clip(np.asarray(image, dtype=np.float64), 0, None) * mask
    total = w.sum()
    if total <= 0:
        return float("nan")
    return float((w * _radii(image.shape, centre)).sum() / total * pixel_scale)


def radial_profile(image, mask, *, centre, bins: np.ndarray) -> np.ndarray:
    """Mean of ``image`` over the ``mask`` pixels in each annulus ``bins`` (pixels); 0 where
    an annulus holds no mask pixel."""
    r = _radii(image.shape, centre)[mask]
    v = np.asarray(image, dtype=np.float64)[mask]
    sums = np.histogram(r, bins=bins, weights=v)[0]
    counts = np.histogram(r, bins=bins)[0]
    return np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)


def _psnr_in(pred, clean, mask) -> float:
    if not mask.any():
        return float("nan")
    lo, hi = clean.min(), clean.max()
    span = hi - lo if hi > lo else 1.0
    mse = np.mean(((pred[mask] - lo) / span - (clean[mask] - lo) / span) ** 2)
    return float(10 * np.log10(1.0 / max(mse, 1e-10)))


def disc_mask(shape, points, *, radius_px: float) -> np.ndarray:
    """Union of discs of ``radius_px`` around ``points`` ((row, col) pixels)."""
    rows, cols = np.indices(shape, dtype=np.float64)
    mask = np.zeros(shape, dtype=bool)
    for r, c in points:
        mask |= np.hypot(rows - r, cols - c) <= radius_px
    return mask


def image_metrics(pred, clean, *, centre, pixel_scale, subhalos=()) -> dict[str, float]:
    """The per-image metrics of the module docstring for one prediction (2-D arrays).

    ``centre`` is the lens centre (row, col) in pixels, ``subhalos`` the subhalo positions
    (row, col) in pixels.

    Example::

        image_metrics(sr, clean, centre=(74.5, 74.5), pixel_scale=0.05)["flux_error"]
    """
    pred, clean = np.asarray(pred, np.float64), np.asarray(clean, np.float64)
    mask = arc_mask(clean)
    flux = clean[mask].sum()
    out = {"flux_error": float(pred[mask].sum() / flux - 1) if flux > 0 else float("nan")}
    out["radius_error"] = ring_radius(
        pred, mask, centre=centre, pixel_scale=pixel_scale
    ) - ring_radius(clean, mask, centre=centre, pixel_scale=pixel_scale)
    r = _radii(clean.shape, centre)[mask]
    bins = np.arange(np.floor(r.min()), np.ceil(r.max()) + 1.0, 1.0) if r.size else np.arange(2)
    p_true = radial_profile(clean, mask, centre=centre, bins=bins)
    p_pred = radial_profile(pred, mask, centre=centre, bins=bins)
    norm = np.linalg.norm(p_true)
    out["profile_error"] = float(np.linalg.norm(p_pred - p_true) / norm) if norm else float("nan")
    discs = disc_mask(clean.shape, subhalos, radius_px=SUB_RADIUS / pixel_scale)
    sub, rest = mask & discs, mask & ~discs
    has_sub = bool(len(subhalos)) and sub.any() and rest.any()
    out["psnr_sub"] = _psnr_in(pred, clean, sub) if has_sub else float("nan")
    out["psnr_rest"] = _psnr_in(pred, clean, rest) if has_sub else float("nan")
    return out


def _summary(values: np.ndarray, boot: dict) -> dict | None:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return bootstrap_summary(v, **boot) if v.size else None


class PhysicsRecorder:
    """Physics metrics of every model of an ``evaluate`` run, collected chunk by chunk.

    Inactive (every call a no-op, :meth:`summary` None) without noise-free HR images or
    lens parameters (``theta_e``, ``lens_x``, ``lens_y``) in the dataset.
    """

    def __init__(self, ds):
        params = ds.params
        names = params.dtype.names if params is not None else ()
        # Not on a mixture of pixel scales (its hr_pixel_scale attr is NaN).
        pixel = float(ds.attrs.get("hr_pixel_scale", 0.05))
        self.active = (
            ds.hr_clean is not None
            and {"theta_e", "lens_x", "lens_y"} <= set(names or ())
            and np.isfinite(pixel)
        )
        self.values: dict[str, dict[str, list[float]]] = {}
        self.truth_radius: list[float] = []
        self.theta_e: list[float] = []
        if not self.active:
            return
        self.params, self.ds = params, ds
        self.pixel_scale = pixel
        table = ds.subhalos()
        self.subhalos = {int(i): table[table["image"] == i] for i in np.unique(table["image"])}
        self.chunk_info: list[dict] = []

    def _geometry(self, position: int, shape) -> dict:
        p, ps = self.params[position], self.pixel_scale
        c0 = ((shape[0] - 1) / 2, (shape[1] - 1) / 2)
        rows = self.subhalos.get(int(self.ds.index[position]))
        subs = (
            []
            if rows is None
            else [
                (c0[0] + y / ps, c0[1] + x / ps) for x, y in zip(rows["x"], rows["y"], strict=True)
            ]
        )
        return {"centre": (c0[0] + p["lens_y"] / ps, c0[1] + p["lens_x"] / ps), "subhalos": subs}

    def chunk(self, start: int, clean: np.ndarray | None) -> None:
        """Begin a chunk of images starting at ``start``; measures the truth's ring radius."""
        if not self.active or clean is None:
            return
        self.clean = np.asarray(clean)
        self.chunk_info = [self._geometry(start + i, c.shape) for i, c in enumerate(self.clean)]
        for i, c in enumerate(self.clean):
            g = self.chunk_info[i]
            self.truth_radius.append(
                ring_radius(c, arc_mask(c), centre=g["centre"], pixel_scale=self.pixel_scale)
            )
            self.theta_e.append(float(self.params[start + i]["theta_e"]))

    def add(self, name: str, sr: np.ndarray) -> None:
        """Score one model's outputs for the current chunk."""
        if not self.active or not self.chunk_info:
            return
        store = self.values.setdefault(name, {k: [] for k in PHYSICS_KEYS})
        for s, c, g in zip(sr, self.clean, self.chunk_info, strict=True):
            for k, v in image_metrics(s, c, pixel_scale=self.pixel_scale, **g).items():
                store[k].append(v)

    def summary(self, boot: dict) -> dict | None:
        """``{"models": {name: {metric: S}}, "radius_vs_theta_e": S, ...}`` or None."""
        if not self.active or not self.truth_radius:
            return None
        ratio = np.asarray(self.truth_radius) / np.asarray(self.theta_e)
        return {
            "target": "clean",
            "arc_fraction": ARC_FRACTION,
            "arc_dilate_px": ARC_DILATE,
            "sub_radius_arcsec": SUB_RADIUS,
            "radius_vs_theta_e": _summary(ratio, boot),
            "models": {
                name: {k: _summary(np.asarray(v), boot) for k, v in vals.items()}
                for name, vals in self.values.items()
            },
        }
