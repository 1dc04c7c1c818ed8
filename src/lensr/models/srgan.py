"""SRGAN (Ledig et al. 2017): the generator is SRResNet; here its VGG-style discriminator.

The discriminator ends in adaptive average pooling, so any HR size works (150, 128, 64 px),
unlike BasicSR's, which asserts 128 or 256 px.
"""

import torch
from torch import nn

from lensr.models.common import init_config
from lensr.models.registry import register_discriminator, register_model
from lensr.models.srresnet import SRResNet


class SRGANDiscriminator(nn.Module):
    """Eight 3x3 conv layers (base, base, 2b, 2b, 4b, 4b, 8b, 8b channels; stride 2 on every
    second), BN and LeakyReLU(0.2) after all but the first conv, adaptive average pooling to
    ``pool_size`` x ``pool_size``, then dense(hidden)-LeakyReLU-dense(1).

    Returns one logit per image, shape (N, 1) (no sigmoid: use a with-logits loss).

    Args:
        in_channels: image channels (default 1).
        base: channels of the first conv (default 64).
        hidden: width of the dense layer (default 1024).
        pool_size: side of the pooled feature map (default 4).
    """

    scale = None

    def __init__(
        self, *, in_channels: int = 1, base: int = 64, hidden: int = 1024, pool_size: int = 4
    ):
        config = init_config(locals())
        super().__init__()
        self.config = config
        layers: list[nn.Module] = [nn.Conv2d(in_channels, base, 3, padding=1)]
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        channels = [base, base, 2 * base, 2 * base, 4 * base, 4 * base, 8 * base, 8 * base]
        for i in range(1, len(channels)):
            stride = 2 if i % 2 == 1 else 1
            layers += [
                nn.Conv2d(channels[i - 1], channels[i], 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(channels[i]),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(nn.AdaptiveAvgPool2d(pool_size))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels[-1] * pool_size * pool_size, hidden),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model(
    "srgan",
    description="SRGAN generator (SRResNet 16x64 with BN), adversarially trained",
    gan=True,
)
def srgan(**kwargs) -> SRResNet:
    return SRResNet(**kwargs)


@register_model(
    "srgan-tiny",
    description="SRGAN generator (SRResNet 4x32), adversarially trained, for CPU demos",
    gan=True,
)
def srgan_tiny(**kwargs) -> SRResNet:
    return SRResNet(**{"n_feats": 32, "n_blocks": 4, **kwargs})


@register_discriminator("srgan-disc", description="SRGAN VGG-style discriminator, base 64")
def srgan_disc(**kwargs) -> SRGANDiscriminator:
    return SRGANDiscriminator(**kwargs)


@register_discriminator("srgan-disc-tiny", description="SRGAN discriminator, base 32, for CPU")
def srgan_disc_tiny(**kwargs) -> SRGANDiscriminator:
    return SRGANDiscriminator(**{"base": 32, "hidden": 256, **kwargs})
