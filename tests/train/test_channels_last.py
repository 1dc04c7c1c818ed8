"""The shared Trainer's channels_last layout (lensr.train.trainer.ChannelsLast): every
registered trainable network converts, and its outputs and gradients are those of the
default layout (to float tolerance), 5-D group-conv weights included."""

import pytest
import torch

from lensr.models import create_model, list_models
from lensr.train.trainer import ChannelsLast

TRAINABLE = [i.name for i in list_models() if i.family in ("sr", "classifier") and i.trainable]


def _small(name: str):
    torch.manual_seed(0)
    return create_model(name)


@pytest.mark.parametrize("name", TRAINABLE)
def test_channels_last_keeps_outputs_and_gradients(name):
    torch.set_num_threads(1)
    ref, conv = _small(name), _small(name)
    ChannelsLast().setup(None, conv, "fit")
    assert any(
        p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last)
        for p in conv.parameters()
    ) or not any(p.dim() == 4 for p in conv.parameters())
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    outs = []
    for m in (ref, conv):
        m.train()
        y = m(x)
        y.float().square().mean().backward()
        outs.append((y.detach(), [p.grad.clone() for p in m.parameters() if p.grad is not None]))
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=1e-4, atol=1e-5)
    # Gradients as a whole: a sum reordered by another layout moves single entries by
    # float noise that BatchNorm's 1/std amplifies on a batch of 2.
    g1, g0 = (torch.cat([g.flatten() for g in o[1]]) for o in (outs[1], outs[0]))
    assert g1.shape == g0.shape and (g1 - g0).norm() <= 1e-3 * g0.norm()
