"""lensr: super-resolution of strong gravitational lens images.

Entry points researchers reach for::

    import lensr
    ds = lensr.open_dataset("data/sim.h5")          # HR/LR pairs as numpy
    lensr.simulate("sim", n=100, seed=0, out="sim.h5")
"""

import os

# OpenMP threads that spin while waiting make torch 5-10x slower on CPU whenever another
# process competes for the cores (measured: RCAN-tiny training 4 -> 25 samples/s on a busy
# 2-core machine). Must be set before torch loads; users can still override it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from lensr._version import __version__  # noqa: E402
from lensr.errors import LensrError  # noqa: E402

__all__ = ["LensrError", "__version__", "open_dataset", "simulate"]


def __getattr__(name):
    # Lazy so that `import lensr` stays fast and torch-free.
    if name == "open_dataset":
        from lensr.data.store import open_dataset

        return open_dataset
    if name == "simulate":
        from lensr.sim.run import simulate

        return simulate
    raise AttributeError(f"module 'lensr' has no attribute {name!r}")
