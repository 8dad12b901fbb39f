"""Amend (issue 17, part 3): PATCH /v1/orders/{id} replaces a working order at the broker, after the pre-trade check.

The broker is the fake Alpaca through alpaca-py (manual fills); its PATCH /v2/orders/{id} is
Alpaca's replace. The simulated broker's replace is checked at the end.
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from orders import services
from orders.models import Order, Position
from tests.conftest import order_body
from tests.fake_alpaca.server import FakeAlpacaServer
from tests.intent import (
    alpaca,  # noqa: F401  (fixture)
    broker_status,
    killed_right_after_the_commit,
    requests_to,
    sync_cycles,
)

pytestmark = pytest.mark.django_db
REPLACE = "/v2/orders/*"


def place(api, client_order_id: str, **fields) -> dict:
    response = api.post("/v1/orders", order_body(client_order_id=client_order_id, **fields), format="json")
    assert response.status_code == 201 and response.json()["status"] == "submitted", response.content
    return response.json()


def amend(api, order_id: str, **fields):
    return api.patch(f"/v1/orders/{order_id}", fields, format="json")


def test_moving_a_stop_leg_closer_replaces_it_at_the_broker_and_the_new_stop_protects(
    alpaca: FakeAlpacaServer, alice_api  # noqa: F811
):
    entry = place(alice_api, "entry", stop_loss="95")
    alpaca.fill(client_order_id="entry", price="100")
    services.orders_sync()
    (leg,) = alice_api.get(f"/v1/orders/{entry['id']}").json()["legs"]

    answer = amend(alice_api, leg["id"], stop_price="98")

    assert answer.status_code == 201, answer.content
    moved = answer.json()
    assert (moved["status"], moved["stop_price"], moved["replaces"], moved["parent"]) == (
        "submitted", "98.00000000", leg["id"], entry["id"]
    )
    at_broker = alpaca.order(client_order_id=moved["client_order_id"])
    assert (at_broker["stop_price"], at_broker["replaces"]) == ("98", leg["broker_order_id"])
    assert at_broker["status"] == "new"
    assert broker_status(alpaca, leg["client_order_id"]) == "replaced"
    sync_cycles(1)
    old = Order.objects.get(pk=leg["id"])
    assert old.status == "cancelled"
    assert [t.reason for t in old.transitions.all()][-2:] == [
        f"amend requested: {moved['client_order_id']} (stop_price 98) replaces it",
        f"broker status replaced: replaced by {moved['client_order_id']}",
    ]

    alpaca.set_price("AAPL", "97.90")  # through the new stop, not the old one
    alpaca.step()
    services.orders_sync()
    assert Order.objects.get(pk=moved["id"]).status == "filled"
    assert Position.objects.get(symbol="AAPL").qty == 0


def test_a_limit_orders_qty_and_price_are_amended(alpaca: FakeAlpacaServer, alice_api):  # noqa: F811
    order = place(alice_api, "lim", type="limit", limit_price="97")

    answer = amend(alice_api, order["id"], qty="12", limit_price="98")

    assert answer.status_code == 201, answer.content
    at_broker = alpaca.order(client_order_id=answer.json()["client_order_id"])
    assert (at_broker["qty"], at_broker["limit_price"]) == ("12", "98")


def test_a_retried_amend_is_the_same_replacement_and_the_broker_replaces_once(
    alpaca: FakeAlpacaServer, alice_api  # noqa: F811
):
    order = place(alice_api, "stop", type="stop", stop_price="104")

    first = amend(alice_api, order["id"], stop_price="103", client_order_id="move-1")
    again = amend(alice_api, order["id"], stop_price="103.000", client_order_id="move-1")
    derived = amend(alice_api, order["id"], stop_price="102.5")  # the replaced order is no longer working
    conflict = amend(alice_api, order["id"], stop_price="102", client_order_id="move-1")

    assert first.status_code == 201
    assert (again.status_code, again["Idempotent-Replayed"], again.json()["id"]) == (200, "true", first.json()["id"])
    assert derived.status_code == 409 and derived["Content-Type"] == "application/problem+json"
    assert conflict.status_code == 409
    assert requests_to(alpaca, "PATCH", REPLACE) == 1


def test_a_retried_amend_without_an_id_finds_the_replacement_it_made(
    alpaca: FakeAlpacaServer, alice_api  # noqa: F811
):
    order = place(alice_api, "stop-derived", type="stop", stop_price="104")

    first = amend(alice_api, order["id"], stop_price="103")
    again = amend(alice_api, order["id"], stop_price="103")

    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    assert requests_to(alpaca, "PATCH", REPLACE) == 1


def test_new_values_that_fail_the_pre_trade_check_are_denied_and_never_reach_the_broker(
    alpaca: FakeAlpacaServer, alice_api  # noqa: F811
):
    order = place(alice_api, "lim-deny", type="limit", limit_price="97")

    answer = amend(alice_api, order["id"], qty="300")  # $29,100 at the limit: above the $25,000 cap

    assert answer.status_code == 400
    assert "max_notional" in {v["code"] for v in answer.json()["violations"]}
    assert requests_to(alpaca, "PATCH", REPLACE) == 0
    assert Order.objects.get(pk=order["id"]).status == "submitted"
    assert alpaca.order(client_order_id="lim-deny")["qty"] == "10"


def test_the_order_it_amends_is_left_out_of_the_exposure_it_is_judged_against(
    alpaca: FakeAlpacaServer, alice_api  # noqa: F811
):
    # 200 shares at $97 ($19,400) work. Moved to $98 ($19,600) they fit the 30 % symbol concentration of
    # $100,000 equity ($30,000) once, not twice: the replacement is judged instead of the original.
    order = place(alice_api, "big", type="limit", limit_price="97", qty="200")

    answer = amend(alice_api, order["id"], limit_price="98")

    assert answer.status_code == 201, answer.content


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({}, 400),
        ({"limit_price": "99"}, 400),  # a stop order has no limit price
        ({"stop_price": "-1"}, 400),
        ({"stop_price": "103", "note": "x"}, 400),
        ({"qty": "ten"}, 400),
    ],
    ids=["nothing to change", "a price the type does not have", "negative", "unknown field", "qty as a word"],
)
def test_bad_amends_are_4xx_problems_and_nothing_is_stored(
    alpaca: FakeAlpacaServer, alice_api, fields, status  # noqa: F811
):
    order = place(alice_api, "stop-bad", type="stop", stop_price="104")

    answer = amend(alice_api, order["id"], **fields)

    assert answer.status_code == status, answer.content
    assert answer["Content-Type"] == "application/problem+json"
    assert Order.objects.count() == 1 and requests_to(alpaca, "PATCH", REPLACE) == 0


def test_a_filled_or_cancelling_order_cannot_be_amended_and_another_clients_is_not_found(
    alpaca: FakeAlpacaServer, alice_api, bob_api  # noqa: F811
):
    filled = place(alice_api, "filled")
    alpaca.fill(client_order_id="filled", price="100")
    services.orders_sync()
    cancelling = place(alice_api, "cancelling", type="limit", limit_price="97")
    alpaca.configure(cancel_mode="pending")
    alice_api.delete(f"/v1/orders/{cancelling['id']}")
    assert Order.objects.get(pk=cancelling["id"]).status == "pending_cancel"

    assert amend(alice_api, filled["id"], qty="5").status_code == 409
    assert amend(alice_api, cancelling["id"], limit_price="98").status_code == 409
    assert amend(bob_api, filled["id"], qty="5").status_code == 404
    assert requests_to(alpaca, "PATCH", REPLACE) == 0


REPLACE_FAULTS = [
    ("http_500", {}),
    ("http_504", {}),
    ("http_500", {"apply": True}),  # the broker acted, then failed the answer
    ("http_429", {"reset_in_s": 1}),
    ("stall", {"seconds": 1.5}),  # a timeout: the gateway never passed the replace on
    ("slow", {"seconds": 1.5}),  # a timeout: the broker replaced, the answer came too late
    ("drop_connection", {}),
    ("lose_response", {}),  # the broker replaced, the answer was lost
]


@pytest.mark.parametrize(
    ("kind", "options"), REPLACE_FAULTS, ids=[k + ("-applied" if o.get("apply") else "") for k, o in REPLACE_FAULTS]
)
def test_a_replace_whose_answer_is_lost_is_resolved_and_never_sent_twice(
    alpaca: FakeAlpacaServer, alice_api, kind, options, settings  # noqa: F811
):
    settings.UNKNOWN_ORDER_HORIZON_S = 2
    order = place(alice_api, "stop-fault", type="stop", stop_price="104")
    alpaca.set_fault(kind, method="PATCH", path=REPLACE, count=1, **options)

    answer = amend(alice_api, order["id"], stop_price="103", client_order_id="move-fault")

    assert answer.status_code == 201 and answer.json()["status"] == "unknown", answer.content
    replaced = broker_status(alpaca, "stop-fault") == "replaced"
    sync_cycles(1)
    if not replaced:
        time.sleep(2.1)  # past the horizon: closed as never received, never sent again
        sync_cycles(1)
    assert requests_to(alpaca, "PATCH", REPLACE) == 1
    replacement = Order.objects.get(client_order_id="move-fault")
    original = Order.objects.get(client_order_id="stop-fault")
    if replaced:
        assert (replacement.status, original.status) == ("submitted", "cancelled")
        assert alpaca.order(client_order_id="move-fault")["stop_price"] == "103"
    else:
        assert (replacement.status, original.status) == ("rejected", "submitted")
        assert alpaca.order(client_order_id="stop-fault")["stop_price"] == "104"
        # The original can be amended again, with a new request.
        again = amend(alice_api, order["id"], stop_price="103", client_order_id="move-fault-2")
        assert again.status_code == 201 and again.json()["status"] == "submitted"


def test_the_simulated_broker_replaces_a_stop(alice_api, market):
    order = alice_api.post("/v1/orders", order_body(client_order_id="sim-stop", type="stop", stop_price="104"),
                           format="json").json()

    answer = amend(alice_api, order["id"], stop_price="103")

    assert answer.status_code == 201 and answer.json()["status"] == "submitted", answer.content
    services.orders_sync()
    assert Order.objects.get(client_order_id="sim-stop").status == "cancelled"
    assert Order.objects.get(pk=answer.json()["id"]).stop_price == Decimal("103")


@pytest.mark.postgres  # the killed process works on the test database: a server, not a file
@pytest.mark.django_db(transaction=True)
def test_an_amend_committed_just_before_the_process_died_is_settled_by_the_sync_and_never_sent(
    alpaca: FakeAlpacaServer, alice_api, settings, tmp_path  # noqa: F811
):
    settings.UNKNOWN_ORDER_HORIZON_S = 1
    order = place(alice_api, "stop-crash", type="stop", stop_price="104")

    output = killed_right_after_the_commit(alpaca, f"""
        from decimal import Decimal
        from orders import services
        from orders.models import Order
        services.order_amend(acting_user=None, order=Order.objects.get(pk="{order['id']}"),
                             request=services.AmendRequest(stop_price=Decimal("103"), client_order_id="move-crash"))
    """, method="PATCH", path=REPLACE, log_dir=tmp_path)

    replacement = Order.objects.get(client_order_id="move-crash")
    assert replacement.status == "pending" and replacement.replaces_id is not None, output
    time.sleep(1.1)  # past the horizon: the broker never saw the replace
    sync_cycles(2)

    assert Order.objects.get(client_order_id="move-crash").status == "rejected"
    assert Order.objects.get(pk=order["id"]).status == "submitted"
    assert alpaca.order(client_order_id="stop-crash")["stop_price"] == "104"
    assert requests_to(alpaca, "PATCH", REPLACE) == 1  # the one the killed process sent, held unprocessed
