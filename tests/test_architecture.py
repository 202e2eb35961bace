"""The house's one-way imports, read from the code: layers only import the layers below them,
and no two modules import each other (docs/architecture.md draws the same map)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("fedsim", "clients", "strategies", "benchmarks", "examples")
# Lowest first: a module may import modules of its own layer or of the layers below.
LAYERS = (
    ("fedsim.scenario", "fedsim.protocol"),
    ("fedsim.data", "fedsim.models"),
    ("fedsim.results",),
    ("strategies",),
    ("clients",),
    ("fedsim.sim",),
    ("fedsim.deploy",),
    ("fedsim.api", "fedsim.cli", "fedsim.__init__", "fedsim.__main__"),
    ("benchmarks", "examples"),
)


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__") if name.endswith(".__init__") else name] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The project's modules ``path`` imports, at the top or inside functions alike."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)  # from fedsim import engine
    return {name for name in out if name in known and not _package_only(name, known)}


def _package_only(name: str, known: dict[str, Path]) -> bool:
    """``fedsim`` itself, reached by ``from fedsim.x import y``: its __init__ imports nothing eagerly."""
    return name in PACKAGES


def layer(name: str) -> int:
    for index, members in enumerate(LAYERS):
        if any(name == m or name.startswith(f"{m}.") for m in members):
            return index
    raise AssertionError(f"{name} belongs to no layer: add it to LAYERS")


def test_every_module_imports_only_its_own_layer_or_lower_ones() -> None:
    known = modules()
    upward = [
        f"{name} -> {other}"
        for name, path in known.items()
        if name != "fedsim"  # its names load on first use (PEP 562), from the top layer
        for other in imports(path, known)
        if layer(other) > layer(name)
    ]
    assert not upward, "imports that climb a layer:\n" + "\n".join(sorted(upward))


def test_no_two_modules_import_each_other() -> None:
    known = modules()
    graph = {name: imports(path, known) for name, path in known.items()}
    pairs = sorted(
        {tuple(sorted((a, b))) for a, deps in graph.items() for b in deps if a in graph.get(b, ())}
    )
    assert not pairs, f"modules importing each other: {pairs}"
