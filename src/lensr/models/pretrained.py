"""Pretrained models shipped inside the package, by name.

``lensr/weights/NAME.safetensors`` + ``NAME.json``: a lensr checkpoint whose sidecar is
also the model card (its ``card`` key: prior, steps, images seen, training time, hardware,
scores, the prior's ``prior_range``). :func:`resolve_model` in
:mod:`lensr.models.checkpoint` accepts these names wherever a checkpoint path is accepted
(``lensr upscale --model space-x2``, ``lensr evaluate --models``, studies, the Python API).

Example::

    pretrained_names()            # ['ground-x2', 'space-x2'] once they are trained
    pretrained_path("space-x2")   # .../lensr/weights/space-x2.safetensors
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

WEIGHTS_FOLDER = "weights"
NAMES = ("space-x2", "ground-x2")
"""The names a pretrained model may ship under (benchmarks/pretrain.py trains them)."""


def weights_dir() -> Path:
    """The package folder that holds the shipped weights."""
    return Path(str(resources.files("lensr") / WEIGHTS_FOLDER))


def pretrained_names(folder: Path | None = None) -> list[str]:
    """Names of the shipped models: a .safetensors file with its .json sidecar."""
    folder = folder or weights_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.safetensors") if p.with_suffix(".json").is_file())


def pretrained_path(name: str, folder: Path | None = None) -> Path | None:
    """The weights file of the shipped model ``name``, or None if there is no such model."""
    if "/" in name or "\\" in name or name.endswith((".safetensors", ".json")):
        return None
    return (
        (folder or weights_dir()) / f"{name}.safetensors"
        if name in pretrained_names(folder)
        else None
    )


def model_card(name: str, folder: Path | None = None) -> dict:
    """The sidecar of the shipped model ``name`` (its ``card`` key is the model card)."""
    path = pretrained_path(name, folder)
    return {} if path is None else json.loads(path.with_suffix(".json").read_text())
