"""Status polling: broker calls grow with pages, orders converge, ambiguous sends resolve."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from brokers.models import SimOrder
from brokers.registry import get_broker
from orders import services
from orders.models import Fill, Order
from tests.jobs.helpers import working_book

pytestmark = pytest.mark.django_db


def test_with_2000_open_orders_a_sync_cycle_makes_at_most_6_broker_calls(alpha, market):
    working_book(alpha, 2000)
    # A handful fill at the broker meanwhile.
    for sim in SimOrder.objects.order_by("submitted_at")[:5]:
        sim.status, sim.filled_qty, sim.filled_avg_price = "filled", Decimal("1"), Decimal("49.5")
        sim.save()

    result = services.orders_sync()

    assert result.checked == 2000
    assert result.broker_calls <= 6, get_broker().counter.by_operation
    assert Order.objects.filter(status="filled").count() == 5
    assert Fill.objects.count() == 5


def test_the_same_broker_update_seen_twice_becomes_one_fill(alpha, market):
    (order,) = working_book(alpha, 1)
    sim = SimOrder.objects.get(client_order_id=order.client_order_id)
    sim.status, sim.filled_qty, sim.filled_avg_price = "partially_filled", Decimal("0.4"), Decimal("49")
    sim.save()

    services.orders_sync()
    services.orders_sync()
    broker_order = get_broker().get_order(str(sim.broker_order_id))
    services.order_apply_broker_update(broker_order=broker_order, label="test:replay")

    order.refresh_from_db()
    assert order.status == "partially_filled"
    assert list(Fill.objects.filter(order=order).values_list("qty", "price")) == [(Decimal("0.4"), Decimal("49"))]


def test_fill_prices_are_derived_from_the_cumulative_averages(alpha, market):
    (order,) = working_book(alpha, 1)
    Order.objects.filter(pk=order.pk).update(qty=Decimal("10"))
    SimOrder.objects.filter(client_order_id=order.client_order_id).update(qty=Decimal("10"))
    sim = SimOrder.objects.get(client_order_id=order.client_order_id)
    for cumulative, average in [("4", "50"), ("10", "50.6")]:
        sim.status, sim.filled_qty, sim.filled_avg_price = "partially_filled", Decimal(cumulative), Decimal(average)
        sim.save()
        services.orders_sync()

    fills = list(Fill.objects.filter(order=order).values_list("qty", "price"))
    assert fills == [(Decimal("4"), Decimal("50")), (Decimal("6"), Decimal("51"))]


def test_a_fill_after_a_cancel_request_wins(alice, alpha, market):
    (order,) = working_book(alpha, 1)
    SimOrder.objects.filter(client_order_id=order.client_order_id).update(
        status="filled", filled_qty=Decimal("1"), filled_avg_price=Decimal("50")
    )

    cancelled = services.order_cancel(acting_user=alice, order=order)

    assert cancelled.status == "filled"
    statuses = list(cancelled.transitions.values_list("from_status", "to_status"))
    assert statuses[-2:] == [("submitted", "pending_cancel"), ("pending_cancel", "filled")]


def test_an_unknown_order_is_resolved_by_client_order_id_after_the_grace_period(alpha, market, settings):
    settings.UNKNOWN_ORDER_GRACE_S = 30
    settings.UNKNOWN_ORDER_HORIZON_S = 90  # "lost" was sent two minutes ago: past the horizon, closed
    (found,) = working_book(alpha, 1)
    Order.objects.filter(pk=found.pk).update(status="unknown", broker_order_id=None)
    lost = Order.objects.create(
        client_order_id="never-arrived", strategy=alpha, symbol="AAPL", side="buy", qty=1, type="market",
        fingerprint="x", status="unknown", created_at=timezone.now() - dt.timedelta(minutes=2),
    )
    young = Order.objects.create(
        client_order_id="too-young", strategy=alpha, symbol="AAPL", side="buy", qty=1, type="market",
        fingerprint="x", status="unknown",
    )

    services.orders_sync()

    assert Order.objects.get(pk=found.pk).status == "submitted"
    assert Order.objects.get(pk=found.pk).broker_order_id
    assert Order.objects.get(pk=lost.pk).status == "rejected"
    assert Order.objects.get(pk=young.pk).status == "unknown"
    assert SimOrder.objects.filter(client_order_id="never-arrived").count() == 0  # never resent


def test_cancel_of_a_terminal_order_is_409(alice_api, alpha, market):
    (order,) = working_book(alpha, 1)
    SimOrder.objects.filter(client_order_id=order.client_order_id).update(
        status="filled", filled_qty=Decimal("1"), filled_avg_price=Decimal("50")
    )
    services.orders_sync()

    response = alice_api.delete(f"/v1/orders/{order.pk}")

    assert response.status_code == 409


def test_delete_answers_202_and_the_order_ends_cancelled(alice_api, market):
    created = alice_api.post(
        "/v1/orders", {"strategy": "alpha", "symbol": "AAPL", "side": "buy", "qty": "1", "type": "limit",
                       "limit_price": "99"}, format="json",
    ).json()

    response = alice_api.delete(f"/v1/orders/{created['id']}")

    assert response.status_code == 202
    assert alice_api.get(f"/v1/orders/{created['id']}").json()["status"] == "cancelled"
    history = [(t["from"], t["to"]) for t in alice_api.get(f"/v1/orders/{created['id']}").json()["transitions"]]
    assert history == [(None, "pending"), ("pending", "submitted"), ("submitted", "pending_cancel"),
                       ("pending_cancel", "cancelled")]
