"""GET /v1/events: the caller's ordered feed of order events, followed with a stored cursor."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from orders import services
from orders.models import Fill, Order
from tests.conftest import order_body, token_client

pytestmark = pytest.mark.django_db


def _follow(api, cursor: str | None = None, **params: Any) -> tuple[list[dict], str]:
    """Read the feed until it says nothing more is ready; return the events and the cursor to store."""
    events: list[dict] = []
    while True:
        query = {**params, **({"after": cursor} if cursor else {})}
        response = api.get("/v1/events", query)
        assert response.status_code == 200, response.content
        body = response.json()
        events += body["results"]
        cursor = body["next"]
        if not body["has_more"]:
            return events, cursor


def test_a_client_sees_each_transition_of_its_order_in_order_with_the_fill_on_the_transition_it_caused(
    alice_api, market
):
    market.set_volatility(Decimal("0"))
    order_id = alice_api.post("/v1/orders", order_body(client_order_id="e-1", qty="3"), format="json").json()["id"]
    market.tick()
    services.orders_sync()

    events, _ = _follow(alice_api)

    assert [(e["kind"], e["transition"]["from"], e["transition"]["to"]) for e in events] == [
        ("transition", None, "pending"),
        ("transition", "pending", "submitted"),
        ("transition_with_fill", "submitted", "filled"),
    ]
    fill = Fill.objects.get(order_id=order_id)
    assert events[-1]["fill"] == {
        "id": fill.pk, "qty": "3.00000000", "price": f"{fill.price:.8f}", "cumulative_qty": "3.00000000",
        "at": events[-1]["fill"]["at"],
    }
    assert {(e["order_id"], e["client_order_id"], e["strategy"], e["symbol"], e["side"]) for e in events} == {
        (order_id, "e-1", "alpha", "AAPL", "buy")
    }


def test_a_fill_that_changes_no_state_is_still_an_event(alice_api, market):
    market.set_volatility(Decimal("0"))
    market.set_max_fill_qty_per_tick(Decimal("4"))
    alice_api.post("/v1/orders", order_body(client_order_id="e-part", qty="10"), format="json")
    for _ in range(3):
        market.tick()
        services.orders_sync()

    events, _ = _follow(alice_api)

    assert [(e["kind"], e["fill"] and e["fill"]["cumulative_qty"]) for e in events] == [
        ("transition", None),
        ("transition", None),
        ("transition_with_fill", "4.00000000"),  # submitted -> partially_filled
        ("fill", "8.00000000"),  # partially_filled, still
        ("transition_with_fill", "10.00000000"),  # -> filled
    ]


def test_a_stored_cursor_gives_only_what_happened_since_and_the_same_cursor_when_nothing_did(alice_api, market):
    alice_api.post("/v1/orders", order_body(client_order_id="e-2", type="limit", limit_price="97"), format="json")
    first, cursor = _follow(alice_api)

    nothing, same = _follow(alice_api, cursor)
    order = Order.objects.get(client_order_id="e-2")
    alice_api.delete(f"/v1/orders/{order.pk}")
    since, _ = _follow(alice_api, cursor)

    assert len(first) == 2
    assert nothing == [] and same == cursor
    assert [e["transition"]["to"] for e in since] == ["pending_cancel", "cancelled"]
    assert {e["id"] for e in since}.isdisjoint({e["id"] for e in first})


def test_pages_of_the_feed_join_up_with_nothing_missed_or_repeated(alice_api, market):
    for n in range(4):
        alice_api.post("/v1/orders", order_body(client_order_id=f"e-p{n}", type="limit", limit_price="97"), "json")
    everything, _ = _follow(alice_api, limit=500)

    paged, _ = _follow(alice_api, limit=3)

    assert len(everything) == 8
    assert [e["id"] for e in paged] == [e["id"] for e in everything]


def test_a_client_never_sees_another_clients_events(alice_api, bob_api, market):
    alice_api.post("/v1/orders", order_body(client_order_id="mine"), format="json")
    bob_api.post("/v1/orders", order_body(strategy="beta", client_order_id="theirs"), format="json")

    alice_events, _ = _follow(alice_api)
    officer_events, _ = _follow(token_client_for_officer())

    assert {e["client_order_id"] for e in alice_events} == {"mine"}
    assert {e["client_order_id"] for e in officer_events} == {"mine", "theirs"}


def token_client_for_officer():
    from tests.factories import UserFactory, in_group

    return token_client(in_group(UserFactory(username="olga", is_staff=True), "Risk officers"))


def test_a_long_poll_with_nothing_new_answers_empty_with_the_same_cursor(alice_api, market):
    alice_api.post("/v1/orders", order_body(client_order_id="e-w"), format="json")
    _, cursor = _follow(alice_api)

    response = alice_api.get("/v1/events", {"after": cursor, "wait": "1"})

    assert response.status_code == 200
    assert response.json() == {"results": [], "next": cursor, "has_more": False}


@pytest.mark.parametrize(
    "query", [{"after": "not-a-cursor"}, {"after": "ZTE6LTE6MQ"}, {"wait": "31"}, {"wait": "-1"}, {"limit": "0"},
              {"since": "x"}],
)
def test_a_bad_cursor_or_parameter_is_a_400_problem(alice_api, query):
    response = alice_api.get("/v1/events", query)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"


def test_anonymous_gets_401(client, db):
    assert client.get("/v1/events").status_code == 401
