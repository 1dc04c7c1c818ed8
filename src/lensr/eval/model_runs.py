"""The models of an ``evaluate`` run: their display names, loading, and what each run produced.

:func:`display_name` and :func:`unique_names` name models the way every evaluation
command shows them; :func:`load_models` resolves baseline names and checkpoint paths
and checks their scale before any image is upscaled; :class:`ModelRun` collects one
model's per-image scores, trust measures and example outputs chunk by chunk.

Example::

    names = model_names(["bicubic", "runs/a/models/edsr/best.safetensors"], None)
    runs = load_models(["bicubic", ...], names, scale=2, data="test.h5")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from lensr.errors import LensrError
from lensr.eval.metrics import score_images
from lensr.models import list_models
from lensr.models.checkpoint import resolve_model

METRICS = ("mse", "psnr", "ssim")
REFERENCE = "bicubic"
"""Gains are reported over the model whose spec is this baseline."""


@dataclass
class FlaggedImage:
    """The image a model's trust measures flag most (highest chi2, else highest sigma)."""

    score: float
    position: int
    sr: np.ndarray
    chi2_map: np.ndarray | None
    sigma: np.ndarray | None
    truth: np.ndarray | None


@dataclass
class ModelRun:
    """One model to evaluate and what its run produced."""

    name: str
    spec: str
    module: nn.Module
    seconds: float = 0.0
    scores: dict[str, dict[str, list[np.ndarray]]] = field(default_factory=dict)
    examples: list[np.ndarray] = field(default_factory=list)
    chi2: list[np.ndarray] = field(default_factory=list)
    calibration: dict[str, list[np.ndarray]] = field(default_factory=dict)
    iterations: list[np.ndarray] = field(default_factory=list)
    flagged: FlaggedImage | None = None
    projected_from: str | None = None
    proj: ModelRun | None = None

    def per_image(self, target: str) -> dict[str, np.ndarray]:
        return {m: np.concatenate(self.scores[target][m]) for m in METRICS}

    def chi2_per_image(self) -> np.ndarray | None:
        return np.concatenate(self.chi2) if self.chi2 else None

    def calibration_per_image(self) -> dict[str, np.ndarray] | None:
        if not self.calibration:
            return None
        return {k: np.concatenate(v) for k, v in self.calibration.items()}

    def add_scores(self, sr: np.ndarray, truth: dict[str, np.ndarray]) -> None:
        for target, hr in truth.items():
            for metric, values in score_images(sr, hr).items():
                self.scores[target][metric].append(values)

    def flag(self, start: int, sr, chi2, maps, sigma, truth) -> None:
        """Keep the chunk's most suspicious image if it beats the one kept so far."""
        measure = chi2
        if measure is None and sigma is not None:
            measure = sigma.mean(axis=(1, 2))
        if measure is None:
            return
        i = int(np.argmax(measure))
        if self.flagged is not None and not measure[i] > self.flagged.score:
            return
        self.flagged = FlaggedImage(
            score=float(measure[i]),
            position=start + i,
            sr=sr[i].copy(),
            chi2_map=None if maps is None else maps[i].copy(),
            sigma=None if sigma is None else sigma[i].copy(),
            truth=None if truth is None else truth[i].copy(),
        )


# Names -------------------------------------------------------------------------------------


def display_name(spec: str) -> str:
    """A model's default display name: the baseline name, or a checkpoint's run folder.

    ``runs/x/models/rcan-tiny/best.safetensors`` -> ``rcan-tiny`` (a trainer run
    folder); ``.../rcan-tiny/last.safetensors`` -> ``rcan-tiny-last``; any other
    checkpoint file -> its stem (``ckpts/rcan_v2.safetensors`` -> ``rcan_v2``).

    Example::

        display_name("bicubic"), display_name("runs/a/models/edsr/best.safetensors")
        # ('bicubic', 'edsr')
    """
    path = Path(spec)
    if path.suffix not in (".safetensors", ".json"):
        return spec
    folder = path.resolve().parent.name
    if path.stem == "best" and folder:
        return folder
    if path.stem == "last" and folder:
        return f"{folder}-last"
    return path.stem


def unique_names(names: Sequence[str]) -> list[str]:
    """Deduplicate by appending ``-2``, ``-3``, ...: ``[a, a, b]`` -> ``[a, a-2, b]``.

    Example::

        unique_names(["rcan", "rcan"])   # ['rcan', 'rcan-2']
    """
    out: list[str] = []
    for name in names:
        candidate, k = name, 2
        while candidate in out:
            candidate, k = f"{name}-{k}", k + 1
        out.append(candidate)
    return out


def model_names(models: Sequence[str], names: Sequence[str] | None) -> list[str]:
    """The given display ``names`` checked (one per model, unique, not empty), or, when
    None, :func:`display_name` of each model made unique."""
    if names is None:
        return unique_names([display_name(m) for m in models])
    names = [str(n) for n in names]
    if len(names) != len(models):
        raise LensrError(f"got {len(names)} names for {len(models)} models")
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise LensrError(f"model name {dup!r} is given twice; names must be unique")
    if any(not n.strip() for n in names):
        raise LensrError("model names must not be empty")
    return names


# Loading -----------------------------------------------------------------------------------


def load_models(
    models: Sequence[str], names: list[str], *, scale: int, data: str
) -> list[ModelRun]:
    """Resolve every spec and check its scale, before any image is upscaled."""
    baselines = {info.name for info in list_models("baseline")}
    out = []
    for spec, name in zip(models, names, strict=True):
        spec = str(spec)
        module = resolve_model(spec, scale=scale if spec in baselines else None)
        if module.scale != scale:
            raise LensrError(
                f"model {spec} upscales x{module.scale}, but dataset {data} is x{scale} "
                f"(HR/LR); evaluate it on a x{module.scale} dataset"
            )
        out.append(ModelRun(name=name, spec=spec, module=module))
    return out
