"""Rotation-equivariant models: exact C4/D4 equivariance, shapes, determinism, training."""

import copy
import json

import pytest
import torch
import torch.nn.functional as F

from lensr.errors import LensrError
from lensr.models import count_parameters, create_model, get_model_info, split_parameters
from lensr.models.checkpoint import load_checkpoint, save_checkpoint
from lensr.models.equivariant_cnn import EquivariantCNN
from lensr.models.equivariant_fsrcnn import EquivariantFSRCNN
from lensr.models.equivariant_layers import (
    EquivariantUpsampler,
    Group,
    GroupConv,
    LiftingConv,
    act_on_fields,
    symmetric_downsample,
    transform,
)

SR = ("fsrcnn-equivariant", "fsrcnn-hybrid")
ALL = (*SR, "equivariant-cnn")
TOL = 1e-5


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Two OpenMP threads on a busy 2-core machine spin against each other: ~100x slower.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def seeded(name, **kwargs):
    torch.manual_seed(0)
    return create_model(name, **kwargs)


def assert_close(a, b):
    assert a.shape == b.shape
    assert (a - b).abs().max().item() < TOL


def test_group_tables():
    for name, order in (("c4", 4), ("d4", 8)):
        g = Group(name)
        assert g.order == order and len(set(g.elements)) == order
        probe = torch.rand(5, 5)
        for i, h in enumerate(g.elements):
            for k, e in enumerate(g.elements):
                # g^-1 k applied after h gives k: T_h T_{h^-1 k} = T_k.
                back = g.elements[g.inv_mul[i][k]]
                assert torch.equal(transform(transform(probe, back), h), transform(probe, e))
    with pytest.raises(LensrError, match="group must be one of"):
        Group("c8")


@pytest.mark.parametrize("group", ["c4", "d4"])
@pytest.mark.parametrize("size", [(13, 10), (8, 8), (7, 7)])
def test_layers_are_equivariant(group, size):
    g = Group(group)
    torch.manual_seed(0)
    lift, conv = LiftingConv(2, 3, 5, group=g), GroupConv(3, 2, 3, group=g)
    up2, up3 = (EquivariantUpsampler(2, 1, s, group=g) for s in (2, 3))

    def features(x):
        return symmetric_downsample(conv(torch.relu(lift(x))))

    x = torch.rand(2, 2, *size)
    f = features(x)
    for i, e in enumerate(g.elements):
        assert_close(features(transform(x, e)), act_on_fields(f, i, g))
        for up in (up2, up3):
            assert_close(up(conv(lift(transform(x, e)))), transform(up(conv(lift(x))), e))


def lens_like(n: int, size: tuple[int, int], seed: int = 1) -> torch.Tensor:
    """Smooth random structure plus pixel noise: images that a random network tells apart."""
    g = torch.Generator().manual_seed(seed)
    smooth = torch.rand(n, 1, 6, 6, generator=g)
    smooth = F.interpolate(smooth, size=size, mode="bicubic", align_corners=False)
    return 3 * smooth + torch.rand(n, 1, *size, generator=g)


