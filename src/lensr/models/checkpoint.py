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

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from lensr._version import __version__
from lensr.errors import LensrError
from lensr.io import write_bytes, write_text
from lensr.models.pretrained import pretrained_names, pretrained_path
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
    # The scale goes into the weights' own header too: for some architectures (FSRCNN) the
    # tensor shapes do not depend on it, so an edited sidecar could not be caught otherwise.
    header = {"format": FORMAT, "arch": arch, "scale": str(info["scale"])}
    write_bytes(weights, _sorted_header(safetensors_bytes(tensors, metadata=header)))
    write_text(sidecar, text)
    return weights


def _sorted_header(blob: bytes) -> bytes:
    """The same safetensors file with its JSON header's keys sorted (safetensors writes its
    metadata map in a random order per process), so equal weights give equal bytes."""
    n = int.from_bytes(blob[:8], "little")
    header = json.dumps(json.loads(blob[8 : 8 + n]), sort_keys=True, separators=(",", ":"))
    header = header.encode() + b" " * (-len(header) % 8)  # data stays 8-byte aligned
    return len(header).to_bytes(8, "little") + header + blob[8 + n :]


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
    _check_scale(model.eval(), info, weights, sidecar)
    return model.to(map_location), info


def _check_scale(model: nn.Module, info: dict, weights: Path, sidecar: Path) -> None:
    """The sidecar's scale must be the one the weights were saved with (their header) and
    the one the rebuilt model actually upsamples by (a tiny forward pass)."""
    try:
        with safe_open(str(weights), "pt") as f:
            saved = (f.metadata() or {}).get("scale")
    except Exception:  # noqa: BLE001 - the weights were just read; a header is optional
        saved = None
    if saved is not None and saved != str(info["scale"]):
        raise LensrError(
            f"checkpoint {sidecar} says scale {info['scale']}, but its weights {weights.name} "
            f"were saved for scale {saved}: the sidecar was edited or belongs to other weights"
        )
    probe = torch.zeros(1, getattr(model, "in_channels", 1), 12, 12)
    try:
        with torch.no_grad():
            out = model(probe)
    except Exception:  # noqa: BLE001 - models that need other inputs are checked elsewhere
        return
    out = out[0] if isinstance(out, tuple | list) else out
    if not isinstance(out, torch.Tensor) or out.ndim != 4:
        return
    actual = out.shape[-1] / probe.shape[-1]
    if actual != info["scale"]:
        raise LensrError(
            f"checkpoint {sidecar} says scale {info['scale']}, but the model it describes "
            f"upsamples by {actual:g}"
        )


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
    shipped = pretrained_path(spec)  # a pretrained model shipped by name (lensr/weights/)
    weights, _ = _paths(shipped or spec)
    if not weights.is_file():
        if spec in [i.name for i in list_models()]:
            raise LensrError(
                f"{spec!r} is an untrained architecture, not a baseline "
                f"({', '.join(baselines)}): give the path of a trained checkpoint"
            )
        shipped_names = ", ".join(pretrained_names()) or "none"
        raise LensrError(
            f"{spec!r} is neither a baseline model ({', '.join(baselines)}), a pretrained "
            f"model ({shipped_names}) nor an existing checkpoint file"
        )
    model, meta = load_checkpoint(weights)
    if scale is not None and meta["scale"] != scale:
        raise LensrError(
            f"checkpoint {weights} is for scale {meta['scale']}, but scale {scale} was asked"
        )
    model.metadata = meta
    return model
