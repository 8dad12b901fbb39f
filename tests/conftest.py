"""Shared fixtures and the rule for tests that need real services.

A test marked ``postgres`` or ``redis`` runs against the real service. When the
service is absent it skips with a visible reason on a developer's machine, and
fails in CI (``CI=true``), where both must be there.
"""

from __future__ import annotations

import functools
import os

import pytest
from django.db import connection

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (required in CI)", pytrace=False)
    pytest.skip(reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") and not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        _missing("needs PostgreSQL: set DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test")
    if item.get_closest_marker("redis") and not (os.environ.get("REDIS_URL") or "").startswith("redis"):
        _missing("needs Redis: set REDIS_URL=redis://127.0.0.1:6379/0")


@pytest.fixture
def on_postgres() -> None:
    # Like the `postgres` marker: skips on the embedded SQLite default, fails in CI.
    if connection.vendor != "postgresql":
        _missing("needs PostgreSQL: set DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test")


# --- Personas -----------------------------------------------------------------
# Named once, so a permission test reads like a sentence: "alice (client of
# alpha) cannot see bob's order".

import datetime as _dt  # noqa: E402
from decimal import Decimal  # noqa: E402

from rest_framework.authtoken.models import Token  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from tests.factories import StrategyFactory, UserFactory, in_group  # noqa: E402


def token_client(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def alpha(db):
    return StrategyFactory(slug="alpha")


@pytest.fixture
def beta(db):
    return StrategyFactory(slug="beta")


@pytest.fixture
def alice(alpha):
    """API client of strategy alpha."""
    user = in_group(UserFactory(username="alice"), "API clients")
    alpha.clients.add(user)
    return user


@pytest.fixture
def bob(beta):
    """API client of strategy beta."""
    user = in_group(UserFactory(username="bob"), "API clients")
    beta.clients.add(user)
    return user


@pytest.fixture
def officer(db):
    return in_group(UserFactory(username="olivia", is_staff=True), "Risk officers")


@pytest.fixture
def second_officer(db):
    return in_group(UserFactory(username="oscar", is_staff=True), "Risk officers")


@pytest.fixture
def auditor(db):
    return in_group(UserFactory(username="audrey", is_staff=True), "Auditors")


@pytest.fixture
def alice_api(alice) -> APIClient:
    return token_client(alice)


@pytest.fixture
def bob_api(bob) -> APIClient:
    return token_client(bob)


@pytest.fixture
def market(db):
    """The simulated market with fresh prices for the symbols the tests trade."""
    from brokers import simulated

    prices = {"AAPL": "100.00", "MSFT": "400.00", "SPY": "500.00", "NVDA": "120.00", "SIRI": "3.10"}
    for symbol, price in prices.items():
        simulated.set_price(symbol, Decimal(price))
    return simulated


@pytest.fixture(autouse=True)
def _fresh_broker_clients():
    """Each test gets new broker clients (their call counters start at zero) and an empty asset cache."""
    from django.core.cache import cache

    from brokers import registry

    registry.reset()
    cache.clear()
    yield
    registry.reset()


def set_throttle_rates(settings, **rates: str) -> None:
    """Override some per-client ceilings (``client_burst="3/s"``), keeping the others as configured."""
    configured = settings.REST_FRAMEWORK
    settings.REST_FRAMEWORK = {
        **configured,
        "DEFAULT_THROTTLE_RATES": {**configured["DEFAULT_THROTTLE_RATES"], **rates},
    }


NO_CEILING = {"client_burst": "1000000/s", "client_sustained": "1000000/min"}


def order_body(**overrides) -> dict:
    body = {"strategy": "alpha", "symbol": "AAPL", "side": "buy", "qty": "10", "type": "market"}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


@pytest.fixture
def seeded(transactional_db):
    """For transactional tests: the rows the data migrations create, which a flush removes.

    (serialized_rollback would restore them, but collides with content types
    re-created by the flush.) The migration functions are idempotent, so they
    are simply run again: against the live app registry, or, for the roles,
    against the models as they were at that migration (JobRun was risk's then).
    """
    import importlib

    from django.apps import apps

    for module, function, at in [
        ("risk.migrations.0002_policy_defaults", "create_defaults", None),
        ("backoffice.migrations.0001_roles", "create_roles", ("backoffice", "0001_roles")),
        ("backoffice.migrations.0002_jobrun_in_core", "grant_core_jobrun", ("backoffice", "0002_jobrun_in_core")),
        ("backoffice.migrations.0003_lockout_permissions", "grant", ("backoffice", "0003_lockout_permissions")),
        ("risk.migrations.0006_alert_roles", "grant", None),
        ("orders.migrations.0008_ledger_adjustment_roles", "grant", None),
        ("backoffice.migrations.0004_end_of_day_report", "grant_view", None),
        ("brokers.migrations.0002_seed_simulated_market", "seed_market", None),
        (
            "risk.migrations.0009_restricted_symbol_roles",
            "grant_restricted_symbol_permissions",
            ("risk", "0009_restricted_symbol_roles"),
        ),
    ]:
        getattr(importlib.import_module(module), function)(_apps_at(at) if at else apps, None)


@functools.cache
def _apps_at(migration: tuple[str, str]):
    """The historical app registry right after ``migration`` (what its RunPython was given)."""
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    return MigrationLoader(connection, ignore_no_migrations=True).project_state(migration, at_end=True).apps


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every transactional test gets the seeded rows, before its other fixtures."""
    for item in items:
        marker = item.get_closest_marker("django_db")
        if marker is not None and marker.kwargs.get("transaction"):
            item.fixturenames.insert(0, "seeded")
