"""Personas and data for the admin tests.

The project's personas (tests/conftest.py) are olivia and oscar (risk
officers), audrey (auditor), alice and bob (API clients). Added here: stan,
a staff user in no group, who can log in to the admin and is allowed nothing,
the "forged POST" persona.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from orders.models import Order
from risk import services
from tests.admin.browser import chromium
from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def _private_cache(settings) -> None:
    """A cache of this process's own: the default file cache under var/ is shared with every
    other test run on the machine, whose clear() would drop the dashboard's cached hours mid-test."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "admin-tests"}
    }
    cache.clear()


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Debian's headless Chromium driven by Playwright (see tests/admin/browser.py)."""
    yield from chromium(monkeypatch)


@pytest.fixture
def stan(db):
    """Staff, in no group: may log in to the admin, holds no permission."""
    return UserFactory(username="stan", is_staff=True)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def officer_client(officer) -> Client:
    return logged_in(officer)


@pytest.fixture
def second_officer_client(second_officer) -> Client:
    return logged_in(second_officer)


@pytest.fixture
def auditor_client(auditor) -> Client:
    return logged_in(auditor)


@pytest.fixture
def stan_client(stan) -> Client:
    return logged_in(stan)


@pytest.fixture
def alice_client(alice) -> Client:
    """An API client with a session it could never get through the login page (see test_roles)."""
    return logged_in(alice)


@pytest.fixture
def forgers(stan_client, auditor_client, alice_client) -> dict[str, Client]:
    """Everyone who must be refused a control: staff without the permission, an auditor, an API client."""
    return {"stan (staff, no permission)": stan_client, "audrey (auditor)": auditor_client,
            "alice (API client)": alice_client}


@pytest.fixture
def equity(db):
    """An account with a history: $100,000 at the day's start, $98,800 now (1.2 % daily drawdown)."""
    now = timezone.now()
    services.equity_record(equity=Decimal("100500"), day_start_equity=Decimal("100000"), at=now - dt.timedelta(hours=2))
    services.equity_record(equity=Decimal("101000"), day_start_equity=Decimal("100000"), at=now - dt.timedelta(hours=1))
    return services.equity_record(equity=Decimal("98800"), day_start_equity=Decimal("100000"), at=now)


@pytest.fixture
def equity_history(db):
    """30 days of hourly snapshots and today's every 5 minutes: a seeded random walk that ends
    today 1.2 % below the day's start. Written in bulk (test set-up), then the last reading
    goes through equity_record like the risk_eval job's."""
    from orders.selectors import trading_day_start
    from risk.models import EquitySnapshot, RiskState

    rng = random.Random(6)
    now = timezone.now()
    today = trading_day_start(now)
    at, value, peak = now - dt.timedelta(days=30), Decimal("100000"), Decimal("100000")
    day, day_start = trading_day_start(at), value
    rows = []
    while at < today:
        if trading_day_start(at) != day:
            day, day_start = trading_day_start(at), value
        value += Decimal(rng.gauss(25, 260)).quantize(Decimal("0.01"))
        peak = max(peak, value)
        rows.append(EquitySnapshot(at=at, equity=value, day_start_equity=day_start, peak_equity=peak))
        at += dt.timedelta(hours=1)
    day_start, target = value, value * Decimal("0.988")
    steps = max(1, int((now - today).total_seconds() // 300))
    for i in range(steps):
        at = today + dt.timedelta(minutes=5 * i)
        trend = day_start + (target - day_start) * Decimal(i) / steps
        value = (trend + Decimal(rng.gauss(0, 90))).quantize(Decimal("0.01"))
        peak = max(peak, value)
        rows.append(EquitySnapshot(at=at, equity=value, day_start_equity=day_start, peak_equity=peak))
    EquitySnapshot.objects.bulk_create(rows, batch_size=1000)
    RiskState.objects.filter(pk=1).update(peak_equity=peak, peak_reset_at=now - dt.timedelta(days=30))
    return services.equity_record(equity=target.quantize(Decimal("0.01")), day_start_equity=day_start, at=now)


def make_orders(
    strategy, count: int, *, status: str = "filled", symbol: str = "AAPL", prefix: str = "o"
) -> list[Order]:
    now = timezone.now()
    orders = [
        Order(
            client_order_id=f"{prefix}-{i}", strategy=strategy, symbol=symbol, side="buy", qty=Decimal("1"),
            type="market", fingerprint="admin-test", status=status, broker_order_id=f"{prefix}-broker-{i}",
            created_at=now - dt.timedelta(seconds=i),
        )
        for i in range(count)
    ]
    return Order.objects.bulk_create(orders)


@pytest.fixture
def superuser_named_root(db):
    """Sees every admin page (users and tokens too), so one walk covers them all."""
    return UserFactory(username="root", is_staff=True, is_superuser=True)
