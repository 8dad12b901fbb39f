"""Concurrency claims, proven with real threads against PostgreSQL."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.db import connection

from brokers.models import SimOrder
from orders import services
from orders.models import Order
from risk.models import Strategy
from tests.intent import alpaca  # noqa: F401  (fixture)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _run_concurrently(count: int, work) -> list:
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list = []

    def runner(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except Exception as exc:  # collected and re-raised in the test thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


def test_fifty_concurrent_identical_requests_create_one_order_and_one_broker_submission(alice, market, on_postgres):
    strategy = Strategy.objects.get(slug="alpha")
    Strategy.objects.filter(pk=strategy.pk).update(max_orders_per_second=1000, max_orders_per_minute=1000)
    strategy.refresh_from_db()
    request = services.OrderRequest(
        strategy=strategy, symbol="AAPL", side="buy", qty=Decimal("1"), type="market", client_order_id="dup-50"
    )

    outcomes = _run_concurrently(50, lambda i: services.order_submit(acting_user=alice, request=request))

    assert Order.objects.filter(client_order_id="dup-50").count() == 1
    assert SimOrder.objects.filter(client_order_id="dup-50").count() == 1
    assert sum(1 for o in outcomes if not o.replayed) == 1
    assert len({o.order.pk for o in outcomes}) == 1


def test_two_orders_that_each_fit_the_notional_room_but_not_together_only_one_passes(alice, market, on_postgres):
    from risk.services import limit_update
    from tests.factories import UserFactory

    admin = UserFactory(username="limits-admin", is_superuser=True, is_staff=True)
    # Equity $100,000; capital deployed limit 30% => $30,000 of room. Each order is $20,000.
    # (One symbol may take all of it: the concentration limit is not what this test races.)
    limit_update(
        acting_user=admin,
        changes={"max_capital_deployed_pct": "30", "max_symbol_concentration_pct": "100"},
        reason="concurrency test",
    )
    strategy = Strategy.objects.get(slug="alpha")

    def submit(index: int):
        request = services.OrderRequest(
            strategy=strategy, symbol="AAPL", side="buy", qty=Decimal("200"), type="limit",
            limit_price=Decimal("100"), client_order_id=f"room-{index}",
        )
        return services.order_submit(acting_user=alice, request=request).order.status

    statuses = _run_concurrently(2, submit)

    assert sorted(statuses) == ["denied", "submitted"]
    denied = Order.objects.get(status="denied")
    assert [v["code"] for v in denied.violations] == ["max_capital_deployed"]


def test_an_order_racing_the_kill_switch_is_denied_or_cancelled_never_sent_after(alice, officer, market, on_postgres):
    """Many orders race one activation: none reaches the broker after the activation commits."""
    from django.utils import timezone

    from risk.models import RiskEvent
    from risk.services import killswitch_activate

    strategy = Strategy.objects.get(slug="alpha")
    Strategy.objects.filter(pk=strategy.pk).update(max_orders_per_second=1000, max_orders_per_minute=1000)

    def work(index: int):
        if index == 0:
            killswitch_activate(acting_user=officer, reason="race test")
            return timezone.now()
        request = services.OrderRequest(
            strategy=strategy, symbol="AAPL", side="buy", qty=Decimal("1"), type="market",
            client_order_id=f"race-{index}",
        )
        return services.order_submit(acting_user=alice, request=request).order

    _run_concurrently(12, work)

    activated_at = RiskEvent.objects.get(kind="kill_switch_activated").at
    late = SimOrder.objects.filter(submitted_at__gt=activated_at)
    assert not late.exists(), list(late.values_list("client_order_id", "submitted_at"))
    for order in Order.objects.filter(client_order_id__startswith="race-"):
        assert order.status in {"denied", "cancelled", "pending_cancel"}, (order.client_order_id, order.status)


def test_four_concurrent_23k_market_buys_in_unheld_symbols_three_pass_and_one_is_denied_at_a_price(
    alice, market, on_postgres
):
    # Each order's prices are fetched before the account lock, so each misses the
    # symbols the others are working: inside the lock those are priced too, and
    # the loser is denied max_capital_deployed, never stale_price, never let through at $0.
    symbols = ["AAPL", "MSFT", "SPY", "NVDA"]
    for symbol in symbols:
        market.set_price(symbol, Decimal("100.00"))
    strategy = Strategy.objects.get(slug="alpha")

    def submit(index: int):
        request = services.OrderRequest(
            strategy=strategy, symbol=symbols[index], side="buy", qty=Decimal("230"), type="market",
            client_order_id=f"wide-{index}",
        )
        return services.order_submit(acting_user=alice, request=request).order

    orders = _run_concurrently(4, submit)

    assert sorted(o.status for o in orders) == ["denied", "submitted", "submitted", "submitted"]
    (denied,) = [o for o in orders if o.status == "denied"]
    denial_codes = {v["code"] for v in denied.violations}
    assert "max_capital_deployed" in denial_codes and "stale_price" not in denial_codes


def test_a_slow_broker_answer_holds_up_neither_the_next_order_of_its_strategy_nor_an_officer_editing_it(
    alpaca, alice, officer, on_postgres, settings  # noqa: F811  (the fixture imported above)
):
    """A send locks its order's row only: the strategy row stays free during the broker round trip.

    The fake holds the first order's POST for HOLD_S (then accepts it). Meanwhile a second order of the
    same strategy goes all the way to the broker, and an officer's limit change commits; neither waits
    for the first send's answer (a 50-order burst of one strategy used to queue behind each send).
    """
    from risk.services import strategy_update
    from tests.intent import requests_to

    hold_s = 3.0
    settings.ALPACA_TIMEOUT_S = hold_s + 5  # the held send is slow, not lost: it is answered within the timeout
    strategy = Strategy.objects.get(slug="alpha")
    alpaca.set_fault("slow_accept", method="POST", path="/v2/orders", seconds=hold_s)

    def submit(client_order_id: str):
        request = services.OrderRequest(strategy=strategy, symbol="AAPL", side="buy", qty=Decimal("1"),
                                        type="market", client_order_id=client_order_id)
        return services.order_submit(acting_user=alice, request=request).order

    first: dict = {}
    held = threading.Thread(target=lambda: (first.update(order=submit("held-1")), connection.close()))
    held.start()
    try:
        for _ in range(200):  # until the first POST is at the fake, held there
            if requests_to(alpaca, "POST", "/v2/orders") == 1:
                break
            time.sleep(0.02)
        assert requests_to(alpaca, "POST", "/v2/orders") == 1

        second = submit("next-2")
        strategy_update(acting_user=officer, strategy=strategy, changes={"max_orders_per_minute": 119},
                        reason="edited while a send waits on the broker")

        assert second.status == "submitted"
        assert alpaca.order(client_order_id="next-2") is not None
        assert alpaca.order(client_order_id="held-1") is None, "the held send was answered first: it held the others"
        assert held.is_alive()
    finally:
        held.join(timeout=30)
    assert first["order"].status == "submitted"
    assert Strategy.objects.get(pk=strategy.pk).max_orders_per_minute == 119