def calibrate_bn(model, x):
    """Exact BN statistics on ``x`` (at init the running ones make every logit alike)."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        model.train()(x)
    return model.eval()


@pytest.mark.parametrize("group", ["c4", "d4"])
def test_classifier_logits_invariant(group):
    model = seeded("equivariant-cnn", group=group, num_classes=3)
    with torch.no_grad():
        for size in ((64, 64), (33, 31)):
            x = lens_like(3, size)
            ref = calibrate_bn(model, x)(x)
            assert ref.shape == (3, 3)
            assert (ref - ref[0]).abs().max() > 0.05  # not a vacuous test
            for r, m in Group("d4").elements:
                out = model(transform(x, (r, m)))
                if m and group == "c4":  # C4 knows no mirror: a flip changes the logits
                    assert (out - ref).abs().max() > 0.05
                else:
                    assert_close(out, ref)


def test_classifier_invariant_in_training_mode_too():
    model = seeded("equivariant-cnn").train()
    x = lens_like(4, (24, 24))
    with torch.no_grad():
        ref = model(x)
        assert (ref - ref[0]).abs().max() > 0.05
        assert_close(model(torch.rot90(x, 1, (-2, -1))), ref)
        assert_close(model(torch.flip(x, (-2,))), ref)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("group", ["c4", "d4"])
def test_equivariant_fsrcnn_commutes_with_the_group(scale, group):
    model = seeded("fsrcnn-equivariant", scale=scale, group=group).eval()
    g = Group(group)
    x = torch.rand(2, 1, 15, 12)
    with torch.no_grad():
        y = model(x)
        assert y.shape == (2, 1, 15 * scale, 12 * scale)
        for e in g.elements:
            assert_close(model(transform(x, e)), transform(y, e))


def test_hybrid_features_equivariant_output_not():
    model = seeded("fsrcnn-hybrid").eval()
    g = model.group
    x = torch.rand(1, 1, 15, 12)
    with torch.no_grad():
        feats = model.encode(x)
        assert feats.shape == (1, 8 * 8, 15, 12)
        for i, e in enumerate(g.elements):
            assert_close(model.encode(transform(x, e)), act_on_fields(feats, i, g))
        rotated = model(transform(x, (1, 0)))
        assert (rotated - transform(model(x), (1, 0))).abs().max() > 1e-4


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("name", SR)
def test_sr_shapes_odd_sizes(name, scale):
    model = seeded(name, scale=scale).eval()
    assert isinstance(model, EquivariantFSRCNN) and model.arch == name
    with torch.no_grad():
        for h, w in ((75, 75), (37, 21), (1, 2)):
            out = model(torch.rand(1, 1, h, w))
            assert out.shape == (1, 1, scale * h, scale * w)
            assert torch.isfinite(out).all()
    two = create_model(name, scale=scale, in_channels=2).eval()
    with torch.no_grad():
        assert two(torch.rand(2, 2, 5, 6)).shape == (2, 2, 5 * scale, 6 * scale)


def test_registry_kinds_and_parameter_counts():
    assert get_model_info("equivariant-cnn").family == "classifier"
    assert all(get_model_info(n).family == "sr" and get_model_info(n).trainable for n in SR)
    assert count_parameters(seeded("fsrcnn-equivariant")) == 2_173
    assert count_parameters(seeded("fsrcnn-hybrid")) == 6_845
    assert count_parameters(seeded("equivariant-cnn")) == 295_579
    assert count_parameters(seeded("fsrcnn-equivariant", group="c4")) == 1_469
    with pytest.raises(LensrError, match="scale 8 is not supported"):
        create_model("fsrcnn-equivariant", scale=8)
    with pytest.raises(LensrError, match="does not take the argument 'scale'"):
        create_model("equivariant-cnn", scale=2)


def test_classifier_shapes_and_trainer_build():
    from lensr.train.classifier_module import build_classifier
    from lensr.train.config import ClassifierConfig

    model = build_classifier(ClassifierConfig(model="equivariant-cnn", seed=0), num_classes=3)
    assert isinstance(model, EquivariantCNN) and model.arch == "equivariant-cnn"
    assert model.config["num_classes"] == 3 and model.scale is None
    with torch.no_grad():
        for size in ((64, 64), (150, 150), (9, 11)):
            assert model.eval()(torch.rand(2, 1, *size)).shape == (2, 3)
        assert model.forward_features(torch.rand(1, 1, 32, 32)).shape == (1, 32)


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_model(name):
    a, b = seeded(name).eval(), seeded(name).eval()
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    x = torch.rand(2, 1, 16, 17)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    torch.manual_seed(1)
    c = create_model(name)
    assert any(not torch.equal(sa[k], c.state_dict()[k]) for k in sa)


@pytest.mark.parametrize("name", ALL)
def test_forward_backward_and_a_few_steps(name):
    model = seeded(name).train()
    x = torch.rand(4, 1, 16, 16)
    classifier = name == "equivariant-cnn"
    target = torch.tensor([0, 1, 2, 0]) if classifier else F.interpolate(x, scale_factor=2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        out = model(x)
        loss = F.cross_entropy(out, target) if classifier else F.l1_loss(out, target)
        loss.backward()
        for pname, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("name", SR)
def test_encode_decode_split(name):
    model = copy.deepcopy(seeded(name))
    features, upsampler = split_parameters(model)
    assert upsampler and all(n.startswith("upsampler.") for n in upsampler) and features
    x = torch.rand(1, 1, 6, 7)
    model.decode(model.encode(x).detach(), x).sum().backward()
    assert {n for n, p in model.named_parameters() if p.grad is not None} == set(upsampler)


@pytest.mark.parametrize("name", ALL)
def test_checkpoint_round_trip_in_either_mode(name, tmp_path):
    kwargs = {"scale": 4} if name in SR else {"widths": (4, 8)}
    model = seeded(name, **kwargs)
    model.train()(torch.rand(2, 1, 12, 12))  # the state dict must not depend on the mode
    assert json.loads(json.dumps(model.config))  # sidecar-safe
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    loaded, info = load_checkpoint(path)
    assert info["arch"] == name and type(loaded) is type(model)
    x = torch.rand(1, 1, 9, 10)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
