"""What the Python API (``lensr.api``) does to its inputs before calling the stages:
model names to specs, specs and modules to networks that share one scale, and numpy arrays
to a lensr dataset.

Example::

    from lensr.api_inputs import model_spec, networks
    nets = networks(["bicubic", model_spec("runs/rcan/best.safetensors")], scale=None)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lensr.errors import LensrError

if TYPE_CHECKING:
    from torch import nn


def model_spec(model: str | os.PathLike) -> str:
    """A model as the stages take it: a baseline name, a checkpoint path or the name of a
    pretrained model shipped in ``lensr/weights/`` (``lensr.models.checkpoint.resolve_model``
    resolves all three, through ``lensr.models.pretrained.pretrained_path``)."""
    return str(model)


def networks(model, scale: int | None) -> list[nn.Module]:
    """``model`` (a spec, a module, or a list of them: an ensemble) as loaded, checked
    networks (``lensr.infer.runner.load_models``) that share one scale."""
    from torch import nn

    from lensr.infer.arrays import model_percentile, model_scale
    from lensr.infer.runner import load_models

    items = [model] if isinstance(model, str | os.PathLike | nn.Module) else list(model)
    if not items:
        raise LensrError("no model given")
    nets = []
    for m in items:
        if isinstance(m, nn.Module):
            model_percentile(m)
            nets.append(m)
        else:
            nets += load_models([model_spec(m)], scale=scale)
    scales = [model_scale(n) for n in nets]
    if len(set(scales)) > 1:
        raise LensrError(f"the models of an ensemble must share one scale, got {scales}")
    return nets


def _stack(name: str, array, ndim: int | None = None) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim < 2 or (ndim is not None and a.ndim != ndim) or 0 in a.shape:
        raise LensrError(f"{name} must be images of shape (..., H, W), got shape {a.shape}")
    if a.dtype.kind not in "iuf":
        raise LensrError(f"{name} must hold numbers, got dtype {a.dtype}")
    return a.astype(np.float32).reshape(-1, *a.shape[-2:])


def arrays_to_dataset(folder: Path, lr, hr, hr_clean=None, labels=None, class_names=None) -> Path:
    """Write LR/HR arrays ``(..., h, w)``/``(..., H, W)`` (same leading shape) as the lensr
    dataset ``folder/arrays.h5``, the format every stage reads; returns its path."""
    from lensr.data.writer import DatasetWriter

    lr_stack, hr_stack = _stack("lr", lr), _stack("hr", hr, np.ndim(lr))
    if np.shape(lr)[:-2] != np.shape(hr)[:-2]:
        raise LensrError(
            f"lr and hr need the same leading shape, got {np.shape(lr)} and {np.shape(hr)}"
        )
    clean = None
    if hr_clean is not None:
        if np.shape(hr_clean) != np.shape(hr):
            raise LensrError(f"hr_clean has shape {np.shape(hr_clean)}, hr {np.shape(hr)}")
        clean = _stack("hr_clean", hr_clean)
    n = len(lr_stack)
    labels = np.zeros(n, np.int64) if labels is None else np.asarray(labels).reshape(-1)
    if len(labels) != n:
        raise LensrError(f"labels has {len(labels)} entries for {n} images")
    if class_names is None:
        class_names = [str(k) for k in range(int(labels.max()) + 1)]
    attrs = {"producer": "lensr.evaluate (arrays)", "units": "as given"}
    shapes = dict(hr_shape=hr_stack.shape[1:], lr_shape=lr_stack.shape[1:])
    path = Path(folder) / "arrays.h5"
    with DatasetWriter(
        path,
        n=n,
        class_names=list(class_names),
        attrs=attrs,
        with_clean=clean is not None,
        **shapes,
    ) as w:
        for i in range(n):
            extra = {} if clean is None else {"hr_clean": clean[i]}
            w.write(i, hr=hr_stack[i], lr=lr_stack[i], label=int(labels[i]), **extra)
        return w.finish()
