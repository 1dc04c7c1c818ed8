import pytest
import torch

from lensr.errors import LensrError
from lensr.models import (
    SRNet,
    create_discriminator,
    create_model,
    get_model_info,
    list_discriminators,
    list_models,
    register_model,
)
from lensr.models.registry import _MODELS

EXPECTED = {
    "bilinear", "bicubic", "fsrcnn", "fsrcnn-tiny", "srresnet", "srresnet-tiny", "edsr",
    "edsr-full", "edsr-tiny", "rdn", "rdn-tiny", "rcan", "rcan-tiny", "srgan", "srgan-tiny",
    "physics", "physics-tiny", "resnet18", "equivariant-cnn", "fsrcnn-equivariant",
    "fsrcnn-hybrid",
}  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Two OpenMP threads on a busy 2-core machine spin against each other: ~100x slower.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_all_names_registered_with_families():
    infos = {i.name: i for i in list_models()}
    assert set(infos) == EXPECTED
    assert {i.name for i in list_models("baseline")} == {"bilinear", "bicubic"}
    assert sorted(i.name for i in list_models("classifier")) == ["equivariant-cnn", "resnet18"]
    for info in infos.values():
        assert info.family in ("sr", "baseline", "classifier")
        assert info.description
        assert info.trainable == (info.family != "baseline")
        assert info.gan == info.name.startswith("srgan")


def test_get_model_info():
    info = get_model_info("srgan")
    assert info.gan and info.trainable and info.family == "sr"
    assert not get_model_info("bicubic").trainable


@pytest.mark.parametrize("call", [get_model_info, create_model])
def test_unknown_name_suggests_and_lists(call):
    with pytest.raises(LensrError) as err:
        call("rcann")
    msg = str(err.value)
    assert "'rcann'" in msg and "did you mean 'rcan'" in msg
    assert "edsr-tiny" in msg and "resnet18" in msg and "\n" not in msg


def test_create_sets_arch_and_overrides():
    model = create_model("edsr", scale=4, n_feats=32)
    assert isinstance(model, SRNet)
    assert model.arch == "edsr" and model.scale == 4
    assert model.config["n_feats"] == 32 and model.config["n_blocks"] == 16
    assert create_model("srgan-tiny").arch == "srgan-tiny"
    assert create_model("rcan-tiny", scale=None).scale == 2


def test_config_rebuilds_the_model():
    for name in ("rcan-tiny", "fsrcnn-tiny", "bicubic", "resnet18"):
        model = create_model(name)
        clone = type(model)(**model.config)
        assert clone.config == model.config
        shapes = {k: v.shape for k, v in model.state_dict().items()}
        assert {k: v.shape for k, v in clone.state_dict().items()} == shapes


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(LensrError, match="does not take the argument 'n_colors'"):
        create_model("rcan-tiny", n_colors=3)
    with pytest.raises(LensrError, match="scale 5 is not supported"):
        create_model("edsr-tiny", scale=5)
    with pytest.raises(LensrError, match="does not take the argument 'scale'"):
        create_model("resnet18", scale=2)


def test_register_rejects_duplicates_and_bad_family():
    with pytest.raises(ValueError):
        register_model("rcan", description="again")(lambda **kw: None)
    with pytest.raises(ValueError):
        register_model("x-test", description="x", family="gan")
    assert "x-test" not in _MODELS


def test_discriminator_any_size_one_logit():
    assert {i.name for i in list_discriminators()} == {"srgan-disc", "srgan-disc-tiny"}
    disc = create_discriminator("srgan-disc-tiny")
    assert disc.arch == "srgan-disc-tiny"
    for size in (150, 128, 64, 33):
        out = disc(torch.randn(2, 1, size, size))
        assert out.shape == (2, 1)
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in disc.parameters())
    full = create_discriminator(in_channels=1, base=64)
    assert full.arch == "srgan-disc" and full(torch.randn(1, 1, 64, 64)).shape == (1, 1)
    assert any(isinstance(m, torch.nn.AdaptiveAvgPool2d) for m in full.modules())
    with pytest.raises(LensrError, match="did you mean 'srgan-disc'"):
        create_discriminator("srgan-dsc")
