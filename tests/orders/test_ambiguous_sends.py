"""Every fault of the fake Alpaca, through the real pipeline and alpaca-py: orders converge, no duplicates."""

from __future__ import annotations

import pytest

from brokers import registry
from orders import services
from orders.models import Order
from orders.states import from_broker_status
from tests.conftest import order_body
from tests.fake_alpaca.fixtures import fake_alpaca  # noqa: F401  (fixture)
from tests.fake_alpaca.server import DEFAULT_API_KEY, DEFAULT_SECRET_KEY

pytestmark = pytest.mark.django_db


@pytest.fixture
def alpaca(fake_alpaca, settings):  # noqa: F811
    settings.BROKER = "alpaca"
    settings.ALPACA_API_KEY, settings.ALPACA_SECRET_KEY = DEFAULT_API_KEY, DEFAULT_SECRET_KEY
    settings.ALPACA_BASE_URL = settings.ALPACA_DATA_URL = fake_alpaca.base_url
    settings.ALPACA_TIMEOUT_S = 0.5
    settings.UNKNOWN_ORDER_GRACE_S = 0
    # These sends are over at once (the fake acts before it answers, or never):
    # no horizon to wait out. tests/orders/test_late_truth.py covers the horizon.
    settings.UNKNOWN_ORDER_HORIZON_S = 0
    registry.reset()
    fake_alpaca.set_price("AAPL", "100.00")
    # Open whatever the hour, so the market_closed check lets the orders through.
    fake_alpaca.configure(fill_mode="manual", market_open=True)
    yield fake_alpaca
    registry.reset()


FAULTS = [
    ("lose_response", {}, "unknown"),
    ("http_500", {}, "unknown"),
    ("http_500", {"apply": True}, "unknown"),
    ("http_504", {}, "unknown"),
    ("http_504", {"apply": True}, "unknown"),
    ("http_429", {}, "unknown"),
    ("slow", {"seconds": 1.5}, "unknown"),
    ("drop_connection", {}, "unknown"),
]


@pytest.mark.parametrize(
    ("kind", "options", "answered"), FAULTS, ids=[f"{k}{'-applied' if o.get('apply') else ''}" for k, o, _ in FAULTS]
)
def test_an_ambiguous_send_answers_201_unknown_and_converges_to_the_brokers_truth(
    alpaca, alice_api, kind, options, answered
):
    alpaca.set_fault(kind, method="POST", path="/v2/orders", **options)

    response = alice_api.post("/v1/orders", order_body(client_order_id=f"amb-{kind}"), format="json")

    assert response.status_code == 201, response.content
    assert response.json()["status"] == answered
    services.orders_sync()
    order = Order.objects.get(client_order_id=f"amb-{kind}")
    at_broker = [o for o in alpaca.orders if o["client_order_id"] == order.client_order_id]
    assert len(at_broker) <= 1, "a duplicate reached the broker"
    assert alpaca.submissions.get(order.client_order_id, 0) == 1, "the order was resent"
    if at_broker:
        assert order.status == from_broker_status(at_broker[0]["status"])
        assert order.broker_order_id == at_broker[0]["id"]
    else:
        assert order.status == "rejected"
        assert "not resent" in order.reject_reason


def test_a_broker_rejection_answers_201_rejected_with_the_message_and_is_not_retried(alpaca, alice_api):
    alpaca.place_order(symbol="AAPL", qty="1", client_order_id="taken")  # the broker already has this id

    response = alice_api.post("/v1/orders", order_body(client_order_id="taken"), format="json")

    assert response.status_code == 201
    assert response.json()["status"] == "rejected"
    assert response.json()["reject_reason"] == "client_order_id must be unique"
    assert alpaca.submissions["taken"] == 1


def test_fills_and_cancels_at_alpaca_reach_the_ledger_through_polling(alpaca, alice_api):
    first = alice_api.post("/v1/orders", order_body(client_order_id="poll-1", qty="4"), format="json").json()
    second = alice_api.post("/v1/orders", order_body(client_order_id="poll-2", qty="2"), format="json").json()
    alpaca.fill(client_order_id="poll-1", qty="4", price="100.5")

    cancel = alice_api.delete(f"/v1/orders/{second['id']}")
    services.orders_sync()

    assert Order.objects.get(pk=first["id"]).status == "filled"
    assert cancel.status_code == 202
    assert Order.objects.get(pk=second["id"]).status == "cancelled"
    position = alice_api.get("/v1/positions").json()["results"][0]
    assert (position["qty"], position["avg_price"]) == ("4.00000000", "100.50000000")
