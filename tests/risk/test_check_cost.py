"""The cost of a pre-trade check does not grow with history: the same queries with 10 or 2,000 old orders."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders import services
from orders.models import Fill, Order

pytestmark = pytest.mark.django_db


def history(strategy, count: int) -> None:
    old = timezone.now() - dt.timedelta(days=3)
    orders = Order.objects.bulk_create(
        Order(client_order_id=f"old-{count}-{i}", strategy=strategy, symbol="AAPL", side="buy", qty=1, type="market",
              fingerprint="x", status="filled", filled_qty=1, filled_avg_price=100, created_at=old)
        for i in range(count)
    )
    Fill.objects.bulk_create(
        Fill(order=o, strategy=strategy, symbol="AAPL", side="buy", qty=1, price=100, cumulative_qty=1, at=old)
        for o in orders
    )


def submit_queries(alice, alpha, client_order_id: str) -> list[str]:
    request = services.OrderRequest(strategy=alpha, symbol="MSFT", side="buy", qty=Decimal("1"), type="market",
                                    client_order_id=client_order_id)
    with CaptureQueriesContext(connection) as queries:
        services.order_submit(acting_user=alice, request=request)
    return [q["sql"] for q in queries.captured_queries]


def test_the_checks_queries_are_the_same_with_10_and_with_2000_historical_orders(alice, alpha, market):
    history(alpha, 10)
    submit_queries(alice, alpha, "warm-up")  # equity, asset cache
    small = submit_queries(alice, alpha, "with-10")
    history(alpha, 1990)
    large = submit_queries(alice, alpha, "with-2000")

    assert len(small) == len(large)
    # No query reads the orders or fills tables without a bound that excludes history.
    for sql in large:
        if 'FROM "orders_fill"' in sql:
            assert '"orders_fill"."at" >=' in sql, sql
        if 'FROM "orders_order"' in sql and "COUNT" in sql.upper():
            assert '"orders_order"."created_at" >=' in sql or '"orders_order"."status" IN' in sql, sql
