"""Inference: run a super-resolution model on arrays and image files of any size.

- :mod:`~lensr.infer.arrays`: the array core, ``upscale_array`` (normalisation, batching,
  tiling) and the checks it shares with the file level.
- :mod:`~lensr.infer.tiling`: overlapping tiles for images too large for one pass.
- :mod:`~lensr.infer.uncertainty`: dihedral test-time augmentation and ensembles (sigma).
- :mod:`~lensr.infer.projection`: the consistency projection of an output onto its LR
  image (the LR instrument itself is :mod:`lensr.instrument`).
- :mod:`~lensr.infer.runner`: ``upscale_array`` with those trust options and units.
- :mod:`~lensr.infer.files`: input kinds, output checks, one .npy/FITS file in and out.
- :mod:`~lensr.infer.upscale`: ``upscale_path``, the ``lensr upscale`` entry point.

Example::

    from lensr.infer.arrays import upscale_array
    sr = upscale_array(lr, resolve_model("bicubic", scale=2))
"""
