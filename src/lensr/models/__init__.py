"""Model zoo: SR networks, interpolation baselines, the SRGAN discriminator, ResNet-18.

>>> from lensr.models import create_model, list_models
>>> model = create_model("rcan-tiny", scale=2)   # (N, 1, H, W) -> (N, 1, 2H, 2W)
>>> [info.name for info in list_models("sr")]
"""

# Importing the architecture modules registers their factories, in this order.
from lensr.models import interpolation, fsrcnn, srresnet, edsr, rdn, rcan, srgan, resnet, physics  # noqa: F401, I001
from lensr.models import equivariant_fsrcnn, equivariant_cnn  # noqa: F401, I001
from lensr.models.common import SRNet, count_parameters, split_parameters
from lensr.models.registry import (
    ModelInfo,
    create_discriminator,
    create_model,
    get_model_info,
    list_discriminators,
    list_models,
    register_discriminator,
    register_model,
)

__all__ = [
    "ModelInfo",
    "SRNet",
    "count_parameters",
    "create_discriminator",
    "create_model",
    "get_model_info",
    "list_discriminators",
    "list_models",
    "register_discriminator",
    "register_model",
    "split_parameters",
]
