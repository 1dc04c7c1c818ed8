"""The Python API of lensr: the functions ``import lensr`` exposes, for notebooks and scripts.

Every function here calls the same code as the matching ``lensr`` command (simulate,
upscale, evaluate, classify, train, run), so results agree with the CLI to the last digit.
Heavy libraries (torch, Lightning, lenstronomy) load on first use: ``import lensr`` stays
fast. Arrays are numpy; paths may be ``str`` or ``pathlib.Path``; every user error is a
one-line ``lensr.LensrError``.

Example::

    import lensr
    lensr.simulate("sim", n=8, out="sim.h5")
    sr = lensr.upscale(lensr.open_dataset("sim.h5").lr[:4], model="bicubic")  # (4, 150, 150)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from lensr.api_inputs import arrays_to_dataset, model_spec
from lensr.api_results import ClassifyResult, EvalResult, StudyResult
from lensr.api_upscale import upscale
from lensr.errors import LensrError

if TYPE_CHECKING:
    from torch import nn

    from lensr.data.store import LensDataset
    from lensr.train.classifier import ClassifierResult
    from lensr.train.fit import TrainResult

upscale.__module__ = __name__  # one face: help() and the docs show it as lensr.api.upscale

__all__ = [
    "ClassifyResult",
    "EvalResult",
    "StudyResult",
    "classify",
    "evaluate",
    "load_model",
    "open_dataset",
    "run_study",
    "simulate",
    "train",
    "upscale",
]


def simulate(
    preset: str | os.PathLike = "sim",
    *,
    n: int,
    out: str | os.PathLike,
    seed: int = 0,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Simulate ``n`` HR/LR lens pairs with lenstronomy into the HDF5 file ``out``.

    ``preset`` is a shipped preset (``"sim"``, ``"observed"``, ``"ground"``,
    ``"classify"``) or a YAML path; the same ``seed`` gives byte-identical files, and
    ``workers`` processes give the same file as one. Same as ``lensr simulate``.
    Returns the path written (``overwrite`` replaces an existing file).

    Example::

        import lensr
        path = lensr.simulate("sim", n=8, seed=0, out="sim.h5")
        lensr.open_dataset(path).hr.shape                  # (8, 150, 150)
    """
    from lensr.sim.run import simulate as run

    return run(
        preset, n=n, out=out, seed=seed, workers=workers, overwrite=overwrite, progress=progress
    )


def open_dataset(path: str | os.PathLike) -> LensDataset:
    """Open a lensr HDF5 dataset; ``.hr``, ``.lr``, ``.hr_clean`` slice into numpy lazily.

    ``.labels`` and ``.class_names`` give the substructure classes, ``.scale`` the HR/LR
    factor, ``.attrs`` the provenance. Use it as a context manager or call ``.close()``.

    Example::

        import lensr
        ds = lensr.open_dataset("sim.h5")
        hr, lr, label = ds.hr[0], ds.lr[0], ds.class_names[ds.labels[0]]
    """
    from lensr.data.store import open_dataset as run

    return run(path)


def load_model(
    model: str | os.PathLike, *, scale: int | None = None, device: str = "cpu"
) -> nn.Module:
    """A ready torch model (eval mode, on ``device``) from a name or a checkpoint path.

    ``model`` is a baseline (``"bicubic"``, ``"bilinear"``: built at ``scale``, default 2),
    a checkpoint written by training (``best.safetensors`` + its ``.json`` sidecar; only
    safetensors are read, nothing is unpickled; ``scale``, if given, must match) or the
    name of a pretrained model shipped with lensr. The sidecar is ``model.metadata``.

    Example::

        import lensr
        net = lensr.load_model("runs/rcan/best.safetensors")
        net.scale, net.metadata["arch"]                     # (2, 'rcan-tiny')
    """
    from lensr.infer.arrays import model_percentile, torch_device
    from lensr.models.checkpoint import resolve_model

    net = resolve_model(model_spec(model), scale=scale)
    model_percentile(net, name=f"model {model}")
    return net.to(torch_device(device)).eval()


