"""What several benchmarks set up: an officer, fast strategies, equity, fresh prices, an empty book."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone
from rest_framework.authtoken.models import Token

from brokers import simulated
from brokers.models import OPEN_STATUSES, SimOrder
from brokers.simulated import SimulatedBroker
from orders.models import Order
from orders.states import WORKING, OrderStatus
from risk import services as risk_services
from risk.models import RiskState, Strategy

OFFICER = "bench-officer"
# High enough that no benchmark is throttled: the throttle check itself still runs.
FAST_THROTTLE = {"max_orders_per_second": 1_000_000, "max_orders_per_minute": 10_000_000}


def officer() -> Any:
    """A superuser: the acting user of limit and strategy changes, and of the admin page."""
    User = get_user_model()
    user = User.objects.filter(username=OFFICER).first()
    if user is None:
        user = User.objects.create_superuser(username=OFFICER, email="bench@example.invalid", password=None)
    return user


def fast_strategy(slug: str, *, client: Any | None = None) -> Strategy:
    """A strategy whose throttles (and the duplicate-order limit) are raised through the services (audited)."""
    strategy, _ = Strategy.objects.get_or_create(slug=slug, defaults={"name": slug})
    if client is not None:
        strategy.clients.add(client)
    # The benchmarks send the same small order again and again on purpose: the duplicate-order
    # check (5 identical within 1 s) would deny most of them and the figures would time denials.
    risk_services.limit_update(
        acting_user=officer(), changes={"duplicate_order_max": 1_000_000}, reason="benchmark: identical orders"
    )
    return risk_services.strategy_update(
        acting_user=officer(), strategy=strategy, changes=dict(FAST_THROTTLE), reason="benchmark: raise throttles"
    )


def api_client(username: str) -> tuple[Any, str]:
    """A user in the "API clients" group with a DRF token; returns (user, token key)."""
    User = get_user_model()
    user, created = User.objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
        user.save()
        group = Group.objects.filter(name="API clients").first()
        if group is not None:
            user.groups.add(group)
    token, _ = Token.objects.get_or_create(user=user)
    return user, token.key


def ensure_equity() -> Decimal:
    """Equity from the simulated account ($100,000 at start), recorded as the risk job would."""
    account = SimulatedBroker().get_account()
    state = risk_services.equity_record(
        equity=account.equity, day_start_equity=account.last_equity, job="bench", account=account
    )
    assert isinstance(state, RiskState)
    return account.equity


def fresh_prices(prices: dict[str, str]) -> None:
    """Stamp last trades now (the pre-trade check denies prices older than MAX_PRICE_AGE_S)."""
    for symbol, price in prices.items():
        simulated.set_price(symbol, Decimal(price))


def clear_book() -> int:
    """Bench housekeeping between measurements: every working order becomes terminal, here and at the simulated venue.

    A direct UPDATE (no transition rows, no broker call): it only keeps one
    measurement's working orders out of the next one. At the venue they are
    closed two days in the past, so that they are not "recently closed"
    orders for the next status sync's closed listing either.
    """
    now = timezone.now()
    changed = Order.objects.filter(status__in=WORKING).update(status=OrderStatus.CANCELLED, updated_at=now)
    long_ago = now - dt.timedelta(days=2)
    SimOrder.objects.filter(status__in=list(OPEN_STATUSES)).update(
        status="canceled", updated_at=long_ago, canceled_at=long_ago
    )
    return changed
