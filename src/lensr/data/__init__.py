"""Datasets: the lowest layer, which every stage above reads and writes through.

- :mod:`~lensr.data.store`: the HDF5 format (``lensr-dataset/1``),
  ``open_dataset``/``LensDataset`` (lazy numpy views); :mod:`~lensr.data.writer`: the
  crash-safe, resumable ``DatasetWriter``.
- :mod:`~lensr.data.image_files`, :mod:`~lensr.data.import_layouts`,
  :mod:`~lensr.data.importers`: ``lensr import`` (file reading, layout detection, writing).
- :mod:`~lensr.data.fits_io`: FITS images with their WCS in and out.
- :mod:`~lensr.data.inspect`: ``lensr inspect`` summaries, the MAD noise estimate, previews.
- :mod:`~lensr.data.normalize`: the one normalisation convention (scale from the LR image).
- :mod:`~lensr.data.torch_data`: torch datasets (patches, full images), sampler, augmentation.
"""
