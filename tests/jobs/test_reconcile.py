"""Reconciliation: broker positions against the ledger summed over strategies."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core import mail

from brokers.models import SimPosition
from orders import services
from orders.models import ReconciliationBreak
from risk import alerts
from risk.models import KillSwitch
from tests.conftest import order_body

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
