"""Two status syncs that overlap (order_sync and reconciliation's own), with real threads on PostgreSQL.

The chaos scenario found it: the older cycle's "seen" stamp landed after the
newer cycle's, moved it back, and the newer cycle then fetched every one of
those orders by id, one broker call per order.
"""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from brokers import registry
from orders import services
from orders.models import Order
from risk.models import Strategy

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WAIT_S = 30


def _working_orders(alice, count: int) -> None:
    strategy = Strategy.objects.get(slug="alpha")
    Strategy.objects.filter(pk=strategy.pk).update(max_orders_per_second=100)
    strategy.refresh_from_db()
    for index in range(count):
        request = services.OrderRequest(
            strategy=strategy, symbol="AAPL", side="buy", qty=Decimal("1"), type="limit",
            limit_price=Decimal("99.00"), client_order_id=f"overlap-{index}",
        )
        order = services.order_submit(acting_user=alice, request=request).order
        assert order.status == "submitted", order.violations
    Order.objects.update(sent_at=timezone.now() - dt.timedelta(minutes=1))  # long settled at the broker


def test_an_older_sync_finishing_last_does_not_make_the_newer_one_fetch_orders_by_id(alice, market, on_postgres):
    _working_orders(alice, 5)
    registry.reset()  # a fresh client: its call counter starts at zero
    broker = registry.get_broker()
    real_iter_orders = broker.iter_orders
    older_listed, newer_stamped, older_stamped = threading.Event(), threading.Event(), threading.Event()

    def iter_orders(*, status: str, **kwargs):
        me = threading.current_thread().name
        if me == "older" and status == "open":
            page = list(real_iter_orders(status=status, **kwargs))  # listed now, applied late
            older_listed.set()
            assert newer_stamped.wait(WAIT_S)
            return iter(page)
        if me == "older" and status == "closed":
            older_stamped.set()  # its open page (and its older stamp) has been applied
        if me == "newer" and status == "closed":
            newer_stamped.set()  # its open page has been applied and stamped
            assert older_stamped.wait(WAIT_S)
        return real_iter_orders(status=status, **kwargs)

    broker.iter_orders = iter_orders
    results, errors = {}, []

    def sync(name: str) -> None:
        try:
            results[name] = services.orders_sync(label=f"test:{name}")
        except Exception as exc:  # re-raised in the test thread
            errors.append(exc)
            older_listed.set(), newer_stamped.set(), older_stamped.set()
        finally:
            connection.close()

    older = threading.Thread(target=sync, args=("older",), name="older")
    older.start()
    assert older_listed.wait(WAIT_S)
    newer = threading.Thread(target=sync, args=("newer",), name="newer")
    newer.start()
    older.join(WAIT_S), newer.join(WAIT_S)

    assert not errors, errors
    # Each sync listed open and closed orders once; neither fetched an order by id.
    assert broker.counter.by_operation == {"list_orders": 4}, broker.counter.by_operation
    assert Order.objects.filter(status="submitted").count() == 5
    assert Order.objects.filter(last_seen_at__lt=Order.objects.latest("last_seen_at").last_seen_at).count() == 0
