"""Bad input gets a clear 4xx problem+json; nothing is stored and nothing reaches the broker."""

from __future__ import annotations

import pytest

from brokers.models import SimOrder
from orders.models import Order
from tests.conftest import order_body

pytestmark = pytest.mark.django_db

BAD_BODIES = [
    ("negative qty", order_body(qty="-1")),
    ("zero qty", order_body(qty="0")),
    ("NaN qty", order_body(qty="NaN")),
    ("infinite qty", order_body(qty="Infinity")),
    ("absurd qty", order_body(qty="1e15")),
    ("qty as a word", order_body(qty="ten")),
    ("qty as a boolean", order_body(qty=True)),
    ("negative limit price", order_body(type="limit", limit_price="-5")),
    ("absurd limit price", order_body(type="limit", limit_price="99999999999")),
    ("limit order without a price", order_body(type="limit")),
    ("market order with a price", order_body(limit_price="100")),
    ("unknown side", order_body(side="short")),
    ("unknown type", order_body(type="trailing_stop")),
    ("unknown time in force", order_body(time_in_force="forever")),
    ("unknown field", order_body(limit_prce="100")),
    ("lowercase nonsense symbol", order_body(symbol="not a symbol")),
    ("client order id too long", order_body(client_order_id="x" * 129)),
    ("client order id with spaces", order_body(client_order_id="a b")),
    ("missing strategy", {k: v for k, v in order_body().items() if k != "strategy"}),
    ("negative stop loss", order_body(stop_loss="-1")),
    ("stop order without a stop price", order_body(type="stop")),
    ("stop order with a limit price", order_body(type="stop", stop_price="105", limit_price="106")),
    ("stop limit without a limit price", order_body(type="stop_limit", stop_price="105")),
    ("stop limit without a stop price", order_body(type="stop_limit", limit_price="106")),
    ("limit order with a stop price", order_body(type="limit", limit_price="99", stop_price="95")),
    ("market order with a stop price", order_body(stop_price="105")),
    ("negative stop price", order_body(type="stop", stop_price="-105")),
    ("stop price as a word", order_body(type="stop", stop_price="soon")),
]


@pytest.mark.parametrize(("case", "body"), BAD_BODIES, ids=[c for c, _ in BAD_BODIES])
def test_malformed_orders_are_400_problems_and_nothing_is_stored(alice_api, market, case, body):
    response = alice_api.post("/v1/orders", body, format="json")

    assert response.status_code == 400, (case, response.content)
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400 and problem["title"] and problem["detail"] and problem["errors"]
    assert Order.objects.count() == 0
    assert SimOrder.objects.count() == 0


@pytest.mark.parametrize(
    ("raw", "content_type", "expected"),
    [
        ("{not json", "application/json", 400),
        ('{"qty": NaN}', "application/json", 400),
        ("[1, 2, 3]", "application/json", 400),
        ("qty=1", "application/x-www-form-urlencoded", 415),
        ("x" * 70_000, "application/json", 413),
    ],
    ids=["broken json", "NaN literal", "not an object", "form body", "oversized body"],
)
def test_bodies_that_are_not_a_json_object_get_a_4xx_problem(alice_api, market, raw, content_type, expected):
    response = alice_api.generic("POST", "/v1/orders", raw, content_type=content_type)

    assert response.status_code == expected, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert Order.objects.count() == 0


def test_an_order_id_that_is_not_a_uuid_is_404(alice_api):
    response = alice_api.get("/v1/orders/12345")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_an_unknown_filter_value_is_400(alice_api):
    assert alice_api.get("/v1/orders?status=nonsense").status_code == 400
    assert alice_api.get("/v1/orders?created_after=yesterday").status_code == 400
    assert alice_api.get("/v1/orders?colour=red").status_code == 400


def test_an_unknown_strategy_is_404_and_anothers_strategy_is_403(alice_api, beta, market):
    assert alice_api.post("/v1/orders", order_body(strategy="nope"), format="json").status_code == 404
    assert alice_api.post("/v1/orders", order_body(strategy="beta"), format="json").status_code == 403
    assert Order.objects.count() == 0


def test_anonymous_callers_get_401(client, db):
    response = client.post("/v1/orders", order_body(), content_type="application/json")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
