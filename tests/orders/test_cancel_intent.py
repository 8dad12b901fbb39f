"""A cancel the back office decided is driven to the broker until the broker confirms (SPEC 3.4, adr/0011).

Each reproduction of issue #10 ends with the broker in the decided state
(cancelled, or filled if the fill won) within 2 sync cycles of the broker
answering again. The broker is the fake Alpaca through alpaca-py; the faults
are real HTTP failures of DELETE /v2/orders/{id}.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from orders import services
from orders.models import Order
from tests.conftest import order_body
from tests.fake_alpaca.server import FakeAlpacaServer
from tests.intent import (
    alpaca,  # noqa: F401  (fixture)
    broker_status,
    killed_right_after_the_commit,
    requests_to,
    sync_cycles,
    wait_until_rate_limit_resets,
)

pytestmark = pytest.mark.django_db
CANCEL = "/v2/orders/*"

# Every way the broker can fail a cancel; "slow" cancels at the broker but the answer comes too late.
CANCEL_FAULTS = [
    ("http_500", {}),
    ("http_504", {}),
    ("http_429", {"reset_in_s": 2}),
    ("stall", {"seconds": 1.5}),  # a timeout: the gateway never passed the cancel on
    ("slow", {"seconds": 1.5}),  # a timeout: the broker cancelled, the answer was lost
    ("drop_connection", {}),
    ("lose_response", {}),
]


def working_order(api, client_order_id: str, **overrides) -> dict:
    response = api.post("/v1/orders", order_body(client_order_id=client_order_id, type="limit", limit_price="97",
                                                 **overrides), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "submitted", response.content
    return response.json()


@pytest.mark.parametrize(("kind", "options"), CANCEL_FAULTS, ids=[k for k, _ in CANCEL_FAULTS])
def test_a_cancel_the_broker_failed_is_sent_again_until_the_broker_has_cancelled(
    alpaca: FakeAlpacaServer, alice_api, kind, options  # noqa: F811
):
    order = working_order(alice_api, f"c-{kind}")
    alpaca.set_fault(kind, method="DELETE", path=CANCEL, count=1, **options)

    answer = alice_api.delete(f"/v1/orders/{order['id']}")

    assert answer.status_code == 202
    body = answer.json()
    assert body["status"] == "pending_cancel"
    assert body["cancel_attempts"] == 1 and body["cancel_last_error"], body
    assert body["cancel_next_attempt_at"] is not None
    if kind == "http_429":
        # The broker named when it listens again; nothing is sent before that.
        next_attempt = dt.datetime.fromisoformat(body["cancel_next_attempt_at"])
        sent = requests_to(alpaca, "DELETE", CANCEL)
        services.orders_sync()
        assert requests_to(alpaca, "DELETE", CANCEL) == sent, "a cancel went out before the rate-limit reset"
        wait_until_rate_limit_resets(next_attempt.timestamp())

    sync_cycles(2)  # the broker answers again (the fault is spent)

    assert broker_status(alpaca, f"c-{kind}") == "canceled"
    local = Order.objects.get(client_order_id=f"c-{kind}")
    assert local.status == "cancelled"
    assert [t.to_status for t in local.transitions.all()][-2:] == ["pending_cancel", "cancelled"]


def test_a_fill_that_wins_the_race_ends_the_retries(alpaca: FakeAlpacaServer, alice_api):  # noqa: F811
    order = working_order(alice_api, "c-fills")
    alpaca.set_fault("http_500", method="DELETE", path=CANCEL, count=1)
    alice_api.delete(f"/v1/orders/{order['id']}")
    alpaca.fill(client_order_id="c-fills", price="97")

    sync_cycles(2)

    local = Order.objects.get(client_order_id="c-fills")
    assert (broker_status(alpaca, "c-fills"), local.status) == ("filled", "filled")
    sent = requests_to(alpaca, "DELETE", CANCEL)
    sync_cycles(1)
    assert requests_to(alpaca, "DELETE", CANCEL) == sent, "a cancel was sent for a filled order"


def test_a_cancel_the_broker_is_still_processing_is_not_dropped(alpaca: FakeAlpacaServer, alice_api):  # noqa: F811
    """Alpaca answers a second cancel of an order in pending_cancel with a 422: the intent stays."""
    alpaca.configure(cancel_mode="pending")
    order = working_order(alice_api, "c-slow-venue")

    alice_api.delete(f"/v1/orders/{order['id']}")
    sync_cycles(2)
    assert Order.objects.get(client_order_id="c-slow-venue").status == "pending_cancel"

    alpaca.step()  # the venue finishes the cancel
    sync_cycles(1)
    assert Order.objects.get(client_order_id="c-slow-venue").status == "cancelled"


def test_a_repeated_delete_requests_the_cancel_again(alpaca: FakeAlpacaServer, alice_api):  # noqa: F811
    order = working_order(alice_api, "c-twice")
    alpaca.set_fault("http_500", method="DELETE", path=CANCEL, count=1)

    first = alice_api.delete(f"/v1/orders/{order['id']}")
    second = alice_api.delete(f"/v1/orders/{order['id']}")

    assert first.status_code == second.status_code == 202
    assert requests_to(alpaca, "DELETE", CANCEL) == 2
    assert second.json()["cancel_attempts"] == 2
    assert broker_status(alpaca, "c-twice") == "canceled"
    assert second.json()["status"] == "cancelled"
    assert Order.objects.get(client_order_id="c-twice").transitions.filter(to_status="pending_cancel").count() == 1


def test_an_unknown_order_that_is_cancelled_gets_its_cancel_once_the_broker_shows_it(
    alpaca: FakeAlpacaServer, alice_api  # noqa: F811
):
    alpaca.set_fault("lose_response", method="POST", path="/v2/orders", count=1)  # the broker took it; no answer
    sent = alice_api.post("/v1/orders", order_body(client_order_id="c-unknown", type="limit", limit_price="97"),
                          format="json").json()
    assert sent["status"] == "unknown"

    cancelled = alice_api.delete(f"/v1/orders/{sent['id']}")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "pending_cancel"
    assert cancelled.json()["broker_order_id"] is None
    assert broker_status(alpaca, "c-unknown") == "new"

    sync_cycles(2)

    assert broker_status(alpaca, "c-unknown") == "canceled"
    local = Order.objects.get(client_order_id="c-unknown")
    assert local.status == "cancelled" and local.broker_order_id == alpaca.order(client_order_id="c-unknown")["id"]


def test_each_sync_cycle_sends_a_due_cancel_at_most_once_and_backs_off(
    alpaca: FakeAlpacaServer, alice_api, settings  # noqa: F811
):
    settings.CANCEL_RETRY_MAX_S = 60  # a long sync interval: the back-off grows to it
    order = working_order(alice_api, "c-backoff")
    alpaca.set_fault("http_500", method="DELETE", path=CANCEL, count=None, probability=1.0)
    alice_api.delete(f"/v1/orders/{order['id']}")

    for _ in range(3):
        services.orders_sync()

    local = Order.objects.get(client_order_id="c-backoff")
    assert local.cancel_attempts == 1, "a cancel was re-sent before its back-off ran out"
    assert local.cancel_next_attempt_at > timezone.now()
    Order.objects.filter(pk=local.pk).update(cancel_next_attempt_at=timezone.now())  # time moves on
    services.orders_sync()
    local.refresh_from_db()
    assert local.cancel_attempts == 2
    assert local.cancel_last_error.startswith("BrokerOutcomeUnknown"), local.cancel_last_error
    delay = (local.cancel_next_attempt_at - local.cancel_last_attempt_at).total_seconds()
    assert 1 < delay <= 60  # doubled, and never beyond the cap


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_cancel_committed_just_before_the_process_died_is_sent_by_the_next_sync(
    alpaca: FakeAlpacaServer, alice_api, tmp_path  # noqa: F811
):
    order = working_order(alice_api, "c-crash")

    output = killed_right_after_the_commit(alpaca, f"""
        from orders import services
        from orders.models import Order
        services.order_cancel(acting_user=None, order=Order.objects.get(pk="{order['id']}"))
    """, method="DELETE", path=CANCEL, log_dir=tmp_path)

    assert Order.objects.get(pk=order["id"]).status == "pending_cancel", output
    assert broker_status(alpaca, "c-crash") == "new"  # the decision is stored; the broker never heard of it

    sync_cycles(2)

    assert broker_status(alpaca, "c-crash") == "canceled"
    assert Order.objects.get(pk=order["id"]).status == "cancelled"
