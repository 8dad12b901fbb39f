"""Start-up refuses every unsafe configuration in one line; production settings pass `check --deploy`.

Each case runs ``manage.py check`` as a separate process with nothing but the
environment given here, exactly how an operator starts the web server, the
worker or beat, so what is asserted is what the operator sees.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.fakes import (
    FAKE_ALPACA_API_KEY,
    FAKE_ALPACA_SECRET_KEY,
    FAKE_CELERY_BROKER_URL,
    FAKE_DATABASE_URL,
    leaked_secrets,
)

PROJECT = Path(__file__).resolve().parents[2]
STRONG_SECRET_KEY = "w9Kq2Lz7Xv4Bn8Mc1Rt6Yp3Hs5Jd0Gf-Ua7Ie2Oo9Pl4Kj1Hh6Gg3Ff8Dd5Ss0Aa"
LIVE_API_KEY = "AKFAKELIVE4R1T6Y3U9Q"  # live keys start with AK
LIVE_HOST, PAPER_HOST = "https://api.alpaca.markets", "https://paper-api.alpaca.markets"

# What every case starts from: a non-debug process with a strong key and a
# PostgreSQL URL with a password (never connected to by `check`).
BASE = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": STRONG_SECRET_KEY,
    "ALLOWED_HOSTS": "backoffice.example.com",
    "DATABASE_URL": FAKE_DATABASE_URL,
    "CELERY_BROKER_URL": FAKE_CELERY_BROKER_URL,
}
PAPER_KEYS = {"ALPACA_API_KEY": FAKE_ALPACA_API_KEY, "ALPACA_SECRET_KEY": FAKE_ALPACA_SECRET_KEY}
LIVE_KEYS = {"ALPACA_API_KEY": LIVE_API_KEY, "ALPACA_SECRET_KEY": FAKE_ALPACA_SECRET_KEY}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python manage.py <args>`` with only ``env`` (and PATH), never the test run's own environment."""
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- Production settings -------------------------------------------------------


def test_production_settings_pass_check_deploy_without_a_single_warning() -> None:
    env = {
        **BASE,
        "REDIS_URL": "redis://redis.internal:6379/0",
        "CSRF_TRUSTED_ORIGINS": "https://backoffice.example.com",
    }

    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout
    assert "WARNING" not in result.stdout + result.stderr
    assert leaked_secrets(result.stdout + result.stderr) == []


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({**BASE, **PAPER_KEYS}, id="paper with paper keys at the paper host"),
        pytest.param(
            {**BASE, **PAPER_KEYS, "ALPACA_BASE_URL": "http://127.0.0.1:9999"}, id="paper with a loopback fake"
        ),
        pytest.param({**BASE, "TRADING_MODE": "live", **LIVE_KEYS}, id="live with live keys at the live host"),
        pytest.param({**BASE}, id="no credentials: the simulated broker"),
    ],
)
def test_a_coherent_configuration_starts(env: dict[str, str]) -> None:
    """The refusals below must come from the bad value, not from a base that never starts."""
    result = manage("check", env=env)

    assert result.returncode == 0, result.stderr
    assert leaked_secrets(result.stdout + result.stderr) == []


# --- Refusals: (id, environment on top of BASE, removed from BASE, the variable the line must name) ----

