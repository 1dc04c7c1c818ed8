import json
import os
import re
import stat

import pytest
import torch
from safetensors.torch import load_file, save_file

import lensr
from lensr.errors import LensrError
from lensr.models import create_discriminator, create_model
from lensr.models.checkpoint import load_checkpoint, resolve_model, save_checkpoint


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Two OpenMP threads on a busy 2-core machine spin against each other: ~100x slower.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def trained(name: str, **kwargs):
    """A model whose weights and BN running stats differ from a fresh one's."""
    torch.manual_seed(3)
    model = create_model(name, **kwargs)
    model.train()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
        model(torch.rand(4, 1, 16, 16))  # updates BN running statistics
    return model.eval()


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("rcan-tiny", {"scale": 4}), ("srresnet-tiny", {}), ("fsrcnn", {}), ("bicubic", {})],
)
def test_round_trip_same_outputs(tmp_path, name, kwargs):
    model = trained(name, **kwargs)
    meta = {"normalisation": {"kind": "lr-max"}, "data": {"file": "sim.h5", "seed": 0}}
    path = save_checkpoint(model, tmp_path / "m.safetensors", metadata=meta)
    torch.manual_seed(99)
    loaded, info = load_checkpoint(path)
    assert loaded.arch == name and loaded.config == model.config and not loaded.training
    assert info["normalisation"] == meta["normalisation"] and info["data"] == meta["data"]
    x = torch.rand(2, 1, 11, 9)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    sa, sb = model.state_dict(), loaded.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # BN buffers included
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


def test_sidecar_contents_and_json_path(tmp_path):
    model = create_model("edsr-tiny", scale=2, n_feats=16)
    save_checkpoint(model, tmp_path / "sub" / "e.safetensors", metadata={"epochs": 3})
    sidecar = json.loads((tmp_path / "sub" / "e.json").read_text())
    assert sidecar == {
        "format": "lensr-checkpoint/1",
        "arch": "edsr-tiny",
        "kwargs": model.config,
        "scale": 2,
        "lensr_version": lensr.__version__,
        "epochs": 3,
    }
    loaded, info = load_checkpoint(tmp_path / "sub" / "e.json")
    assert loaded.config["n_feats"] == 16 and info["epochs"] == 3


def test_classifier_and_discriminator_round_trip(tmp_path):
    clf = create_model("resnet18", num_classes=5, small_input=False).eval()
    save_checkpoint(clf, tmp_path / "c.safetensors")
    loaded, info = load_checkpoint(tmp_path / "c.safetensors")
    assert info["scale"] is None and loaded.config["num_classes"] == 5
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), clf(x))
    disc = create_discriminator("srgan-disc-tiny").eval()
    save_checkpoint(disc, tmp_path / "d.safetensors")
    loaded, _ = load_checkpoint(tmp_path / "d.safetensors")
    with torch.no_grad():
        assert torch.equal(loaded(x), disc(x))


def test_overwrite_is_atomic_and_clean(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(create_model("fsrcnn-tiny"), path)
    save_checkpoint(create_model("fsrcnn-tiny", n_feats=8), path)
    assert load_checkpoint(path)[0].config["n_feats"] == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


def test_files_get_ordinary_modes(tmp_path):
    old = os.umask(0o022)
    try:
        path = save_checkpoint(create_model("fsrcnn-tiny"), tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    for p in (path, path.with_suffix(".json")):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p.name


def one_line_error(match, fn, *args, **kwargs) -> str:
    with pytest.raises(LensrError, match=match) as err:
        fn(*args, **kwargs)
    assert "\n" not in str(err.value)
    return str(err.value)


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(create_model("rcan-tiny"), path)
    return path


def edit_sidecar(path, **changes):
    sidecar = path.with_suffix(".json")
    info = json.loads(sidecar.read_text())
    for key, value in changes.items():
        if value is None:
            info.pop(key)
        else:
            info[key] = value
    sidecar.write_text(json.dumps(info))


def test_missing_files(tmp_path, saved):
    one_line_error("not found", load_checkpoint, tmp_path / "nope.safetensors")
    saved.with_suffix(".json").unlink()
    one_line_error("no sidecar m.json", load_checkpoint, saved)


def test_truncated_weights(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    one_line_error("corrupt or truncated", load_checkpoint, saved)


def test_bad_sidecars(saved):
    edit_sidecar(saved, arch="rcann")
    msg = one_line_error("unknown model 'rcann'", load_checkpoint, saved)
    assert "did you mean 'rcan'" in msg
    edit_sidecar(saved, arch="rcan-tiny", kwargs=None)
    one_line_error("lacks the key 'kwargs'", load_checkpoint, saved)
    edit_sidecar(saved, kwargs={"bogus": 1})
    one_line_error("does not take the argument 'bogus'", load_checkpoint, saved)
    saved.with_suffix(".json").write_text("{not json")
    one_line_error("cannot read checkpoint sidecar", load_checkpoint, saved)
    saved.with_suffix(".json").write_text('{"arch": "rcan"}')
    one_line_error("not a lensr checkpoint sidecar", load_checkpoint, saved)


def test_weights_that_do_not_match_the_architecture(saved):
    edit_sidecar(saved, kwargs={"n_feats": 16})
    one_line_error(
        "do not match architecture 'rcan-tiny': tensor 'head.weight'", load_checkpoint, saved
    )
    edit_sidecar(saved, kwargs={"n_blocks": 3})
    one_line_error("tensor 'body.0.body.3.weight' is missing", load_checkpoint, saved)
    edit_sidecar(saved, kwargs={})
    load_checkpoint(saved)
    save_file({**load_file(saved), "extra.weight": torch.zeros(2)}, saved)
    one_line_error("unexpected tensor 'extra.weight'", load_checkpoint, saved)


def test_save_errors(tmp_path):
    model = create_model("fsrcnn-tiny")
    one_line_error("must end in .safetensors", save_checkpoint, model, tmp_path / "m.pt")
    one_line_error(
        "reserved", save_checkpoint, model, tmp_path / "m.safetensors", metadata={"arch": "x"}
    )
    one_line_error(
        "not JSON",
        save_checkpoint,
        model,
        tmp_path / "m.safetensors",
        metadata={"t": torch.ones(1)},
    )
    one_line_error(
        "create_model", save_checkpoint, torch.nn.Linear(2, 2), tmp_path / "m.safetensors"
    )
    assert list(tmp_path.iterdir()) == []


def test_resolve_model(tmp_path, saved):
    model = resolve_model("bicubic", scale=4)
    assert model.arch == "bicubic" and model.scale == 4 and model.metadata == {}
    assert resolve_model("bilinear").scale == 2
    loaded = resolve_model(str(saved), scale=2)
    assert loaded.arch == "rcan-tiny" and loaded.metadata["scale"] == 2
    assert resolve_model(saved.with_suffix(".json")).arch == "rcan-tiny"
    one_line_error(
        re.escape(f"checkpoint {saved} is for scale 2, but scale 4 was asked"),
        resolve_model,
        str(saved),
        scale=4,
    )
    one_line_error("neither a baseline model", resolve_model, str(tmp_path / "x.safetensors"))
    one_line_error("neither a baseline model .*bilinear", resolve_model, "bilinar")
    one_line_error("a pretrained model .*space-x2", resolve_model, "spce-x2")
    one_line_error("untrained architecture", resolve_model, "rcan")
