"""Packages depend one way (docs/architecture.md): http → alerting → ledger → metrics → export.

Every import in a package's source, at module level or inside a function, is checked: a package
may import those after it in that order, never one before it, and no import is relative (the
check could not tell where it leads).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "collector"
LAYERS = ["http", "alerting", "ledger", "metrics", "export"]


def imported_packages(root: Path, package: str) -> dict[str, set[str]]:
    """Each module of `root/package` and the collector packages it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((root / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level:
                names.add("a relative import")  # unresolved here: the layers must be spelt out
                continue
            if isinstance(node, ast.ImportFrom) and node.module == "collector":
                modules = [f"collector.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            names |= {m.split(".")[1] for m in modules if m.startswith("collector.")}
        found[str(path.relative_to(root.parent))] = names
    return found


def against_the_direction(root: Path, package: str) -> dict[str, list[str]]:
    """The modules of `package` that import a layer before it, and those layers."""
    above = {*LAYERS[: LAYERS.index(package)], "a relative import"}
    modules = imported_packages(root, package)
    assert modules, f"{root.name}/{package} has no modules"
    return {module: sorted(names & above) for module, names in modules.items() if names & above}


@pytest.mark.parametrize("package", LAYERS)
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    wrong = against_the_direction(PACKAGE, package)
    assert not wrong, f"imports against the direction {' → '.join(LAYERS)}: {wrong}"


def test_an_import_against_the_direction_is_found_even_inside_a_function(tmp_path: Path) -> None:
    export = tmp_path / "collector" / "export"
    export.mkdir(parents=True)
    (export / "fine.py").write_text("from collector.window import Window\n")
    (export / "late.py").write_text("def f():\n    from collector.metrics import hashing\n")
    (export / "bare.py").write_text("from collector import http\n")
    (export / "near.py").write_text("from ..http import routes\n")
    assert against_the_direction(tmp_path / "collector", "export") == {
        "collector/export/bare.py": ["http"],
        "collector/export/late.py": ["metrics"],
        "collector/export/near.py": ["a relative import"],
    }
