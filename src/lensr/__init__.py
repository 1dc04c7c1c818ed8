"""lensr: super-resolution of strong gravitational lens images, and what it does to the science.

The functions a notebook reaches for (documented in :mod:`lensr.api`; ``help(lensr.upscale)``
is enough to use one)::

    import lensr
    lensr.simulate("sim", n=100, seed=0, out="sim.h5")        # HR/LR pairs, lenstronomy
    sr = lensr.upscale(lensr.open_dataset("sim.h5").lr[:4])    # numpy in, numpy out

Also ``load_model``, ``evaluate``, ``classify``, ``train``, ``run_study``, ``__version__``
and ``LensrError`` (every user error). They load on first use, so ``import lensr`` is fast
and does not import torch.
"""

import os as _os
import sys as _sys
import types as _types

# OpenMP threads that spin while waiting make torch 5-10x slower on CPU whenever another
# process competes for the cores (measured: RCAN-tiny training 4 -> 25 samples/s on a busy
# 2-core machine). Must be set before torch loads; users can still override it.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from lensr._version import __version__  # noqa: E402
from lensr.errors import LensrError  # noqa: E402

_API = (
    "classify",
    "evaluate",
    "load_model",
    "open_dataset",
    "run_study",
    "simulate",
    "train",
    "upscale",
)
__all__ = ["LensrError", "__version__", *_API]


def __getattr__(name: str):
    # Lazy so that `import lensr` stays fast and torch-free.
    if name in _API:
        from lensr import api

        return getattr(api, name)
    raise AttributeError(f"module 'lensr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


class _Lensr(_types.ModuleType):
    """The module type of ``lensr``: ``lensr.train`` is the API function even though a
    subpackage has the same name. Importing ``lensr.train.fit`` makes the import system
    set the attribute ``train`` of ``lensr`` to the subpackage; the setter below keeps it
    aside instead (``sys.modules["lensr.train"]`` is unaffected, so every ``import`` and
    ``from lensr.train... import`` works as before)."""

    @property
    def train(self):
        from lensr.api import train

        return train

    @train.setter
    def train(self, package):
        self.__dict__["_train_package"] = package


_sys.modules[__name__].__class__ = _Lensr
