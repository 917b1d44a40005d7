"""No package imports another package's private names: the half of "no private imports" that import-linter
cannot see (its private_modules contract in pyproject.toml checks modules, `metallb_py.x._y`; this checks
names, `from metallb_py.x.y import _z`). A name another package needs is made public where it lives.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "python" / "metallb_py"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def owner(module: str) -> str:
    """The package a module belongs to for this rule: metallb_py.x for metallb_py.x.*, else itself."""
    return ".".join(module.split(".")[:2])


def private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def cross_package_private_imports(importer: str, source: str) -> list[str]:
    """`module: name` for each private name `source` (the text of module `importer`) takes from another
    package of metallb_py."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom) or node.level != 0 or node.module is None:
            continue
        if not node.module.startswith("metallb_py.") or owner(node.module) == owner(importer):
            continue
        found += [f"{node.module}: {alias.name}" for alias in node.names if private(alias.name)]
    return found


def test_the_rule_sees_a_private_name_across_packages() -> None:
    source = (
        "from metallb_py.controller.queue import WorkQueue, _hidden\n"
        "from metallb_py.speaker.leases import _mine\n"
        "from metallb_py._core import Responder\n"
        "def f():\n    from metallb_py.k8s.client import _late\n"
    )
    assert cross_package_private_imports("metallb_py.speaker.probe", source) == [
        "metallb_py.controller.queue: _hidden",
        "metallb_py.k8s.client: _late",
    ]


def test_no_package_imports_another_packages_private_names() -> None:
    violations = {
        str(path.relative_to(PACKAGE.parent)): found
        for path in sorted(PACKAGE.rglob("*.py"))
        if (found := cross_package_private_imports(module_name(path), path.read_text()))
    }
    assert violations == {}
