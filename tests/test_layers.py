"""The command line is an application on top of the library: the library never imports it."""

from __future__ import annotations

import ast
import pathlib

import greenpoint

PACKAGE = pathlib.Path(greenpoint.__file__).parent


def imported_modules(path: pathlib.Path) -> set[str]:
    """Every greenpoint module ``path`` imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("greenpoint")}


def test_nothing_outside_cli_imports_it_except_the_entry_point():
    users = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "cli" not in path.relative_to(PACKAGE).parts
        and any(name.startswith("greenpoint.cli") for name in imported_modules(path))
    }
    assert users == {"__main__.py"}
