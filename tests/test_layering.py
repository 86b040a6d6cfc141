"""The leaf packages never import the HTTP layer, quart or hypercorn (DESIGN.md section 8)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fazt

PACKAGE = Path(fazt.__file__).parent
LEAVES = ["budget", "capabilities", "sandbox", "storage", "egress", "nursery", "hosting", "auth",
          "applog"]
FORBIDDEN = ("fazt.http", "fazt.app", "fazt.cli", "quart", "quart_trio", "hypercorn")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("leaf", [leaf for leaf in LEAVES if (PACKAGE / leaf).is_dir()])
def test_leaf_packages_do_not_import_the_http_layer(leaf: str) -> None:
    offenders = []
    for path in sorted((PACKAGE / leaf).rglob("*.py")):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert offenders == []


def test_the_checker_sees_imports(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from fazt.http import RootApp\nimport hypercorn.trio\n")
    assert {"fazt.http", "hypercorn.trio"} <= _imports(bad)
