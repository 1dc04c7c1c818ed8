"""The lens simulator: typed presets in, HR/LR/noise-free triples out (``lensr simulate``).

- :mod:`~lensr.sim.config`: the preset schema (``SimConfig``), shipped preset names/paths.
- :mod:`~lensr.sim.cosmology`: angular-diameter distances and point-mass Einstein radii.
- :mod:`~lensr.sim.substructure`: the ``cdm`` subhalo and ``axion`` vortex draws.
- :mod:`~lensr.sim.render`: one image: draw parameters, ray-trace the sky with lenstronomy,
  observe it through :mod:`lensr.instrument` (HR and LR bands of the same sky, noise).
- :mod:`~lensr.sim.run`: many images: workers, shards, resume, merge into one HDF5 file.

Imports no torch: ``import lensr; lensr.simulate(...)`` stays light.
"""
