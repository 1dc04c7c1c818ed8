"""Model registry (timm/BasicSR style): one decorated factory function per named variant.

>>> from lensr.models import create_model
>>> model = create_model("rcan-tiny", scale=2)
"""

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from lensr.errors import LensrError

FAMILIES = ("sr", "baseline", "classifier")


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a named variant.

    ``family`` is "sr", "baseline" or "classifier"; ``trainable`` is False for the
    parameter-free interpolation baselines; ``gan`` marks adversarially trained generators.
    """

    name: str
    description: str
    family: str = "sr"
    trainable: bool = True
    gan: bool = False
    factory: Callable[..., nn.Module] = field(repr=False, compare=False, default=None)


_MODELS: dict[str, ModelInfo] = {}
_DISCRIMINATORS: dict[str, ModelInfo] = {}


def _register(table: dict, name: str, **info) -> Callable:
    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in table:
            raise ValueError(f"model {name!r} is registered twice")
        table[name] = ModelInfo(name=name, factory=factory, **info)
        return factory

    return decorator


def register_model(
    name: str,
    *,
    description: str,
    family: str = "sr",
    trainable: bool = True,
    gan: bool = False,
) -> Callable:
    """Decorator that registers ``factory(**kwargs) -> nn.Module`` under ``name``."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
    return _register(
        _MODELS, name, description=description, family=family, trainable=trainable, gan=gan
    )


def register_discriminator(name: str, *, description: str) -> Callable:
    """Decorator for GAN discriminators: kept apart so that ``list_models`` lists only models."""
    return _register(_DISCRIMINATORS, name, description=description, family="discriminator")


def _unknown(kind: str, name: str, table: dict) -> LensrError:
    known = list(table)
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return LensrError(f"unknown {kind} {name!r}{hint}; known: {', '.join(known)}")


def list_models(family: str | None = None) -> list[ModelInfo]:
    """Registered models in registration order, optionally only one family."""
    return [i for i in _MODELS.values() if family is None or i.family == family]


def get_model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of a registered model; LensrError naming the known ones if none."""
    try:
        return _MODELS[name]
    except (KeyError, TypeError):
        raise _unknown("model", name, _MODELS) from None


def list_discriminators() -> list[ModelInfo]:
    return list(_DISCRIMINATORS.values())


def _build(info: ModelInfo, kwargs: dict) -> nn.Module:
    try:
        model = info.factory(**kwargs)
    except TypeError as err:
        if "unexpected keyword argument" not in str(err):
            raise
        bad = str(err).rsplit("argument", 1)[-1].strip()
        raise LensrError(f"model {info.name!r} does not take the argument {bad}") from None
    model.arch = info.name
    return model


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; keyword arguments override the factory's defaults.

    ``scale=None`` means the default scale. Weights are initialised from torch's global RNG,
    so ``torch.manual_seed(s)`` before the call makes them reproducible.
    """
    if kwargs.get("scale", 0) is None:
        kwargs.pop("scale")
    return _build(get_model_info(name), kwargs)


def create_discriminator(name: str = "srgan-disc", **kwargs) -> nn.Module:
    """Build a registered GAN discriminator (default: Ledig et al.'s, with adaptive pooling)."""
    if name not in _DISCRIMINATORS:
        raise _unknown("discriminator", name, _DISCRIMINATORS)
    return _build(_DISCRIMINATORS[name], kwargs)


def build_from_spec(arch: str, kwargs: dict) -> nn.Module:
    """Rebuild a model or discriminator from a checkpoint's ``arch`` and ``kwargs``."""
    if arch in _DISCRIMINATORS:
        return create_discriminator(arch, **kwargs)
    return create_model(arch, **kwargs)
