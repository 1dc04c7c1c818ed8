"""Presets: shipped ones load; bad ones fail in one line that names the problem."""

import pytest

from lensr.errors import LensrError
from lensr.sim.config import load_sim_config, preset_names


@pytest.mark.parametrize("name", preset_names())
def test_shipped_presets_load(name):
    cfg = load_sim_config(name)
    assert cfg.name == name and cfg.hr_size % cfg.scale == 0


def test_presets_include_the_three_domains():
    assert {"sim", "observed", "classify"} <= set(preset_names())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "name: x\nlens: {thetaE: [1, 2]}\n",
            "unknown key 'lens.thetaE' (did you mean 'theta_e'?)",
        ),
        ("lens: {theta_e: [1.5, 0.9]}\n", "'lens.theta_e': range [1.5, 0.9] has its lower bound"),
        ("hr_size: 151\n", "hr_size 151 is not a multiple of scale 2"),
        ("scale: 5\n", "'scale'"),
        ("hr_size: big\n", "'hr_size'"),
        ("cdm: {profile: nfw}\n", "'cdm.profile'"),
        ("cosmology: {z_lens: 1.0, z_source: 0.5}\n", "z_source (0.5) must exceed z_lens"),
        ("classes: []\n", "classes must be a non-empty list"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("lens: {theta_e: [1, \n", "invalid YAML"),
    ],
)
def test_bad_presets_give_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(LensrError) as info:
        load_sim_config(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_unknown_preset_name_lists_the_known_ones():
    with pytest.raises(LensrError, match="unknown preset 'simm'.*sim"):
        load_sim_config("simm")
    with pytest.raises(LensrError, match="does not exist"):
        load_sim_config("missing.yaml")
