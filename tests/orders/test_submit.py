"""Submitting orders through POST /v1/orders against the simulated broker."""

from __future__ import annotations

from decimal import Decimal

import pytest

from brokers.models import SimOrder
from orders import services
from orders.models import Fill, Order, OrderTransition, Position
from tests.conftest import order_body

pytestmark = pytest.mark.django_db


def test_it_submits_a_market_order_and_answers_201_submitted(alice_api, market):
    response = alice_api.post("/v1/orders", order_body(client_order_id="a-1"), format="json")

    assert response.status_code == 201, response.content
    assert response.json()["status"] == "submitted"
    assert response.json()["client_order_id"] == "a-1"
    assert SimOrder.objects.filter(client_order_id="a-1").count() == 1
    order = Order.objects.get(client_order_id="a-1")
    assert [(t.from_status, t.to_status) for t in order.transitions.all()] == [
        ("", "pending"),
        ("pending", "submitted"),
    ]


def test_it_makes_a_client_order_id_when_the_client_sends_none(alice_api, market):
    response = alice_api.post("/v1/orders", order_body(), format="json")

    assert response.status_code == 201
    assert len(response.json()["client_order_id"]) == 32


def test_a_submitted_market_order_fills_at_the_next_tick_and_moves_the_ledger(alice_api, market):
    alice_api.post("/v1/orders", order_body(client_order_id="a-2", qty="10"), format="json")
    market.tick()

    services.orders_sync()

    order = Order.objects.get(client_order_id="a-2")
    assert order.status == "filled"
    assert order.filled_qty == Decimal("10")
    position = Position.objects.get(strategy__slug="alpha", symbol="AAPL")
    assert position.qty == Decimal("10")
    assert position.avg_price == order.filled_avg_price
    assert Fill.objects.filter(order=order).count() == 1


def test_a_replay_with_the_same_payload_returns_the_stored_order_with_the_replay_header(alice_api, market):
    first = alice_api.post("/v1/orders", order_body(client_order_id="a-3"), format="json")
    again = alice_api.post("/v1/orders", order_body(client_order_id="a-3", qty="10.000"), format="json")

    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert SimOrder.objects.filter(client_order_id="a-3").count() == 1


def test_the_same_id_with_another_payload_is_409_and_nothing_new_is_sent(alice_api, market):
    alice_api.post("/v1/orders", order_body(client_order_id="a-4"), format="json")
    response = alice_api.post("/v1/orders", order_body(client_order_id="a-4", qty="11"), format="json")

    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 409
    assert Order.objects.filter(client_order_id="a-4").count() == 1
    assert SimOrder.objects.filter(client_order_id="a-4").count() == 1


def test_a_risk_denial_is_400_with_violations_and_the_stored_order_id(alice_api, market):
    response = alice_api.post("/v1/orders", order_body(qty="1000"), format="json")  # $100,000 notional

    assert response.status_code == 400
    body = response.json()
    codes = {v["code"] for v in body["violations"]}
    assert "max_notional" in codes
    order = Order.objects.get(pk=body["order_id"])
    assert order.status == "denied"
    assert SimOrder.objects.count() == 0
    assert OrderTransition.objects.get(order=order).to_status == "denied"


def test_an_untradable_symbol_is_400_and_nothing_is_stored(alice_api, market):
    response = alice_api.post("/v1/orders", order_body(symbol="ZZZZ"), format="json")

    assert response.status_code == 400
    assert response.json()["errors"]["symbol"]
    assert Order.objects.count() == 0


def test_a_symbol_without_a_fresh_price_is_denied_stale_price(alice_api, market):
    import datetime as dt

    from tests.conftest import utcnow

    market.set_price("MSFT", Decimal("400"), at=utcnow() - dt.timedelta(hours=1))
    response = alice_api.post("/v1/orders", order_body(symbol="MSFT", qty="1"), format="json")

    assert response.status_code == 400
    assert [v["code"] for v in response.json()["violations"]] == ["stale_price"]
    assert Order.objects.get().status == "denied"
