import math

import pytest
import torch
import torch.nn.functional as F

from lensr.models import count_parameters, create_model
from lensr.models.resnet import ResNet18


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Two OpenMP threads on a busy 2-core machine spin against each other: ~100x slower.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_shapes_and_structure():
    model = create_model("resnet18", num_classes=3).eval()
    assert isinstance(model, ResNet18) and model.arch == "resnet18"
    assert model.config == {
        "num_classes": 3,
        "in_channels": 1,
        "small_input": True,
        "zero_init_residual": False,
    }
    with torch.no_grad():
        assert model(torch.rand(2, 1, 64, 64)).shape == (2, 3)
        assert model.forward_features(torch.rand(1, 1, 33, 31)).shape == (1, 512)
    blocks = [m for m in model.modules() if type(m).__name__ == "BasicBlock"]
    assert len(blocks) == 8
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    # Standard ResNet-18 minus the 3-channel stem and 1000-class head.
    imagenet_stem = create_model("resnet18", num_classes=1000, small_input=False)
    assert count_parameters(imagenet_stem) == 11_689_512 - 2 * 64 * 7 * 7
    with torch.no_grad():
        assert imagenet_stem.eval()(torch.rand(1, 1, 150, 150)).shape == (1, 1000)


def toy_set(n_per_class: int, seed: int, size: int = 32):
    """Horizontal stripes, vertical stripes and rings, random frequency and phase, noisy."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(
        torch.arange(size, dtype=torch.float32),
        torch.arange(size, dtype=torch.float32),
        indexing="ij",
    )
    coords = (yy, xx, torch.hypot(yy - size / 2, xx - size / 2))
    images, labels = [], []
    for label, coord in enumerate(coords):
        for _ in range(n_per_class):
            freq = 0.3 + 0.4 * torch.rand(1, generator=g)
            phase = 2 * math.pi * torch.rand(1, generator=g)
            noise = 0.3 * torch.randn(size, size, generator=g)
            images.append(torch.sin(freq * coord + phase) + noise)
            labels.append(label)
    return torch.stack(images)[:, None], torch.tensor(labels)


def test_learns_a_separable_toy_set():
    x, y = toy_set(16, seed=0)
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=3, small_input=False)  # fast stem for speed
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(6):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    # Precise BN: six steps are too few for momentum running stats, so recompute them.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        model(x)
        model.eval()
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    assert accuracy > 0.9
