"""Checkpoints: safetensors weights plus a JSON sidecar that says how to rebuild the model.

``model.safetensors`` holds the state dict (parameters and buffers, contiguous CPU tensors);
``model.json`` holds ``{"format": "lensr-checkpoint/1", "arch", "kwargs", "scale",
"lensr_version", ...metadata}``. Nothing is unpickled, so loading an untrusted checkpoint
cannot run code.

>>> save_checkpoint(model, "runs/rcan.safetensors", metadata={"normalisation": "lr-max"})
>>> model, meta = load_checkpoint("runs/rcan.safetensors")
"""

import json
from pathlib import Path

from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from lensr._version import __version__
from lensr.errors import LensrError
from lensr.io import write_bytes, write_text
from lensr.models.registry import build_from_spec, create_model, list_models

FORMAT = "lensr-checkpoint/1"
_RESERVED = ("format", "arch", "kwargs", "scale", "lensr_version")


def _paths(path) -> tuple[Path, Path]:
    path = Path(path)
    if path.suffix == ".json":
        return path.with_suffix(".safetensors"), path
    return path, path.with_suffix(".json")


def save_checkpoint(model: nn.Module, path, *, metadata: dict | None = None) -> Path:
    """Write ``path`` (.safetensors) and its ``.json`` sidecar, each atomically.

    ``model`` must come from :func:`lensr.models.create_model` (it needs ``arch`` and
    ``config``). ``metadata`` (normalisation, data provenance, training info) must be JSON.
    Returns the weights path.
    """
    weights, sidecar = _paths(path)
    if weights.suffix != ".safetensors":
        raise LensrError(f"checkpoint path {weights} must end in .safetensors")
    arch = getattr(model, "arch", None)
    if arch is None or not hasattr(model, "config"):
        raise LensrError("cannot save a model without 'arch' and 'config': use create_model")
    metadata = dict(metadata or {})
    clash = [k for k in _RESERVED if k in metadata]
    if clash:
        raise LensrError(f"checkpoint metadata may not set the reserved key(s) {clash}")
    info = {
        "format": FORMAT,
        "arch": arch,
        "kwargs": model.config,
        "scale": getattr(model, "scale", None),
        "lensr_version": __version__,
        **metadata,
    }
    try:
        text = json.dumps(info, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise LensrError(f"checkpoint metadata is not JSON-serialisable: {err}") from None
    # clone: safetensors refuses tensors that share storage.
    tensors = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    weights.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(weights, safetensors_bytes(tensors, metadata={"format": FORMAT, "arch": arch}))
    write_text(sidecar, text)
    return weights


def _read_sidecar(sidecar: Path) -> dict:
    try:
        info = json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise LensrError(f"cannot read checkpoint sidecar {sidecar}: {err}") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise LensrError(f"{sidecar} is not a lensr checkpoint sidecar (format {FORMAT!r})")
    for key in ("arch", "kwargs", "scale"):
        if key not in info:
            raise LensrError(f"checkpoint sidecar {sidecar} lacks the key {key!r}")
    if not isinstance(info["kwargs"], dict):
        raise LensrError(f"checkpoint sidecar {sidecar}: 'kwargs' must be an object")
    return info


def _first_mismatch(expected: dict, found: dict) -> str | None:
    for name, tensor in expected.items():
        if name not in found:
            return f"tensor {name!r} is missing"
        if tuple(found[name].shape) != tuple(tensor.shape):
            return (
                f"tensor {name!r} has shape {tuple(found[name].shape)}, "
                f"the model expects {tuple(tensor.shape)}"
            )
    extra = [name for name in found if name not in expected]
    return f"unexpected tensor {extra[0]!r}" if extra else None


def load_checkpoint(path, *, map_location="cpu") -> tuple[nn.Module, dict]:
    """Rebuild a model from ``path`` (the .safetensors or the .json file), strictly.

    Returns ``(model, metadata)``, the model in eval mode on ``map_location`` and the
    metadata the whole sidecar (arch, kwargs, scale, ... and what the trainer stored).
    """
    weights, sidecar = _paths(path)
    if not weights.is_file():
        raise LensrError(f"checkpoint file {weights} not found")
    if not sidecar.is_file():
        raise LensrError(f"checkpoint {weights} has no sidecar {sidecar.name} (arch, scale)")
    info = _read_sidecar(sidecar)
    try:
        model = build_from_spec(info["arch"], info["kwargs"])
    except LensrError as err:
        raise LensrError(f"checkpoint sidecar {sidecar}: {err}") from None
    except (TypeError, ValueError) as err:
        raise LensrError(f"checkpoint sidecar {sidecar}: bad kwargs: {err}") from None
    try:
        state = load_file(str(weights), device="cpu")
    except Exception as err:  # safetensors raises its own error types for corrupt files
        msg = " ".join(str(err).split())
        raise LensrError(f"cannot read weights {weights} (corrupt or truncated?): {msg}") from None
    problem = _first_mismatch(model.state_dict(), state)
    if problem:
        raise LensrError(f"weights {weights} do not match architecture {info['arch']!r}: {problem}")
    model.load_state_dict(state, strict=True)
    return model.to(map_location).eval(), info


def resolve_model(spec: str, *, scale: int | None = None) -> nn.Module:
    """A baseline name ("bilinear", "bicubic") or a checkpoint path -> a ready model.

    Baselines are created at ``scale`` (default 2). A checkpoint is loaded and must match
    ``scale`` when one is given. The sidecar is attached as ``model.metadata`` ({} for
    baselines) so callers can read its normalisation.
    """
    spec = str(spec)
    baselines = [i.name for i in list_models("baseline")]
    if spec in baselines:
        model = create_model(spec, scale=2 if scale is None else scale)
        model.metadata = {}
        return model
    weights, _ = _paths(spec)
    if not weights.is_file():
        if spec in [i.name for i in list_models()]:
            raise LensrError(
                f"{spec!r} is an untrained architecture, not a baseline "
                f"({', '.join(baselines)}): give the path of a trained checkpoint"
            )
        raise LensrError(
            f"{spec!r} is neither a baseline model ({', '.join(baselines)}) "
            "nor an existing checkpoint file"
        )
    model, meta = load_checkpoint(weights)
    if scale is not None and meta["scale"] != scale:
        raise LensrError(
            f"checkpoint {weights} is for scale {meta['scale']}, but scale {scale} was asked"
        )
    model.metadata = meta
    return model
