"""A fresh clone of this checkout, as a newcomer gets it, for the tests of the newcomer's path.

The clone holds the committed tree plus the working tree's uncommitted changes
and new (not ignored) files, so a README edit is tested before it is
committed. Its ``.venv`` is a real virtual environment of its own, but thin:
no pip, a ``.pth`` line that adds the packages of the environment running the
tests, a ``celery`` launcher, and install stamps newer than the requirements
files. So ``make run`` finds it ready instead of spending a minute installing,
and nothing a test does in the clone can install into (or race with an
install into) a shared environment. Everything else (var/, the database, the
dev key) starts empty, as on a newcomer's machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]


def _thin_venv(target: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
    python = target / "bin" / "python"
    site_packages = Path(
        subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       check=True, capture_output=True, text=True).stdout.strip()
    )
    shared = sysconfig.get_paths()["purelib"]  # also runs the .pth files there, as site-packages would
    (site_packages / "tests-shared-packages.pth").write_text(f"import site; site.addsitedir({shared!r})\n")
    celery = target / "bin" / "celery"
    celery.write_text(f"#!{python}\nimport sys\nfrom celery.__main__ import main\nsys.exit(main())\n")
    celery.chmod(0o755)
    for stamp in (".stamp-requirements", ".stamp-requirements-dev"):
        (target / stamp).touch()


def newcomer_env(**extra: str) -> dict[str, str]:
    """A shell's environment on a newcomer's machine: none of the test run's settings (DATABASE_URL, ...)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "TERM": "xterm",
    }
    env.update(extra)
    return env


def _git(*args: str, cwd: Path = PROJECT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def make_clone(parent: Path) -> Path:
    """Clone this checkout into ``parent/backoffice`` (see the module docstring for what it holds)."""
    clone = parent / "backoffice"
    _git("clone", "--quiet", str(PROJECT), str(clone))
    _git("checkout", "--quiet", "--detach", _git("rev-parse", "HEAD"), cwd=clone)
    diff = subprocess.run(["git", "diff", "HEAD", "--binary"], cwd=PROJECT, check=True, capture_output=True).stdout
    if diff:
        subprocess.run(["git", "apply", "--whitespace=nowarn"], cwd=clone, input=diff, check=True)
    for name in _git("ls-files", "--others", "--exclude-standard").splitlines():
        target = clone / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT / name, target)
    for name in ("requirements.txt", "requirements-dev.txt"):
        os.utime(clone / name, (0, 0))  # older than the install stamps: make installs nothing
    _thin_venv(clone / ".venv")
    return clone


@pytest.fixture(scope="session")
def fresh_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One clone shared by the quick tests of this package (they only add files under var/)."""
    return make_clone(tmp_path_factory.mktemp("newcomer"))
