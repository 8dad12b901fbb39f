"""Imports only point down (SPEC 2): backoffice -> orders -> risk -> brokers -> core.

Every module of each package is parsed and every import in it is read,
including the ones inside functions, so a lazy import cannot slip past. Only
migrations (historical models) and tests are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
APPS = {"core", "brokers", "risk", "orders", "backoffice"}

# Which of our apps each package may import (besides itself).
ALLOWED = {
    "core": set(),
    "brokers": {"core"},
    "risk": {"core", "brokers"},
    "orders": {"core", "brokers", "risk"},
}


def imported_apps(source: str) -> set[str]:
    """Our top-level packages that ``source`` imports, anywhere in the module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names} & APPS
    return found


def modules(package: str) -> list[Path]:
    return sorted(
        path for path in (PROJECT / package).rglob("*.py")
        if "migrations" not in path.parts and "tests" not in path.parts
    )


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below_it(package):
    assert modules(package), f"no modules found under {package}/"
    violations = {
        str(path.relative_to(PROJECT)): sorted(found)
        for path in modules(package)
        if (found := imported_apps(path.read_text()) - ALLOWED[package] - {package})
    }

    assert violations == {}


def test_no_module_of_orders_risk_or_brokers_imports_backoffice():
    offenders = [
        str(path.relative_to(PROJECT))
        for package in ("orders", "risk", "brokers")
        for path in modules(package)
        if "backoffice" in imported_apps(path.read_text())
    ]

    assert offenders == []


def test_the_walk_sees_imports_inside_functions_and_from_submodules():
    source = (
        "import json\n"
        "from risk.models import Strategy\n"
        "def later():\n"
        "    from backoffice.api import problem\n"
        "    import orders.services\n"
    )

    assert imported_apps(source) == {"risk", "backoffice", "orders"}