REFUSALS: list[tuple[str, dict[str, str], tuple[str, ...], str]] = [
    # Paper and live (SPEC §4.6)
    ("live without keys", {"TRADING_MODE": "live"}, (), "TRADING_MODE"),
    ("live with the simulated broker", {"TRADING_MODE": "live", "BROKER": "simulated", **LIVE_KEYS}, (), "BROKER"),
    ("live with paper keys", {"TRADING_MODE": "live", **PAPER_KEYS}, (), "ALPACA_API_KEY"),
    ("live pointing at the paper host", {"TRADING_MODE": "live", **LIVE_KEYS, "ALPACA_BASE_URL": PAPER_HOST}, (),
     "ALPACA_BASE_URL"),
    ("live over plain http", {"TRADING_MODE": "live", **LIVE_KEYS, "ALPACA_BASE_URL": "http://api.alpaca.markets"}, (),
     "ALPACA_BASE_URL"),
    ("paper pointing at the live host", {**PAPER_KEYS, "ALPACA_BASE_URL": LIVE_HOST}, (), "ALPACA_BASE_URL"),
    ("paper with live keys at the paper host", {**LIVE_KEYS, "ALPACA_BASE_URL": PAPER_HOST}, (), "ALPACA_API_KEY"),
    ("base URL ending in /v2", {**PAPER_KEYS, "ALPACA_BASE_URL": f"{PAPER_HOST}/v2"}, (), "ALPACA_BASE_URL"),
    ("data URL ending in /v2", {**PAPER_KEYS, "ALPACA_DATA_URL": "https://data.alpaca.markets/v2"}, (),
     "ALPACA_DATA_URL"),
    ("base URL that is not a URL", {**PAPER_KEYS, "ALPACA_BASE_URL": "paper-api.alpaca.markets"}, (),
     "ALPACA_BASE_URL"),
    ("API key without the secret", {"ALPACA_API_KEY": FAKE_ALPACA_API_KEY}, (), "ALPACA_SECRET_KEY"),
    ("secret without the API key", {"ALPACA_SECRET_KEY": FAKE_ALPACA_SECRET_KEY}, (), "ALPACA_API_KEY"),
    ("the Alpaca broker without keys", {"BROKER": "alpaca"}, (), "BROKER"),
    ("an unknown trading mode", {"TRADING_MODE": "real"}, (), "TRADING_MODE"),
    ("an unknown broker", {"BROKER": "ibkr"}, (), "BROKER"),
    # The Django secret key
    ("non-debug without a secret key", {}, ("DJANGO_SECRET_KEY",), "DJANGO_SECRET_KEY"),
    ("a short secret key", {"DJANGO_SECRET_KEY": "short-but-sweet"}, (), "DJANGO_SECRET_KEY"),
    ("Django's placeholder key", {"DJANGO_SECRET_KEY": "django-insecure-" + "x" * 50}, (), "DJANGO_SECRET_KEY"),
    # Booleans
    ("DJANGO_DEBUG is not a boolean", {"DJANGO_DEBUG": "maybe"}, (), "DJANGO_DEBUG"),
    ("KILL_SWITCH_FLATTEN is not a boolean", {"KILL_SWITCH_FLATTEN": "perhaps"}, (), "KILL_SWITCH_FLATTEN"),
    ("HALT_ON_RECONCILIATION_BREAK is not a boolean", {"HALT_ON_RECONCILIATION_BREAK": "2"}, (),
     "HALT_ON_RECONCILIATION_BREAK"),
    ("DJANGO_SECURE_SSL_REDIRECT is not a boolean", {"DJANGO_SECURE_SSL_REDIRECT": "nope"}, (),
     "DJANGO_SECURE_SSL_REDIRECT"),
    # Numbers
    ("ALPACA_TIMEOUT_S is a word", {"ALPACA_TIMEOUT_S": "ten"}, (), "ALPACA_TIMEOUT_S"),
    ("ALPACA_TIMEOUT_S is zero", {"ALPACA_TIMEOUT_S": "0"}, (), "ALPACA_TIMEOUT_S"),
    ("ALPACA_TIMEOUT_S is infinite", {"ALPACA_TIMEOUT_S": "Infinity"}, (), "ALPACA_TIMEOUT_S"),
    ("MAX_PRICE_AGE_S is negative", {"MAX_PRICE_AGE_S": "-5"}, (), "MAX_PRICE_AGE_S"),
    ("UNKNOWN_ORDER_GRACE_S is a fraction", {"UNKNOWN_ORDER_GRACE_S": "1.5"}, (), "UNKNOWN_ORDER_GRACE_S"),
    ("UNKNOWN_ORDER_HORIZON_S is a word", {"UNKNOWN_ORDER_HORIZON_S": "long"}, (), "UNKNOWN_ORDER_HORIZON_S"),
    ("UNKNOWN_ORDER_HORIZON_S shorter than the grace period",
     {"UNKNOWN_ORDER_GRACE_S": "60", "UNKNOWN_ORDER_HORIZON_S": "45"}, (), "UNKNOWN_ORDER_HORIZON_S"),
    ("UNKNOWN_ORDER_HORIZON_S within 3 broker timeouts", {"ALPACA_TIMEOUT_S": "30", "UNKNOWN_ORDER_HORIZON_S": "60"},
     (), "UNKNOWN_ORDER_HORIZON_S"),
    ("ORDER_SYNC_INTERVAL_S is a word", {"ORDER_SYNC_INTERVAL_S": "often"}, (), "ORDER_SYNC_INTERVAL_S"),
    ("KILL_SWITCH_RESET_APPROVALS is 3", {"KILL_SWITCH_RESET_APPROVALS": "3"}, (), "KILL_SWITCH_RESET_APPROVALS"),
    ("ASSUMED_STOP_DISTANCE is NaN", {"ASSUMED_STOP_DISTANCE": "NaN"}, (), "ASSUMED_STOP_DISTANCE"),
    ("DJANGO_HSTS_SECONDS is a word", {"DJANGO_HSTS_SECONDS": "a year"}, (), "DJANGO_HSTS_SECONDS"),
    ("EMAIL_PORT is a word", {"EMAIL_PORT": "smtp"}, (), "EMAIL_PORT"),
    ("API_CLIENT_RATE_PER_SECOND is zero", {"API_CLIENT_RATE_PER_SECOND": "0"}, (), "API_CLIENT_RATE_PER_SECOND"),
    ("API_CLIENT_RATE_PER_MINUTE is a word", {"API_CLIENT_RATE_PER_MINUTE": "lots"}, (), "API_CLIENT_RATE_PER_MINUTE"),
    ("API_CLIENT_ASSET_LOOKUPS_PER_MINUTE is negative", {"API_CLIENT_ASSET_LOOKUPS_PER_MINUTE": "-1"}, (),
     "API_CLIENT_ASSET_LOOKUPS_PER_MINUTE"),
    ("ADMIN_LOGIN_FAILURE_LIMIT is zero", {"ADMIN_LOGIN_FAILURE_LIMIT": "0"}, (), "ADMIN_LOGIN_FAILURE_LIMIT"),
    ("ADMIN_LOCKOUT_MINUTES is a fraction", {"ADMIN_LOCKOUT_MINUTES": "0.5"}, (), "ADMIN_LOCKOUT_MINUTES"),
    # Other values
    ("LOG_LEVEL is not a level", {"LOG_LEVEL": "loud"}, (), "LOG_LEVEL"),
    ("DATABASE_URL of an unsupported engine", {"DATABASE_URL": "mysql://backoffice@db/backoffice"}, (), "DATABASE_URL"),
    ("CELERY_BROKER_URL of an unsupported transport", {"CELERY_BROKER_URL": "kafka://broker:9092"}, (),
     "CELERY_BROKER_URL"),
    ("DJANGO_ADMINS without an address", {"DJANGO_ADMINS": "ops"}, (), "DJANGO_ADMINS"),
    ("ALERT_WEBHOOK_URL that is not http", {"ALERT_WEBHOOK_URL": "ftp://hooks.example.com/x"}, (), "ALERT_WEBHOOK_URL"),
    ("ALERT_URLS with a URL Apprise cannot send to", {"ALERT_URLS": "slack://T1/B2/C3 nosuchservice://tok3nS3cr3t42"},
     (), "ALERT_URLS"),
]


@pytest.mark.parametrize(("extra", "removed", "variable"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_a_bad_configuration_refuses_to_start_with_one_line_naming_the_variable(
    extra: dict[str, str], removed: tuple[str, ...], variable: str
) -> None:
    env = {key: value for key, value in {**BASE, **extra}.items() if key not in removed}

    result = manage("check", env=env)

    lines = result.stderr.splitlines()
    assert result.returncode == 2, f"exit {result.returncode}; stderr: {result.stderr[-600:]}"
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, lines
    assert lines[0].startswith("configuration error:"), lines[0]
    assert variable in lines[0], lines[0]
    assert leaked_secrets(result.stdout + result.stderr) == []
