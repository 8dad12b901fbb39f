"""Reconciliation: broker positions against the ledger summed over strategies."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core import mail

from brokers import registry
from brokers.models import SimPosition
from orders import services
from orders.models import Order, ReconciliationBreak
from risk import alerts
from risk.models import KillSwitch
from tests.conftest import order_body
from tests.fake_alpaca.fixtures import fake_alpaca  # noqa: F401  (fixture)
from tests.fake_alpaca.server import DEFAULT_API_KEY, DEFAULT_SECRET_KEY

pytestmark = pytest.mark.django_db(transaction=True)


def fill_one_order(api, market, qty: str = "5") -> None:
    assert api.post("/v1/orders", order_body(qty=qty), format="json").status_code == 201
    market.tick()


def test_a_matching_book_reconciles_with_zero_breaks(alice_api, market):
    fill_one_order(alice_api, market)

    result = services.positions_reconcile()

    assert result.breaks == []
    body = alice_api.get("/v1/positions").json()
    assert body["results"][0]["qty"] == "5.00000000"
    assert body["results"][0]["breaks"] == []
    assert body["reconciliation"]["reconciled_at"]


def test_a_mismatch_is_a_stored_alerted_break_shown_in_positions_and_never_fixed(alice_api, market, settings):
    settings.ADMINS = [("risk", "risk@example.com")]
    fill_one_order(alice_api, market)
    services.orders_sync()
    SimPosition.objects.filter(symbol="AAPL").update(qty=Decimal("7"))  # someone traded outside the system

    result = services.positions_reconcile()

    assert [(b.symbol, b.broker_qty, b.ledger_qty) for b in result.breaks] == [("AAPL", Decimal("7"), Decimal("5"))]
    assert ReconciliationBreak.objects.get().status == "open"
    alerts.alerts_deliver_pending()  # the alert delivery job
    assert any("Reconciliation break" in m.subject for m in mail.outbox)
    position = alice_api.get("/v1/positions").json()["results"][0]
    assert position["qty"] == "5.00000000"  # the ledger is not "fixed"
    assert position["breaks"][0]["broker_qty"] == "7.00000000"
    assert not KillSwitch.objects.get(strategy__isnull=True).active


def test_the_halt_policy_activates_the_kill_switch_on_a_break(alice_api, market, settings):
    settings.HALT_ON_RECONCILIATION_BREAK = True
    fill_one_order(alice_api, market)
    SimPosition.objects.filter(symbol="AAPL").update(qty=Decimal("1"))

    services.positions_reconcile()

    switch = KillSwitch.objects.get(strategy__isnull=True)
    assert switch.active and switch.source == "reconciliation"


def test_a_fill_not_yet_polled_is_not_a_break(alice_api, market):
    fill_one_order(alice_api, market)  # filled at the broker, the ledger has not polled yet

    result = services.positions_reconcile()

    assert result.breaks == []


@pytest.fixture
def alpaca(fake_alpaca, settings):  # noqa: F811
    settings.BROKER = "alpaca"
    settings.ALPACA_API_KEY, settings.ALPACA_SECRET_KEY = DEFAULT_API_KEY, DEFAULT_SECRET_KEY
    settings.ALPACA_BASE_URL = settings.ALPACA_DATA_URL = fake_alpaca.base_url
    settings.ALPACA_TIMEOUT_S = 0.5
    registry.reset()
    fake_alpaca.set_price("AAPL", "100.00")
    fake_alpaca.configure(fill_mode="manual", market_open=True)  # whatever the hour: market_closed is not under test
    yield fake_alpaca
    registry.reset()


def test_a_fill_of_an_order_whose_send_has_no_stored_outcome_is_unconfirmed_not_a_break(alpaca, alice_api, settings):
    # The sender reached the broker but has not stored the acknowledgement (it is
    # slow, or it died right after the broker accepted): the order is `pending`
    # here and filled there. Until its outcome is stored or looked up, the
    # ledger cannot know that fill, so the difference is not judged.
    settings.UNKNOWN_ORDER_GRACE_S = 3600
    response = alice_api.post("/v1/orders", order_body(client_order_id="in-flight-1", qty="4"), format="json")
    assert response.json()["status"] == "submitted"
    Order.objects.filter(client_order_id="in-flight-1").update(status="pending", broker_order_id=None, sent_at=None)
    alpaca.fill(client_order_id="in-flight-1")

    result = services.positions_reconcile()

    assert result.breaks == []
    assert "AAPL" in result.run.unconfirmed_symbols
    assert ReconciliationBreak.objects.count() == 0

    settings.UNKNOWN_ORDER_GRACE_S = 0  # the lookup is due: the order and its fill are adopted
    result = services.positions_reconcile()

    assert result.breaks == []
    assert Order.objects.get(client_order_id="in-flight-1").status == "filled"
    assert alice_api.get("/v1/positions").json()["results"][0]["qty"] == "4.00000000"
