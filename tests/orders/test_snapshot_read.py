"""Order entry reads its pre-trade snapshot in one statement on PostgreSQL: it must read what the ORM reads."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from orders import selectors
from orders.models import Fill, Order, Position
from risk import checks
from risk.models import KillSwitch, RestrictedSymbol, RiskState

pytestmark = pytest.mark.django_db


def _order(strategy, client_order_id: str, **fields) -> Order:
    defaults = {"symbol": "AAPL", "side": "buy", "qty": Decimal("10"), "type": "market", "status": "submitted",
                "fingerprint": "x"}
    return Order.objects.create(client_order_id=client_order_id, strategy=strategy, **{**defaults, **fields})


def test_the_one_statement_snapshot_reads_what_the_portable_read_reads(alpha, beta, on_postgres):
    now = timezone.now()
    RiskState.objects.update_or_create(pk=1, defaults={"equity": Decimal("100000"), "equity_at": now - dt.timedelta(
        seconds=30), "day_start_equity": Decimal("99000")})
    KillSwitch.objects.update_or_create(strategy=None, defaults={"active": False})
    KillSwitch.objects.update_or_create(strategy=alpha, defaults={"active": True})
    RestrictedSymbol.objects.create(symbol="AAPL", reason="under review")
    Position.objects.create(strategy=alpha, symbol="AAPL", qty=Decimal("5"), avg_price=Decimal("99.5"),
                            day_start_on=now.date(), day_start_unrealized_pnl=Decimal("-3.25"))
    Position.objects.create(strategy=beta, symbol="MSFT", qty=Decimal("-2"), avg_price=Decimal("400"))
    Position.objects.create(strategy=beta, symbol="SPY", qty=Decimal("0"), avg_price=Decimal("0"))
    _order(alpha, "w-1", created_at=now - dt.timedelta(minutes=5))  # sent before the equity reading
    _order(alpha, "w-2", type="limit", limit_price=Decimal("101.25"), filled_qty=Decimal("4"),
           status="partially_filled", created_at=now - dt.timedelta(milliseconds=500))
    _order(beta, "w-3", symbol="MSFT", side="sell", created_at=now - dt.timedelta(seconds=10))
    _order(beta, "w-4", symbol="MSFT", type="stop", stop_price=Decimal("410"), created_at=now - dt.timedelta(
        seconds=20))
    _order(alpha, "d-1", status="denied", created_at=now - dt.timedelta(milliseconds=200))
    _order(alpha, "i-1", created_at=now - dt.timedelta(milliseconds=100))  # identical to the intent
    filled = _order(alpha, "f-1", status="filled", created_at=now - dt.timedelta(hours=1))
    Fill.objects.create(order=filled, strategy=alpha, symbol="AAPL", side="sell", qty=Decimal("1"),
                        price=Decimal("100"), cumulative_qty=Decimal("1"), realized_pnl=Decimal("12.34"), at=now)
    intent = checks.OrderIntent(strategy="alpha", symbol="AAPL", side="buy", qty=Decimal("10"), type="market")

    one = selectors._snapshot_rows_sql(strategy_id=alpha.pk, intent=intent, now=now)
    portable = selectors._snapshot_rows_orm(strategy_id=alpha.pk, intent=intent, now=now)

    def key(row: dict) -> tuple:
        return tuple(sorted((k, str(v)) for k, v in row.items()))

    assert sorted(map(key, one.positions)) == sorted(map(key, portable.positions))
    assert sorted(map(key, one.working)) == sorted(map(key, portable.working))
    assert one.switches == portable.switches == {None: False, alpha.pk: True}
    assert one.restriction == portable.restriction == "under review"
    assert one.realised_today == portable.realised_today == Decimal("12.34")
    assert (one.orders_last_second, one.orders_last_minute, one.identical_recent) == (
        portable.orders_last_second, portable.orders_last_minute, portable.identical_recent) == (3, 3, 1)
    for field in RiskState._meta.concrete_fields:
        assert getattr(one.state, field.attname) == getattr(portable.state, field.attname), field.name
    for model_field in ("paused", "max_allocation_pct", "max_orders_per_second", "mode", "slug"):
        assert getattr(one.strategy, model_field) == getattr(portable.strategy, model_field)
    assert one.limits.duplicate_order_window_s == portable.limits.duplicate_order_window_s
    assert one.limits.max_notional == portable.limits.max_notional
    assert isinstance(one.positions[0]["qty"], Decimal) and isinstance(one.working[0]["remaining"], Decimal)
