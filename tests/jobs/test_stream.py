"""The push path applies trade updates through the polling service: repeats are harmless."""

from __future__ import annotations

import pytest

from orders.management.commands.stream_trade_updates import handle_trade_update
from orders.models import Fill, Order
from tests.jobs.helpers import working_book

pytestmark = pytest.mark.django_db


def alpaca_update(order: Order, *, event: str, status: str, filled_qty: str, avg: str | None) -> dict:
    return {
        "event": event,
        "order": {
            "id": order.broker_order_id, "client_order_id": order.client_order_id, "symbol": order.symbol,
            "side": order.side, "qty": str(order.qty), "type": order.type, "order_type": order.type,
            "time_in_force": order.time_in_force, "status": status, "filled_qty": filled_qty,
            "filled_avg_price": avg, "limit_price": str(order.limit_price), "created_at": "2026-11-20T15:00:00Z",
            "submitted_at": "2026-11-20T15:00:00Z", "updated_at": "2026-11-20T15:00:01Z", "filled_at": None,
        },
    }


def test_a_fill_update_seen_twice_is_one_fill_and_the_order_is_filled(alpha, market):
    (order,) = working_book(alpha, 1)
    update = alpaca_update(order, event="fill", status="filled", filled_qty="1", avg="49.9")

    handle_trade_update(update)
    handle_trade_update(update)

    order.refresh_from_db()
    assert order.status == "filled"
    assert Fill.objects.filter(order=order).count() == 1


def test_an_update_for_an_order_this_system_does_not_know_changes_nothing(alpha, market):
    (order,) = working_book(alpha, 1)
    stranger = alpaca_update(order, event="new", status="new", filled_qty="0", avg=None)
    stranger["order"]["client_order_id"] = "not-ours"

    handle_trade_update(stranger)

    assert Order.objects.count() == 1 and Fill.objects.count() == 0
