"""Races the chaos scenario found: sync between listings, reconciliation while trading, asset-lookup outage."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from brokers import registry
from orders import services
from orders.models import Order, ReconciliationBreak
from risk.models import RiskEvent, RiskLimits, Strategy
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
    registry.reset()
    fake_alpaca.set_price("AAPL", "100.00")
    # Open whatever the hour, so the market_closed check lets the orders through.
    fake_alpaca.configure(fill_mode="manual", market_open=True)
    yield fake_alpaca
    registry.reset()


def submitted(api, count: int) -> list[str]:
    Strategy.objects.filter(slug="alpha").update(max_orders_per_second=100)
    RiskLimits.objects.filter(pk=1).update(duplicate_order_max=100)  # a burst of identical orders, on purpose
    ids = []
    for index in range(count):
        body = api.post("/v1/orders", order_body(client_order_id=f"race-{index}", qty="1"), format="json").json()
        assert body["status"] == "submitted"
        ids.append(body["client_order_id"])
    Order.objects.update(sent_at=timezone.now() - dt.timedelta(minutes=1))  # sent well before the next cycle
    return ids


def test_orders_that_fill_between_the_two_listings_need_no_lookup_by_id(alpaca, alice_api, monkeypatch):
    submitted(alice_api, 10)
    broker = registry.get_broker()
    real_iter = broker.iter_orders

    def iter_orders(*, status, **kwargs):
        if status == "closed":
            alpaca.step()  # the market fills everything after the open listing was read
        return real_iter(status=status, **kwargs)

    monkeypatch.setattr(broker, "iter_orders", iter_orders)
    result = services.orders_sync()

    assert Order.objects.filter(status="filled").count() == 10
    assert broker.counter.by_operation.get("get_order", 0) == 0
    assert result.broker_calls == 2


def test_a_fill_the_ledger_has_not_polled_while_reconciling_is_not_a_break(alpaca, alice_api, monkeypatch):
    submitted(alice_api, 3)
    broker = registry.get_broker()
    real_positions = broker.list_positions
    working = iter(["race-0", "race-1", "race-2"])

    def list_positions():
        client_order_id = next(working, None)
        if client_order_id:  # one more fill lands at the broker before every read
            alpaca.fill(client_order_id=client_order_id, qty="1", price="100")
        return real_positions()

    monkeypatch.setattr(broker, "list_positions", list_positions)
    result = services.positions_reconcile()

    assert result.breaks == [] and not ReconciliationBreak.objects.exists()
    assert result.run.unconfirmed_symbols == ["AAPL"]


def test_a_real_difference_is_still_a_break(alpaca, alice_api):
    (client_order_id,) = submitted(alice_api, 1)
    alpaca.fill(client_order_id=client_order_id, qty="1", price="100")
    alpaca.place_order(symbol="AAPL", qty="2", client_order_id="outside-the-system")
    alpaca.fill(client_order_id="outside-the-system", qty="2", price="100")

    result = services.positions_reconcile()

    assert [(b.symbol, b.broker_qty, b.ledger_qty) for b in result.breaks] == [("AAPL", Decimal("3"), Decimal("1"))]
    assert RiskEvent.objects.get(kind="reconciliation_break").reason == "AAPL: broker 3 vs ledger 1"


def test_an_asset_lookup_outage_answers_503_stores_nothing_and_the_retry_succeeds(alpaca, alice_api):
    alpaca.set_fault("http_500", method="GET", path="/v2/assets/*", count=3)

    outage = alice_api.post("/v1/orders", order_body(client_order_id="during-outage"), format="json")
    retry = alice_api.post("/v1/orders", order_body(client_order_id="during-outage"), format="json")

    assert outage.status_code == 503 and outage["Retry-After"] == "2"
    assert outage["Content-Type"] == "application/problem+json"
    assert retry.status_code == 201
    assert Order.objects.filter(client_order_id="during-outage").count() == 1


def test_open_broker_orders_this_system_did_not_send_are_reported_not_adopted(alpaca, alice_api):
    submitted(alice_api, 1)
    alpaca.place_order(symbol="AAPL", qty="1", client_order_id="placed-on-the-dashboard")

    result = services.positions_reconcile()

    assert [o["client_order_id"] for o in result.run.unknown_broker_orders] == ["placed-on-the-dashboard"]
    assert not Order.objects.filter(client_order_id="placed-on-the-dashboard").exists()


def test_reconciliation_reads_open_orders_once_for_its_sync_and_the_unknown_order_report(alpaca, alice_api):
    submitted(alice_api, 2)
    alpaca.place_order(symbol="AAPL", qty="1", client_order_id="placed-on-the-dashboard")
    registry.reset()  # a fresh client: count only what reconciliation asks
    broker = registry.get_broker()

    result = services.positions_reconcile()

    assert [o["client_order_id"] for o in result.run.unknown_broker_orders] == ["placed-on-the-dashboard"]
    # Positions before and after its sync; the sync's open and closed listings; nothing else.
    assert broker.counter.by_operation == {"list_positions": 2, "list_orders": 2}, broker.counter.by_operation
