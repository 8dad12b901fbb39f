"""POST /v1/orders/cancel-all: every working order of one strategy, each through order_cancel."""

from __future__ import annotations

import pytest

from orders.models import Order
from orders.states import WORKING
from tests.conftest import order_body, token_client

pytestmark = pytest.mark.django_db


def _working(api, strategy: str, client_order_id: str) -> Order:
    body = order_body(strategy=strategy, client_order_id=client_order_id, type="limit", limit_price="97")
    response = api.post("/v1/orders", body, format="json")
    assert response.status_code == 201, response.content
    return Order.objects.get(client_order_id=client_order_id)


@pytest.fixture
def book(alice_api, bob_api, market):
    for n in range(3):
        _working(alice_api, "alpha", f"a-{n}")
    _working(bob_api, "beta", "b-0")


def test_it_cancels_every_working_order_of_the_strategy_and_answers_202_with_the_count(alice_api, book):
    response = alice_api.post("/v1/orders/cancel-all", {"strategy": "alpha"}, format="json")

    assert response.status_code == 202, response.content
    assert response.json() == {"strategy": "alpha", "count": 3}
    alpha = Order.objects.filter(strategy__slug="alpha")
    assert set(alpha.values_list("status", flat=True)) == {"cancelled"}
    for order in alpha:
        requested = order.transitions.get(to_status="pending_cancel")
        assert (requested.actor_label, requested.reason) == ("alice", "cancel-all requested")
    assert Order.objects.get(client_order_id="b-0").status in WORKING  # another strategy's order is untouched


def test_a_second_cancel_all_finds_nothing_left_to_cancel(alice_api, book):
    alice_api.post("/v1/orders/cancel-all", {"strategy": "alpha"}, format="json")

    response = alice_api.post("/v1/orders/cancel-all", {"strategy": "alpha"}, format="json")

    assert response.status_code == 202
    assert response.json()["count"] == 0


def test_a_risk_officer_may_cancel_all_of_a_strategy(officer, book):
    response = token_client(officer).post("/v1/orders/cancel-all", {"strategy": "beta"}, format="json")

    assert response.json() == {"strategy": "beta", "count": 1}
    assert Order.objects.get(client_order_id="b-0").transitions.filter(actor_label="olivia").exists()


def test_another_clients_strategy_is_403_and_nothing_is_cancelled(bob_api, book):
    response = bob_api.post("/v1/orders/cancel-all", {"strategy": "alpha"}, format="json")

    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert Order.objects.filter(strategy__slug="alpha", status__in=WORKING).count() == 3


@pytest.mark.parametrize("body", [{}, {"strategy": 5}, {"strategy": "alpha", "symbol": "AAPL"}, {"strategy": "a b"}])
def test_malformed_input_is_a_400_problem_and_nothing_is_cancelled(alice_api, book, body):
    response = alice_api.post("/v1/orders/cancel-all", body, format="json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert Order.objects.filter(status__in=WORKING).count() == 4
