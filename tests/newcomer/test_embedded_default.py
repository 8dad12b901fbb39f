"""The embedded default belongs to the checkout, not to `make run` (SPEC §6).

Every `manage.py` process of a fresh clone, started from a shell with no
production setting, gets debug mode, SQLite under var/, the filesystem Celery
transport, the simulated broker and one generated key under var/ (mode 0600),
so a second terminal shares the database, key and queue of `make run`. Any
production setting, or an explicit DJANGO_DEBUG, turns that off, and a
deployment without a real key refuses to start with one line that says why the
embedded default did not apply and how to fix it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.newcomer.conftest import newcomer_env

PROBE = (
    "from django.conf import settings as s; "
    "print(s.DEBUG, s.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1], s.DATABASES['default']['NAME'], "
    "s.CELERY_BROKER_URL, s.BROKER)"
)
STRONG_KEY = "w9Kq2Lz7Xv4Bn8Mc1Rt6Yp3Hs5Jd0Gf-Ua7Ie2Oo9Pl4Kj1Hh6Gg3Ff8Dd5Ss0Aa"


def manage(clone: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [".venv/bin/python", "manage.py", *args],
        cwd=clone,
        env=newcomer_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_with_no_production_setting_every_manage_py_process_shares_the_embedded_default(fresh_clone: Path) -> None:
    key_file = fresh_clone / "var" / "dev-secret-key"
    key_file.unlink(missing_ok=True)

    first = manage(fresh_clone, "shell", "-c", PROBE)
    key = key_file.read_text()
    second = manage(fresh_clone, "shell", "-c", PROBE)

    assert first.returncode == 0, first.stderr
    debug, engine, name, celery, broker = first.stdout.split()[-5:]
    assert (debug, engine, celery, broker) == ("True", "sqlite3", "filesystem://", "simulated")
    assert Path(name) == fresh_clone / "var" / "db.sqlite3"
    assert second.stdout.split()[-5:] == first.stdout.split()[-5:]
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.read_text() == key and len(key) >= 50  # one key for every process, kept
    assert key not in first.stdout + first.stderr + second.stdout + second.stderr


@pytest.mark.parametrize(
    ("env", "named", "fix"),
    [
        pytest.param({"DJANGO_DEBUG": "false"}, "DJANGO_DEBUG=false", "unset DJANGO_DEBUG", id="debug off explicitly"),
        pytest.param({"DATABASE_URL": "postgresql://backoffice@db.internal:5432/backoffice"}, "DATABASE_URL",
                     "DJANGO_DEBUG=true", id="a database URL"),
        pytest.param({"REDIS_URL": "redis://redis.internal:6379/0"}, "REDIS_URL", "DJANGO_DEBUG=true", id="Redis"),
        pytest.param({"CELERY_BROKER_URL": "redis://redis.internal:6379/1"}, "CELERY_BROKER_URL",
                     "DJANGO_DEBUG=true", id="a Celery broker"),
        pytest.param({"ALLOWED_HOSTS": "backoffice.example.com"}, "ALLOWED_HOSTS", "DJANGO_DEBUG=true",
                     id="public host names"),
    ],
)
def test_a_production_setting_without_a_key_refuses_to_start_and_says_why_the_default_did_not_apply(
    fresh_clone: Path, env: dict[str, str], named: str, fix: str
) -> None:
    result = manage(fresh_clone, "check", **env)

    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, lines
    assert lines[0].startswith("configuration error: DJANGO_SECRET_KEY is not set"), lines[0]
    assert "embedded development default" in lines[0] and f"because {named}" in lines[0], lines[0]
    assert "secrets.token_urlsafe" in lines[0] and fix in lines[0], lines[0]


def test_live_trading_is_never_the_embedded_default(fresh_clone: Path) -> None:
    result = manage(fresh_clone, "check", TRADING_MODE="live", ALPACA_API_KEY="AKFAKELIVE4R1T6Y3U9Q",
                    ALPACA_SECRET_KEY="fakeAlpacaSecret9x8c7v6b5n4m3l2k1j0hZ")

    assert result.returncode == 2
    assert "because TRADING_MODE=live is set" in result.stderr, result.stderr


def test_a_real_key_alone_makes_a_strict_non_debug_process(fresh_clone: Path) -> None:
    result = manage(fresh_clone, "shell", "-c", PROBE, DJANGO_SECRET_KEY=STRONG_KEY)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-5] == "False"


def test_explicit_debug_keeps_a_local_postgres_setup_working_with_the_dev_key(fresh_clone: Path) -> None:
    result = manage(fresh_clone, "shell", "-c", PROBE, DJANGO_DEBUG="true",
                    DATABASE_URL="postgresql://backoffice@127.0.0.1:5432/backoffice")

    assert result.returncode == 0, result.stderr
    debug, engine, *_ = result.stdout.split()[-5:]
    assert (debug, engine) == ("True", "postgresql")
