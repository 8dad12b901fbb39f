"""The process environment of a benchmark run, set before Django is imported.

The suite runs against its own PostgreSQL database, never a developer's or
CI's: ``--database-url`` (or ``BENCH_DATABASE_URL``) names it, and names that
belong to someone else (``test*``, ``lead``, ``ci``, the server's own) are
refused. Settings come from :mod:`tools.bench.settings` (the product's settings plus
a bench-only URLconf); the secret key is a fresh random value per run, passed
to gunicorn through the environment, never on a command line or in output.
"""

from __future__ import annotations

import os
import secrets
from urllib.parse import urlsplit, urlunsplit

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/bench_backoffice"
RESERVED_NAMES = {"lead", "ci", "postgres", "template0", "template1"}


class BenchSetupError(Exception):
    """Something the operator must fix before the suite can run (one line, no traceback)."""


def database_name(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "pgsql"}:
        raise BenchSetupError(f"the benchmark needs PostgreSQL: give a postgresql:// URL, not {parts.scheme}://")
    name = parts.path.lstrip("/")
    if not name:
        raise BenchSetupError("the benchmark database URL names no database: end it in /bench_backoffice")
    if name.lower().startswith("test") or name.lower() in RESERVED_NAMES:
        raise BenchSetupError(
            f"refusing to drop and recreate database {name!r}: it is not the benchmark's own. "
            "Use a name such as bench_backoffice"
        )
    app_url = os.environ.get("DATABASE_URL", "")
    if app_url and os.environ.get("DJANGO_SETTINGS_MODULE") != "tools.bench.settings":
        app_parts = urlsplit(app_url)
        if app_parts.path.lstrip("/") == name and app_parts.hostname == parts.hostname and app_parts.port == parts.port:
            raise BenchSetupError(
                f"refusing to drop database {name!r}: it is this environment's DATABASE_URL (the application's). "
                "Give the benchmark its own with --database-url or BENCH_DATABASE_URL"
            )
    return name


def default_url(environ: dict[str, str]) -> str:
    """BENCH_DATABASE_URL; else bench_backoffice on the server of a PostgreSQL DATABASE_URL; else loopback."""
    if environ.get("BENCH_DATABASE_URL"):
        return environ["BENCH_DATABASE_URL"]
    app = urlsplit(environ.get("DATABASE_URL", ""))
    if app.scheme in {"postgres", "postgresql", "pgsql"} and app.hostname:
        return urlunsplit((app.scheme, app.netloc, "/bench_backoffice", app.query, ""))
    return DEFAULT_DATABASE_URL


def libpq_url(url: str) -> str:
    """The URL as libpq (psycopg) spells it: dj-database-url's pgsql:// is postgresql:// there."""
    parts = urlsplit(url)
    scheme = "postgresql" if parts.scheme == "pgsql" else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


def maintenance_url(url: str) -> str:
    """The same server, database ``postgres``: where CREATE/DROP DATABASE run."""
    parts = urlsplit(libpq_url(url))
    return urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, parts.fragment))


def prepare(database_url: str) -> dict[str, str]:
    """Set this process's environment for Django (tools.bench.settings); returns it for child processes."""
    database_name(database_url)
    for name in ("ALPACA_API_KEY", "ALPACA_SECRET_KEY", "ALPACA_BASE_URL", "ALPACA_DATA_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "tools.bench.settings",
            "DATABASE_URL": database_url,
            # Production-shaped: DEBUG off (no query log growing in memory), but
            # plain HTTP on loopback, so no redirect to https.
            "DJANGO_DEBUG": "false",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
            "TRADING_MODE": "paper",
            "BROKER": "simulated",
            "CELERY_BROKER_URL": "memory://",
            "KILL_SWITCH_FLATTEN": "false",
            "KILL_SWITCH_RESET_APPROVALS": "1",
            "HALT_ON_RECONCILIATION_BREAK": "false",
            "ALLOWED_HOSTS": "localhost,127.0.0.1,testserver",
            # The per-client request ceiling (429 before anything is parsed) would cut the
            # measured endpoints short: the benchmarks measure the pipeline, not the ceiling.
            "API_CLIENT_RATE_PER_SECOND": "100000",
            "API_CLIENT_RATE_PER_MINUTE": "1000000",
        }
    )
    return dict(os.environ)
