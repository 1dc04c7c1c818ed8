"""The instrument forward model, in one place: what a telescope does to the sky.

The simulator, the LR chi-square, the consistency projection and the physics-informed
model all use these modules, so they agree on the instrument to the last bit:

* :mod:`~lensr.instrument.psf`: PSF kernels (Gaussian, Moffat; pixel-integrated, sub-pixel
  offsets), the kernel of a simulated image's band from its parameters, and the HR -> LR
  matching kernel (numpy);
* :mod:`~lensr.instrument.binning`: the s x s block mean of the detector (numpy);
* :mod:`~lensr.instrument.noise`: the noise model in electrons (band and sky rates,
  exposure for a target S/N, noise and cosmic-ray draws, per-pixel variance) and the
  noise variance estimated from an image (numpy);
* :mod:`~lensr.instrument.operators`: the instrument as torch operators, HR -> LR blur and
  block mean with their adjoints (:class:`Degradation`: any kernels, per image;
  :class:`GaussianInstrument`: one separable Gaussian, fast in autograd);
* :mod:`~lensr.instrument.from_dataset`: the LR instrument of a dataset's images
  (:func:`instrument_for` for simulated data, :func:`lr_instrument` for any data).

Example::

    from lensr.instrument.from_dataset import instrument_for
    D, variance = instrument_for(ds, range(8))      # SR image -> LR image, noise model
    lr_model = D.apply_numpy(sr)                    # (8, h, w) float64

Layer: above ``data``, below ``sim`` (it imports only ``errors``, ``config``, ``data``).
The numpy modules do not import torch, so simulation workers stay torch-free.
"""
