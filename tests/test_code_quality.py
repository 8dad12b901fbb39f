"""STYLE 10 as a gate: `ruff` clean, and `mypy` with django-stubs clean on the orders, risk and broker packages.

Both read their configuration from pyproject.toml, so a developer's
`.venv/bin/ruff check .` and `.venv/bin/mypy` give the same answer as CI.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing_to_fix():
    result = _run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_no_type_error_in_the_service_and_risk_modules():
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def test_no_virtualenv_is_tracked():
    """A committed `.venv` (even a symlink) replaces the environment of every checkout it is pulled into."""
    result = subprocess.run(
        ["git", "ls-files", "--", ".venv", "venv", "env"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:  # not a git checkout (an sdist, a container build): nothing to check
        return
    assert result.stdout.strip() == "", f"tracked virtualenv paths: {result.stdout.split()}"
