"""Inference helpers: run a super-resolution model on images of any size.

Example::

    from lensr.infer.tiling import upscale_tiled
    sr = upscale_tiled(model, lr, scale=2)
"""