def evaluate(
    data: str | os.PathLike | LensDataset | np.ndarray,
    models: Sequence[str | os.PathLike] = ("bilinear", "bicubic"),
    *,
    hr: np.ndarray | None = None,
    hr_clean: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    out: str | os.PathLike | None = None,
    names: Sequence[str] | None = None,
    max_images: int | None = None,
    batch_size: int = 16,
    n_boot: int = 2000,
    seed: int = 0,
    uncertainty: bool = True,
    consistent: bool = False,
    lr_psf_fwhm: float | None = None,
    hr_psf_fwhm: float = 0.0,
    pixel_scale: float | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> EvalResult:
    """Score models on HR/LR pairs: PSNR, SSIM, MSE with 95 % bootstrap intervals, gains
    over bicubic and the trust measures; the same numbers ``lensr evaluate`` writes.

    ``data`` is a dataset (path or ``open_dataset``) or an LR array ``(..., h, w)``
    with ``hr`` (and optionally ``hr_clean``, the noise-free truth; ``labels`` and
    ``class_names`` for per-class rows). ``models`` mixes baselines, checkpoint paths and
    pretrained names (display ``names`` default to the run folder's name). With ``out``
    the CLI's files are written there (metrics.json, table.md, figures); without it they
    are discarded. The other options are those of ``lensr evaluate``.

    Example::

        import lensr
        result = lensr.evaluate("test.h5", ["bicubic", "runs/rcan/best.safetensors"])
        result.table("clean")          # rows: model, psnr, psnr_ci, ssim, gain_psnr, ...
    """
    from lensr.eval.evaluate import evaluate as run

    specs = [model_spec(m) for m in ([models] if isinstance(models, str | os.PathLike) else models)]
    options = dict(
        names=names,
        max_images=max_images,
        batch_size=batch_size,
        n_boot=n_boot,
        seed=seed,
        device=device,
        progress=progress,
        uncertainty=uncertainty,
        consistent=consistent,
        lr_psf_fwhm=lr_psf_fwhm,
        hr_psf_fwhm=hr_psf_fwhm,
        pixel_scale=pixel_scale,
    )
    with tempfile.TemporaryDirectory(prefix="lensr-evaluate-") as tmp:
        if isinstance(data, np.ndarray):
            if hr is None:
                raise LensrError("evaluate on an LR array needs hr= (the HR truth)")
            data = arrays_to_dataset(Path(tmp), data, hr, hr_clean, labels, class_names)
        folder = Path(out) if out is not None else Path(tmp) / "eval"
        metrics = run(data, specs, out_dir=folder, **options)
    return EvalResult(metrics=metrics, out_dir=None if out is None else folder)


def classify(
    data: str | os.PathLike | LensDataset | np.ndarray,
    classifier: str | os.PathLike,
    *,
    sr: Mapping[str, str | os.PathLike] | Sequence[str] | None = None,
    out: str | os.PathLike | None = None,
    max_images: int | None = None,
    batch_size: int = 128,
    progress: bool = True,
) -> np.ndarray | ClassifyResult:
    """Classify lens images into substructure classes (none, cdm, axion) with a classifier
    checkpoint (``lensr classify train`` / ``train`` with ``model="resnet18"``).

    For an array ``(..., H, W)`` returns class probabilities ``(..., K)`` (classes in
    ``load_model(classifier).metadata["class_names"]``). For a dataset classifies its HR
    images, its LR images upsampled by bicubic and the output of each ``sr`` model
    (``{name: spec}``, or ``["name=spec", ...]`` as on the command line), as
    ``lensr classify eval`` does, and returns a ``ClassifyResult`` (accuracy,
    AUCs, confusion per variant); ``out`` keeps the CLI's files.

    Example::

        import lensr
        result = lensr.classify("cls-test.h5", "runs/clf/best.safetensors", sr=["bicubic"])
        result.table()                # rows: variant, accuracy, macro_auc, auc_<class>
    """
    if isinstance(data, np.ndarray):
        from lensr.eval.classification import predict
        from lensr.eval.classify_inputs import load_classifier

        net, _ = load_classifier(model_spec(classifier))
        if data.ndim < 2:
            raise LensrError(f"classify needs images of shape (..., H, W), got {data.shape}")
        probs = predict(net, data.reshape(-1, *data.shape[-2:]), batch_size=batch_size)
        return probs.reshape(*data.shape[:-2], probs.shape[-1])
    from lensr.cli.classify import parse_sr_specs
    from lensr.eval.classification import evaluate_classifier

    sr_models = dict(sr) if isinstance(sr, Mapping) else parse_sr_specs(list(sr or []))
    sr_models = {name: model_spec(spec) for name, spec in sr_models.items()}
    with tempfile.TemporaryDirectory(prefix="lensr-classify-") as tmp:
        folder = Path(out) if out is not None else Path(tmp)
        result = evaluate_classifier(
            model_spec(classifier),
            data,
            sr_models=sr_models,
            out_dir=folder,
            max_images=max_images,
            batch_size=batch_size,
            progress=progress,
        )
    return ClassifyResult(metrics=result, out_dir=None if out is None else folder)


def train(
    data: str | os.PathLike,
    *,
    out: str | os.PathLike,
    model: str | None = None,
    kind: Literal["sr", "physics", "classifier"] | None = None,
    config: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    **options: Any,
) -> TrainResult | ClassifierResult:
    """Train a model on a dataset into the run folder ``out``; returns the run's result.

    ``model`` is a registered name (``lensr models``; default rcan-tiny); ``kind`` (default:
    from the model) picks the trainer: ``"sr"`` (``lensr train``: HR/LR pairs),
    ``"physics"`` (``lensr train-physics``: LR images only) or ``"classifier"``
    (``lensr classify train``: HR images and labels). ``config`` is a YAML of the
    trainer's keys and ``options`` override them (e.g. ``max_steps=450, lr=5e-4,
    patch=32``), merged exactly as the CLI merges them. The result has ``best`` (the
    checkpoint for ``load_model``) and the best validation metrics.

    Example::

        import lensr
        run = lensr.train("sim.h5", out="runs/fsrcnn", model="fsrcnn-tiny", max_steps=300)
        run.best, run.best_metrics["metrics"]["val_psnr"]
    """
    from lensr.config import load
    from lensr.models import get_model_info

    if kind is None:
        family = get_model_info(model).family if model else "sr"
        physics = bool(model) and model.startswith("physics")
        kind = "classifier" if family == "classifier" else "physics" if physics else "sr"
    overrides = {**({"model": model} if model else {}), **options}
    if kind == "classifier":
        from lensr.train.classifier import ClassifierConfig, train_classifier

        cfg = load(ClassifierConfig, config, overrides)
        return train_classifier(cfg, data=data, out_dir=out, resume=resume, progress=progress)
    if kind == "physics":
        from lensr.train.physics_fit import train_physics
        from lensr.train.physics_module import PhysicsTrainConfig

        cfg = load(PhysicsTrainConfig, config, overrides)
        return train_physics(cfg, data=data, out_dir=out, resume=resume, progress=progress)
    if kind != "sr":
        raise LensrError(f"unknown kind {kind!r}: use sr, physics or classifier")
    from lensr.train.config import TrainConfig
    from lensr.train.fit import train as run

    cfg = load(TrainConfig, config, overrides)
    return run(cfg, data=data, out_dir=out, resume=resume, progress=progress)


def run_study(
    config: str | os.PathLike = "demo",
    *,
    out: str | os.PathLike | None = None,
    force: Sequence[str] = (),
) -> StudyResult:
    """Run (or resume) a whole study with cached stages, as ``lensr run`` does.

    ``config`` is a study YAML or a shipped study (``"demo"``: CPU, ~12 min on 2 cores;
    ``"paper"``: GPU). ``out`` is the run folder (default ``runs/<name>``); stages whose
    inputs did not change are skipped, so rerunning a finished study only reads it;
    ``force`` reruns stages by name (``"train:rcan-tiny"``). Returns a
    ``StudyResult`` with every evaluation's tables and the report path.

    Example::

        import lensr
        study = lensr.run_study("demo", out="runs/demo")
        study.evaluations["sim-test"].table("clean")       # the report's headline table
    """
    from lensr.study import run_study as run

    return StudyResult.load(run(config, out=out, force=list(force)))
