"""The optional ``torch.compile`` path of the array core (:func:`lensr.infer.arrays.upscale_array`).

``compile=True`` (``lensr upscale --compile``, or ``LENSR_COMPILE=1`` in the environment
when the option is not given) runs a network through TorchInductor with weight freezing
(``torch.compile(model, dynamic=False)`` called under ``torch._inductor.config.patch(
freezing=True)``; in torch 2.13 ``options={"freezing": True}`` does not switch freezing on):
convolutions get prepacked oneDNN weights and fused post-ops, the element-wise rest is
fused into generated C++ (or Triton) kernels. Without freezing Inductor gains nothing on
these networks on CPU. The first batch of every input shape also runs eagerly and must
agree within :data:`TOLERANCE` (1e-5, max abs, relative to max(1, max |y|)); measured
differences are <= 5.4e-7. It is off by default: on the project's 2-core Zen 4 CPU it is
1.06-1.14x eager for rcan-, srresnet- and fsrcnn-tiny on a quiet machine (1.4-1.5x when
other jobs oversubscribe the cores) and compiling costs 10-15 s per model and input shape
(5-7 s with a warm Inductor cache), so it pays only after some 10,000 images
(``benchmarks/sr_throughput.py --paths``).

Compiled modules are cached per model object, device and weight version (an optimizer
step or a ``load_state_dict`` after compiling invalidates the entry), so the many calls of
one ``lensr upscale`` run compile once. Inductor keeps its own on-disk cache
(``TORCHINDUCTOR_CACHE_DIR``, default under the system temporary folder), which makes a
second process compile faster. Parameter-free models (bicubic, bilinear) are never
compiled. On CPU, Inductor needs a C++ compiler; without one, asking for compilation is a
one-line LensrError, never a silent fallback, so the output's provenance stays true.

Example::

    from lensr.infer.compiled import compiled_forward
    fn = compiled_forward(model, device=torch.device("cpu"))   # call under inference_mode
"""

from __future__ import annotations

import os
import shutil
import weakref
from collections import OrderedDict

import torch
from torch import nn

from lensr.errors import LensrError

COMPILE_ENV = "LENSR_COMPILE"
"""Environment variable read when ``compile`` is None: 1/true/yes/on or 0/false/no/off."""
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}

_CACHE: OrderedDict[int, tuple] = OrderedDict()  # id(model) -> (weakref, key, forward)
CACHE_SIZE = 4
"""Compiled models kept per process (the least recently used goes first)."""
TOLERANCE = 1e-5
"""Largest accepted max-abs difference to eager on a first batch, relative to max(1, |y|max)."""


def compile_requested(compile: bool | None) -> bool:
    """``compile`` if given, else the ``LENSR_COMPILE`` environment variable (default off)."""
    if compile is not None:
        return bool(compile)
    value = os.environ.get(COMPILE_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise LensrError(f"{COMPILE_ENV}={value!r} is not understood; use 1 or 0")


def has_weights(model: nn.Module) -> bool:
    """True for a network (a model with parameters), False for bicubic/bilinear."""
    return any(True for _ in model.parameters())


def uses_compile(model: nn.Module, compile: bool | None) -> bool:
    """Whether :func:`lensr.infer.arrays.upscale_array` compiles ``model``: compilation was
    asked for (``compile``, or ``LENSR_COMPILE``) and the model has weights."""
    return compile_requested(compile) and has_weights(model)


def compile_plan(models: list[nn.Module], compile: bool | None, device: torch.device) -> bool:
    """Whether ``lensr upscale`` compiles ``models`` (:func:`uses_compile`), checked before
    any work: True needs a working compiler for ``device`` (:func:`check_compiler`)."""
    wanted = any(uses_compile(m, compile) for m in models)
    if wanted:
        check_compiler(device)
    return wanted


def check_compiler(device: torch.device) -> None:
    """A one-line LensrError when Inductor cannot run on ``device`` here."""
    if device.type == "cpu":
        from torch._inductor import config

        cxx = config.cpp.cxx
        names = [c for c in (cxx if isinstance(cxx, tuple) else (cxx,)) if c]
        if not any(shutil.which(c) for c in names):
            raise LensrError(
                "compiled inference on CPU needs a C++ compiler (g++ or clang++) on PATH; "
                "install one or run without --compile (LENSR_COMPILE=0)"
            )
    elif device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            raise LensrError(
                "compiled inference on CUDA needs triton; install it or run without --compile"
            ) from None
    else:
        raise LensrError(f"compiled inference supports cpu and cuda, not {device.type!r}")


def _weights_version(model: nn.Module) -> tuple:
    tensors = [*model.parameters(), *model.buffers()]
    return tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors)


class CompiledForward:
    """A model's forward through Inductor with frozen weights; the first batch of every
    input shape is also run eagerly and must agree within :data:`TOLERANCE`."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.compiled = torch.compile(model, dynamic=False)
        self.shapes: set[tuple] = set()

    def knows(self, shape: tuple) -> bool:
        """True when inputs of ``shape`` were compiled (and checked) already."""
        return tuple(shape) in self.shapes

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.knows(x.shape):
            return self._run(x)
        y = self._run(x)
        ref = self.model(x)
        if not _close(y, ref):
            # A compiled graph of this module with other (older) weights: dynamo caches
            # per code object and does not guard on weight values. Start afresh once.
            torch._dynamo.reset()
            y = self._run(x)
            if not _close(y, ref):
                diff = float((y.float() - ref.float()).abs().max())
                raise LensrError(
                    f"the compiled model differs from eager mode by {diff:.3g} (max abs); "
                    "run without --compile (LENSR_COMPILE=0)"
                )
        self.shapes.add(tuple(x.shape))
        return y

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        from torch._inductor import config

        try:
            with config.patch(freezing=True):
                return self.compiled(x)
        except LensrError:
            raise
        except Exception as exc:  # Inductor/dynamo failures arrive as many types
            text = str(exc).strip()
            first = text.splitlines()[0][:200] if text else ""
            raise LensrError(
                f"torch.compile failed ({type(exc).__name__}: {first}); "
                "run without --compile (LENSR_COMPILE=0)"
            ) from None


def _close(y: torch.Tensor, ref: torch.Tensor) -> bool:
    if y.shape != ref.shape:
        return False
    diff = (y.float() - ref.float()).abs().max()
    return bool(diff <= TOLERANCE * max(1.0, float(ref.abs().max())))


def compiled_forward(model: nn.Module, *, device: torch.device) -> CompiledForward:
    """``model``'s forward compiled by Inductor (weights frozen), cached per model object,
    ``device`` and weight version. The first call per input shape compiles; call it with
    gradients off (``torch.inference_mode``), in eval mode, with the model on ``device``."""
    check_compiler(device)
    key = (str(device), _weights_version(model))
    entry = _CACHE.get(id(model))
    if entry is not None and entry[0]() is model and entry[1] == key:
        _CACHE.move_to_end(id(model))
        return entry[2]
    forward = CompiledForward(model)
    _CACHE[id(model)] = (weakref.ref(model), key, forward)
    _CACHE.move_to_end(id(model))
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return forward


def clear_cache() -> None:
    """Forget every compiled module of this process (Inductor's disk cache stays)."""
    _CACHE.clear()
