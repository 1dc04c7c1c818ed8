"""The package's layering, read from the source with ``ast`` (nothing is imported).

Layers, left to right; a module may import from its own layer or one to its left, never
from one to its right::

    errors, _version, config, io  <  data  <  instrument  <  sim  <  models  <  infer
      <  eval  <  train  <  report  <  study  <  cli

Every import counts, at module level or inside a function. ``lensr/__init__.py`` (the lazy
public face) is left out, and no module may import the package ``lensr`` itself. Modules
must not import each other in a circle either (an import of a package counts as an import
of its ``__init__.py``; the implicit import of a parent package does not).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "lensr"

LAYERS = (
    ("errors", "_version", "config", "io"),
    ("data",),
    ("instrument",),
    ("sim",),
    ("models",),
    ("infer",),
    ("eval",),
    ("train",),
    ("report",),
    ("study", "pipeline"),  # pipeline.py: the study engine until lensr/study/ replaces it
    ("cli", "api", "api_inputs", "api_results", "api_upscale"),  # api*: the Python face
)
RANK = {top: i for i, names in enumerate(LAYERS) for top in names}


def module_files(src: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``package`` under ``src``."""
    out = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def layer_of(module: str) -> int | None:
    """The layer index of a dotted module name (None: not in any layer)."""
    parts = module.split(".")
    return RANK.get(parts[1]) if len(parts) > 1 else None


def _is_package(module: str, modules: dict[str, Path]) -> bool:
    return module in modules and modules[module].name == "__init__.py"


def imports_of(module: str, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """``(imported module, line)`` for every import of a module of the package, resolved
    to the most specific module that exists (``from lensr.x import y`` is ``lensr.x.y``
    when that is a module, else ``lensr.x``)."""
    path = modules[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module if _is_package(module, modules) else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            targets = [
                f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in modules else origin
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            if target != PACKAGE and not target.startswith(PACKAGE + "."):
                continue
            while target not in modules and "." in target:
                target = target.rpartition(".")[0]
            found.append((target, node.lineno))
    return found


def _relative(path: Path) -> str:
    parts = path.parts
    return "/".join(parts[len(parts) - 1 - parts[::-1].index(PACKAGE) :])


def checked_modules(modules: dict[str, Path]) -> list[str]:
    return [m for m in modules if m != PACKAGE]


def layer_violations(modules: dict[str, Path]) -> list[str]:
    """One line per import that points to the right (or at the package ``lensr``)."""
    bad = []
    for module in checked_modules(modules):
        own = layer_of(module)
        for target, line in imports_of(module, modules):
            where = f"{_relative(modules[module])}:{line}"
            if target == PACKAGE:
                bad.append(f"{where}: {module} imports the package {PACKAGE} itself")
                continue
            theirs = layer_of(target)
            if own is not None and theirs is not None and theirs > own:
                bad.append(
                    f"{where}: {module} ({LAYERS[own][0]}) imports {target} "
                    f"({LAYERS[theirs][0]}, a layer to its right)"
                )
    return bad


def import_cycles(modules: dict[str, Path]) -> list[list[str]]:
    """The strongly connected groups of two or more modules (Tarjan), each sorted."""
    graph = {
        m: sorted({t for t, _ in imports_of(m, modules) if t != m and t != PACKAGE})
        for m in checked_modules(modules)
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return sorted(groups)


MODULES = module_files()


def test_every_module_belongs_to_a_layer():
    unknown = [m for m in checked_modules(MODULES) if layer_of(m) is None]
    assert not unknown, f"modules outside every layer (add them to LAYERS): {unknown}"


def test_no_module_imports_from_a_layer_to_its_right():
    bad = layer_violations(MODULES)
    assert not bad, f"{len(bad)} imports break the layering:\n" + "\n".join(bad)


def test_no_import_cycles():
    cycles = import_cycles(MODULES)
    assert not cycles, "modules that import each other in a circle:\n" + "\n".join(
        " <-> ".join(group) for group in cycles
    )


# The checker itself, on a made-up package ---------------------------------------------------


@pytest.fixture
def fake(tmp_path):
    files = {
        "__init__.py": "from lensr.cli import main\n",
        "errors.py": "",
        "data/__init__.py": "",
        "data/store.py": "from lensr.errors import E\nfrom . import torch_data\n",
        "data/torch_data.py": "def f():\n    from lensr.data.store import x\n",
        "sim/run.py": "import lensr\n\ndef g():\n    from ..cli import main\n",
        "cli/__init__.py": "from lensr.sim import run\n",
    }
    for name, text in files.items():
        path = tmp_path / PACKAGE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return module_files(tmp_path)


def test_checker_finds_rightward_imports_and_self_imports(fake):
    bad = layer_violations(fake)
    assert len(bad) == 2
    assert "lensr.sim.run imports the package lensr itself" in bad[0]
    assert "lensr.sim.run (sim) imports lensr.cli (cli, a layer to its right)" in bad[1]
    assert bad[1].startswith("lensr/sim/run.py:4:")


def test_checker_finds_function_level_cycles(fake):
    assert import_cycles(fake) == [
        ["lensr.cli", "lensr.sim.run"],
        ["lensr.data.store", "lensr.data.torch_data"],
    ]
