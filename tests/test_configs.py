"""configs/ is the copy users edit; the package's presets/ and studies/ are the truth.

Every YAML in configs/ must be byte-identical to the file of the same name shipped in
src/lensr/presets/ or src/lensr/studies/, and every shipped YAML must have its copy, so the
two never drift apart. To change a preset or a study, edit the package file and copy it:
``cp src/lensr/presets/*.yaml src/lensr/studies/*.yaml configs/``.
"""

from pathlib import Path

import pytest

import lensr

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
PACKAGE = Path(lensr.__file__).resolve().parent
SHIPPED = sorted((PACKAGE / "presets").glob("*.yaml")) + sorted(
    (PACKAGE / "studies").glob("*.yaml")
)


def test_shipped_names_are_unique():
    names = [p.name for p in SHIPPED]
    assert SHIPPED and len(names) == len(set(names))


@pytest.mark.parametrize("shipped", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_configs_copy_equals_the_shipped_yaml(shipped):
    copy = CONFIGS / shipped.name
    assert copy.is_file(), f"configs/{shipped.name} is missing: cp {shipped} configs/"
    assert copy.read_bytes() == shipped.read_bytes(), (
        f"configs/{shipped.name} differs from {shipped.relative_to(ROOT)}: edit the package "
        f"file and copy it to configs/"
    )


def test_configs_holds_no_yaml_the_package_lacks():
    extra = sorted({p.name for p in CONFIGS.glob("*.yaml")} - {p.name for p in SHIPPED})
    assert not extra, f"configs/ holds {extra}, which the package does not ship"
