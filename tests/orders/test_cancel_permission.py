"""order_cancel checks who may cancel, whoever calls it (API, admin, a script)."""

import pytest
from django.core.exceptions import PermissionDenied

from orders import services
from tests.conftest import order_body

pytestmark = pytest.mark.django_db


def test_a_client_of_another_strategy_cannot_cancel_through_the_service(alice_api, bob, market):
    from orders.models import Order

    alice_api.post("/v1/orders", order_body(type="limit", limit_price="99", client_order_id="mine"), format="json")
    order = Order.objects.get(client_order_id="mine")

    with pytest.raises(PermissionDenied):
        services.order_cancel(acting_user=bob, order=order)
    assert Order.objects.get(pk=order.pk).status == "submitted"


def test_a_risk_officer_may_cancel_any_strategys_order(alice_api, officer, market):
    from orders.models import Order

    alice_api.post("/v1/orders", order_body(type="limit", limit_price="99", client_order_id="theirs"), format="json")

    cancelled = services.order_cancel(acting_user=officer, order=Order.objects.get(client_order_id="theirs"))

    assert cancelled.status == "cancelled"
