"""The inputs of a classification run, checked before any image is classified.

The classifier (a checkpoint of `lensr classify train`, or a module) and whether it fits
the dataset (number, order of classes, image size); the SR models (baseline names,
checkpoint paths or modules) and their scale; the dataset and how many of its images to
use. Every check raises a one-line :class:`~lensr.errors.LensrError`.

Example::

    model = classifier_for("runs/clf/best.safetensors", ds)   # loaded, checked against ds
    net = load_sr("runs/rcan/best.safetensors", scale=ds.scale, name="rcan")
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from lensr.data.store import LensDataset, open_dataset
from lensr.errors import LensrError
from lensr.models import get_model_info, list_models
from lensr.models.checkpoint import resolve_model


def load_classifier(classifier: str | os.PathLike | nn.Module) -> tuple[nn.Module, dict]:
    """A classifier checkpoint path (or a module) -> ``(model, metadata)`` in eval mode.

    The checkpoint must be a classifier's (its architecture in the "classifier" family);
    the metadata is its sidecar (``class_names``, ``input_size``, ...), or the module's
    ``metadata`` attribute ({} if none).

    Example::

        model, meta = load_classifier("runs/clf/best.safetensors")
        meta["class_names"]
    """
    if isinstance(classifier, nn.Module):
        return classifier.eval(), dict(getattr(classifier, "metadata", None) or {})
    spec = str(classifier)
    if not Path(spec).with_suffix(".safetensors").is_file():
        raise LensrError(f"classifier checkpoint {spec} not found")
    model = resolve_model(spec)
    meta = dict(model.metadata)
    family = _family(meta["arch"])
    if family != "classifier":
        raise LensrError(
            f"{spec} is a checkpoint of {meta['arch']!r} ({family} model), not a classifier: "
            "give a checkpoint written by `lensr classify train`"
        )
    return model.eval(), meta


def _family(arch: str) -> str:
    try:
        return get_model_info(arch).family
    except LensrError:  # a discriminator, or an architecture of a newer lensr
        return "unknown"


def _num_classes(model: nn.Module, meta: dict) -> int | None:
    kwargs = meta.get("kwargs") or getattr(model, "config", {}) or {}
    if "num_classes" in kwargs:
        return int(kwargs["num_classes"])
    fc = getattr(model, "fc", None)
    return int(fc.out_features) if isinstance(fc, nn.Linear) else None


def check_classifier(model: nn.Module, meta: dict, ds: LensDataset, *, name: str) -> None:
    """One-line errors when the classifier does not fit the dataset: a different number or
    order of classes, or images of another size than it was trained on."""
    names = ds.class_names
    k = _num_classes(model, meta)
    if k is not None and k != len(names):
        raise LensrError(
            f"classifier {name} predicts {k} classes, but dataset {ds.path} has "
            f"{len(names)} ({', '.join(names)})"
        )
    trained = meta.get("class_names")
    if trained is not None and list(trained) != names:
        raise LensrError(
            f"classifier {name} was trained on classes {list(trained)}, but dataset "
            f"{ds.path} has {names}: the class order must match"
        )
    size = meta.get("input_size")
    if size is not None and tuple(size) != tuple(ds.hr_shape):
        raise LensrError(
            f"classifier {name} was trained on {size[0]}x{size[1]} px images, but the HR "
            f"images of {ds.path} are {ds.hr_shape[0]}x{ds.hr_shape[1]} px: evaluate on "
            "data of the training size"
        )


def classifier_label(model: nn.Module) -> str:
    """A classifier's name for tables and sentences, from its registry description:
    "ResNet-18", "D4-invariant group CNN"; its arch name when unregistered."""
    arch = (getattr(model, "metadata", None) or {}).get("arch") or type(model).__name__
    try:
        description = get_model_info(arch).description
    except LensrError:
        return str(arch)
    return description.split(" classifier")[0]


def classifier_for(classifier: str | os.PathLike | nn.Module, ds: LensDataset) -> nn.Module:
    """:func:`load_classifier`, then :func:`check_classifier` against ``ds``: the model.

    Example::

        model = classifier_for("runs/clf/best.safetensors", ds)
    """
    model, meta = load_classifier(classifier)
    check_classifier(model, meta, ds, name=spec_text(classifier))
    return model


def load_sr(spec: str | os.PathLike | nn.Module, *, scale: int, name: str) -> nn.Module:
    """An SR model (baseline name, checkpoint path or module) checked to upscale x``scale``.

    Example::

        net = load_sr("runs/rcan/best.safetensors", scale=2, name="rcan")
    """
    baselines = [info.name for info in list_models("baseline")]
    if isinstance(spec, nn.Module):
        model = spec
    elif str(spec) in baselines:
        model = resolve_model(str(spec), scale=scale)
    else:
        model = resolve_model(str(spec))
        if _family(model.metadata["arch"]) == "classifier":
            raise LensrError(f"SR model {name!r} ({spec}) is a classifier, not an SR model")
    if getattr(model, "scale", None) != scale:
        raise LensrError(
            f"SR model {name!r} upscales x{getattr(model, 'scale', None)}, but the dataset is "
            f"x{scale} (HR/LR)"
        )
    return model


def spec_text(spec) -> str:
    """How a model spec is recorded in the JSON: a path or name as given, a module's class."""
    return type(spec).__name__ if isinstance(spec, nn.Module) else str(spec)


def count_images(ds: LensDataset, max_images: int | None) -> int:
    """How many images to use: the first ``max_images`` (None: all); errors if none."""
    if max_images is not None and max_images < 1:
        raise LensrError(f"max_images must be >= 1, got {max_images}")
    if len(ds) == 0:
        raise LensrError(f"dataset {ds.path} holds no images")
    return len(ds) if max_images is None else min(max_images, len(ds))


def open_data(data) -> tuple[LensDataset, bool]:
    """``(dataset, owned)``: a path is opened (owned: the caller closes it), a dataset kept."""
    if isinstance(data, LensDataset):
        return data, False
    return open_dataset(data), True
