"""Bulk set-up of a book that is already working at the simulated broker."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from django.utils import timezone

from brokers.models import SimOrder
from orders.models import Order
from risk.models import Strategy


def working_book(strategy: Strategy, count: int, *, symbol: str = "AAPL", limit_price: str = "50") -> list[Order]:
    """``count`` limit buys far below the market: submitted locally and working at the broker."""
    now = timezone.now() - dt.timedelta(minutes=5)
    sim_orders, orders = [], []
    for index in range(count):
        client_order_id = f"book-{index}-{uuid.uuid4().hex[:8]}"
        at = now + dt.timedelta(microseconds=index)
        sim = SimOrder(
            client_order_id=client_order_id, symbol=symbol, side="buy", qty=Decimal("1"), type="limit",
            time_in_force="gtc", limit_price=Decimal(limit_price), status="new", submitted_at=at, updated_at=at,
        )
        sim_orders.append(sim)
        orders.append(
            Order(
                client_order_id=client_order_id, strategy=strategy, symbol=symbol, side="buy", qty=Decimal("1"),
                type="limit", limit_price=Decimal(limit_price), time_in_force="gtc", fingerprint="bulk",
                status="submitted", broker_order_id=str(sim.broker_order_id), created_at=at, sent_at=at,
            )
        )
    SimOrder.objects.bulk_create(sim_orders, batch_size=1000)
    Order.objects.bulk_create(orders, batch_size=1000)
    return orders
