"""Datasets: the HDF5 store, importers of other layouts, FITS I/O, torch datasets."""
