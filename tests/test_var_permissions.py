"""Files under var/ that hold secrets are owner-only (0600) from the moment they exist.

The embedded default keeps the SQLite database (API tokens, password
hashes) and the generated development key under var/. Each case starts a
real process with a permissive umask, as a developer's shell has.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from backoffice import config

PROJECT = Path(__file__).resolve().parents[1]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT, env=clean, capture_output=True, text=True, timeout=300,
        umask=0o022,
    )


def test_the_sqlite_database_and_its_wal_files_are_created_owner_only(tmp_path):
    database = tmp_path / "state" / "db.sqlite3"
    env = {"DJANGO_DEBUG": "true", "DJANGO_SECRET_KEY": "x" * 60, "DATABASE_URL": f"sqlite:///{database}"}

    result = _manage("migrate", "--noinput", env=env)

    assert result.returncode == 0, result.stderr[-2000:]
    files = sorted(database.parent.glob("db.sqlite3*"))
    assert database in files
    assert {path.name: _mode(path) for path in files} == {path.name: 0o600 for path in files}


def test_an_existing_world_readable_database_is_tightened_at_start(tmp_path):
    database = tmp_path / "db.sqlite3"
    database.touch(mode=0o644)
    database.chmod(0o644)
    env = {"DJANGO_DEBUG": "true", "DJANGO_SECRET_KEY": "x" * 60, "DATABASE_URL": f"sqlite:///{database}"}

    result = _manage("check", env=env)

    assert result.returncode == 0, result.stderr[-2000:]
    assert _mode(database) == 0o600


def test_the_generated_development_key_is_owner_only(tmp_path):
    old_umask = os.umask(0o022)
    try:
        loaded = config.from_environ({"DJANGO_DEBUG": "true"}, base_dir=tmp_path)
    finally:
        os.umask(old_umask)

    key_file = tmp_path / "var" / "dev-secret-key"
    assert key_file.read_text() == loaded.secret_key
    assert _mode(key_file) == 0o600
    assert _mode(key_file.parent) == 0o700


@pytest.mark.django_db
def test_the_demo_credentials_are_owner_only(settings, tmp_path):
    from django.core.management import call_command

    settings.DEBUG = True
    settings.VAR_DIR = tmp_path
    old_umask = os.umask(0o022)
    try:
        call_command("bootstrap_demo", stdout=io.StringIO())
    finally:
        os.umask(old_umask)

    assert _mode(tmp_path / "demo-credentials") == 0o600
    assert _mode(tmp_path / "demo-api-token") == 0o600
