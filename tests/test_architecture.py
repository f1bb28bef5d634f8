"""The package's shape: layers you can see in the tree, and nothing that runs against them.

import-linter (``lint-imports``, contracts in pyproject.toml) holds the layers, the domain-free engine and
the light tap, following indirect chains too. What it does not check is checked here from the code's own
imports: no import cycle between modules, no module reaching into another's private names, and a
docstring on every layer saying its role.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "shadowdiff"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every import in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names], node.lineno))
    return found


def _internal(target: str, names: list[str]) -> list[str]:
    """The shadowdiff modules an import statement loads (``from pkg import mod`` loads ``pkg.mod``)."""
    if not target.startswith("shadowdiff"):
        return []
    loaded = [target] if target in MODULES else []
    loaded += [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
    return loaded


def test_import_linter_contracts_are_kept() -> None:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    done = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert f"Contracts: {len(contracts)} kept, 0 broken." in done.stdout


def test_the_layers_contract_names_every_subpackage() -> None:
    """A new subpackage must be placed in a layer, or import-linter would not look at it."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers")["layers"]
    named = {name.strip() for layer in layers for name in layer.split("|")}
    subpackages = {_module_name(p.parent) for p in PKG.glob("*/__init__.py")}
    assert named == subpackages


@pytest.mark.parametrize("init", sorted(PKG.glob("*/__init__.py")), ids=lambda p: p.parent.name)
def test_every_layer_says_its_role_and_what_it_may_import(init: Path) -> None:
    doc = ast.get_docstring(ast.parse(init.read_text())) or ""
    assert len(doc.split()) >= 15, f"{init}: say the layer's role in its docstring"
    lowered = doc.lower()
    assert "import" in lowered or "only place" in lowered, f"{init}: say what the layer may import"


def test_no_import_cycle_between_modules() -> None:
    """Deferred imports inside functions count too: a cycle is a cycle, whenever it is closed."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for target, names, _ in _imports(path):
            graph[name].update(m for m in _internal(target, names) if m != name)
    # a package's __init__ importing its own modules lazily is how ``shadowdiff.__all__`` works: not a cycle
    graph["shadowdiff"] = set()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert cycles == []


def test_no_module_reaches_into_another_modules_private_names() -> None:
    reaches = []
    for name, path in MODULES.items():
        for target, names, line in _imports(path):
            if target.startswith("shadowdiff") and target != name:
                private = [n for n in names if n.startswith("_") and not n.startswith("__")]
                reaches += [f"{path.relative_to(ROOT)}:{line}: {target}.{n}" for n in private]
        tree = ast.parse(path.read_text())
        aliases = {
            alias.asname or alias.name: f"{node.module}.{alias.name}"
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("shadowdiff")
            for alias in node.names
            if f"{node.module}.{alias.name}" in MODULES
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                reaches.append(
                    f"{path.relative_to(ROOT)}:{node.lineno}: {aliases[node.value.id]}.{node.attr}"
                )
    assert reaches == []


def test_the_domain_is_installed_under_its_own_name(tmp_path: Path) -> None:
    """``adapters/doge/`` installs as ``shadowdiff_doge``: no top-level ``adapters`` in site-packages.

    Run from elsewhere, so this checkout's folder is not on the path (it would import as a namespace).
    """
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    probe = (
        "import importlib.util, shadowdiff_doge, pathlib; "
        "print(pathlib.Path(shadowdiff_doge.__file__).resolve().parent); "
        "print(importlib.util.find_spec('adapters'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    where, adapters = done.stdout.splitlines()
    assert Path(where) == ROOT / "adapters" / "doge"
    assert adapters == "None"
    assert not (ROOT / "adapters" / "__init__.py").exists()


def test_the_architecture_page_names_what_exists() -> None:
    """docs/architecture.md matches the code: every module it names exists, and every ``module.name``
    it names is defined there (the walk of one record must not walk through a room that was moved)."""
    import importlib
    import re

    page = (ROOT / "docs" / "architecture.md").read_text()
    layers = {p.parent.name for p in PKG.glob("*/__init__.py")}
    for layer in re.findall(r"`([a-z]+)/`", page):
        assert layer in layers | {"adapters", "shadowdiff"}, f"docs/architecture.md: no layer {layer}/"
    assert layers <= set(re.findall(r"`([a-z]+)/`", page)), "a layer is missing from docs/architecture.md"
    named = [
        (p, r)
        for p, r in re.findall(r"`([a-z]+/[a-z_]+)(\.py|\.[A-Za-z_]+)?", page)
        if p.split("/")[0] in layers
    ]
    assert len(named) > 20
    for path, rest in named:
        module = importlib.import_module("shadowdiff." + path.replace("/", "."))
        if rest and rest != ".py":
            assert hasattr(module, rest[1:]), f"docs/architecture.md: {path}{rest} is not defined"


def test_no_domain_parameter_is_named_under_shadowdiff() -> None:
    """A step's context is ``Context(config, params)`` with the names the domain declares: nothing under
    shadowdiff/ names DOGE's call parameters (its order size and per-trade sizes)."""
    named = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted(PKG.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if "order_size" in line
    ]
    assert named == []


def test_the_benches_use_public_seams_only() -> None:
    """bench/ measures through the engine's public names (``Replay.drain``, ``IdentityWire.defaults``...):
    a bench that reaches into a private name breaks silently when the engine changes inside."""
    import re

    reach = re.compile(r"\b(?!self\b|os\b|sys\b)[a-z_][a-z_0-9]*\._[a-z][a-z_0-9]*")
    found = [
        f"{path.relative_to(ROOT)}:{number}: {match.group(0)}"
        for path in sorted((ROOT / "bench").glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        for match in reach.finditer(line.split("#", 1)[0])
    ]
    assert found == []
