"""The strategy's message throttle counts every order message, denied ones too (FIA counts messages, not fills).

Before, a client could send denied orders without limit: each was stored
and checked, none counted, and the next valid order still passed.
"""

from __future__ import annotations

import pytest

from orders.models import Order
from orders.states import OrderStatus
from risk.models import Strategy
from tests.conftest import order_body

pytestmark = pytest.mark.django_db


def test_denied_orders_count_toward_the_strategys_message_throttle(alice_api, alpha, market):
    Strategy.objects.filter(pk=alpha.pk).update(max_orders_per_second=1000, max_orders_per_minute=3)
    denied = [alice_api.post("/v1/orders", order_body(qty="100000"), format="json") for _ in range(3)]
    assert [d.json()["violations"][0]["code"] for d in denied] != []
    assert all(d.status_code == 400 and "rate_limited" not in str(d.json()["violations"]) for d in denied)

    answer = alice_api.post("/v1/orders", order_body(), format="json")

    assert answer.status_code == 400, answer.content
    assert [v["code"] for v in answer.json()["violations"]] == ["rate_limited"]
    assert Order.objects.filter(status=OrderStatus.DENIED).count() == 4


def test_another_strategys_orders_do_not_count(alice_api, bob_api, alpha, beta, market):
    Strategy.objects.filter(pk=alpha.pk).update(max_orders_per_second=1000, max_orders_per_minute=2)
    for _ in range(3):
        bob_api.post("/v1/orders", order_body(strategy="beta", qty="100000"), format="json")

    assert alice_api.post("/v1/orders", order_body(), format="json").status_code == 201
