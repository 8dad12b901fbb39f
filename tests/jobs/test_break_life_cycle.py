"""Breaks with a life cycle: one open break per symbol, alerted once, closed by a ledger adjustment or by itself."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from brokers.models import SimPosition
from orders import services
from orders.models import LedgerAdjustment, Position, ReconciliationBreak
from risk.exceptions import RiskActionError
from risk.models import Alert, AlertCondition, RiskEvent
from tests.conftest import order_body

pytestmark = pytest.mark.django_db(transaction=True)
D = Decimal


@pytest.fixture
def aapl_break(alice_api, market, alpha):
    """The ledger holds 5 AAPL; someone bought 2 more on the broker's dashboard."""
    assert alice_api.post("/v1/orders", order_body(qty="5"), format="json").status_code == 201
    market.tick()
    services.orders_sync()
    SimPosition.objects.filter(symbol="AAPL").update(qty=D("7"))


def break_alerts() -> int:
    return Alert.objects.filter(key="break:AAPL").count()


def test_a_persistent_break_through_10_reconciliations_is_one_break_and_one_alert_and_an_adjustment_closes_it(
    aapl_break, officer, alpha, alice_api
):
    for _ in range(10):
        services.positions_reconcile()

    item = ReconciliationBreak.objects.get()
    assert (item.symbol, item.broker_qty, item.ledger_qty, item.status) == ("AAPL", D("7"), D("5"), "open")
    assert break_alerts() == 1
    assert RiskEvent.objects.filter(kind="reconciliation_break").count() == 1

    adjustment = services.ledger_adjustment_request(
        acting_user=officer, item=item, strategy=alpha, qty="2", price="101.50",
        reason="Manual buy of 2 AAPL on the broker's dashboard, 09:41",
    )

    assert adjustment.status == "applied"
    item.refresh_from_db()
    assert item.status == "resolved" and item.handled_by == officer
    assert Position.objects.get(strategy=alpha, symbol="AAPL").qty == D("7")
    event = RiskEvent.objects.get(kind="ledger_adjusted")
    assert event.old["position_qty"] == "5" and event.new["position_qty"] == "7" and event.actor == officer
    assert Alert.objects.filter(kind="ledger_correction").count() == 1

    position = alice_api.get("/v1/positions").json()["results"][0]
    assert position["qty"] == "7.00000000"
    assert [(a["qty"], a["price"], a["by"]) for a in position["adjustments"]] == [
        ("2.00000000", "101.50000000", "olivia")
    ]

    services.positions_reconcile()
    assert ReconciliationBreak.objects.count() == 1 and break_alerts() == 1  # nothing new: books agree


def test_a_changed_difference_updates_the_break_and_alerts_again(aapl_break):
    services.positions_reconcile()
    SimPosition.objects.filter(symbol="AAPL").update(qty=D("8"))
    services.positions_reconcile()
    services.positions_reconcile()

    item = ReconciliationBreak.objects.get()
    assert (item.broker_qty, item.ledger_qty) == (D("8"), D("5"))
    assert break_alerts() == 2
    assert RiskEvent.objects.filter(kind="break_changed").count() == 1


def test_an_open_break_reminds_at_most_daily(aapl_break):
    services.positions_reconcile()
    services.positions_reconcile()
    AlertCondition.objects.filter(key="break:AAPL").update(
        last_alerted_at=AlertCondition.objects.get(key="break:AAPL").last_alerted_at - dt.timedelta(days=1)
    )
    services.positions_reconcile()
    services.positions_reconcile()

    assert break_alerts() == 2


def test_a_break_whose_difference_disappears_closes_itself_audited(aapl_break):
    services.positions_reconcile()
    SimPosition.objects.filter(symbol="AAPL").update(qty=D("5"))  # the outside trade was reversed

    services.positions_reconcile()

    item = ReconciliationBreak.objects.get()
    assert item.status == "closed" and item.closed_at is not None
    assert RiskEvent.objects.filter(kind="break_closed").count() == 1
    SimPosition.objects.filter(symbol="AAPL").update(qty=D("7"))
    services.positions_reconcile()
    assert ReconciliationBreak.objects.filter(status="open").count() == 1 and break_alerts() == 2  # a new one


def test_with_four_eyes_a_second_officer_approves_the_adjustment(aapl_break, officer, second_officer, alpha, settings):
    settings.KILL_SWITCH_RESET_APPROVALS = 2
    services.positions_reconcile()
    item = ReconciliationBreak.objects.get()

    adjustment = services.ledger_adjustment_request(
        acting_user=officer, item=item, strategy=alpha, qty="2", price="101.50", reason="dashboard buy"
    )
    assert adjustment.status == "pending" and adjustment.approval_requested_by == officer
    assert Position.objects.get(strategy=alpha, symbol="AAPL").qty == D("5")  # nothing moves yet
    with pytest.raises(RiskActionError):
        services.ledger_adjustment_approve(acting_user=officer, adjustment=adjustment, reason="me again")

    services.ledger_adjustment_approve(acting_user=second_officer, adjustment=adjustment, reason="checked the fill")

    adjustment.refresh_from_db()
    assert adjustment.status == "applied" and adjustment.decided_by == second_officer
    assert Position.objects.get(strategy=alpha, symbol="AAPL").qty == D("7")
    assert ReconciliationBreak.objects.get().status == "resolved"
    kinds = list(RiskEvent.objects.filter(kind__startswith="ledger_").order_by("id").values_list("kind", flat=True))
    assert kinds == ["ledger_adjustment_requested", "ledger_adjusted"]
    assert RiskEvent.objects.get(kind="ledger_adjusted").new["requested_by"] == "olivia"


def test_an_adjustment_that_would_not_close_the_break_is_refused(aapl_break, officer, alpha, alice):
    services.positions_reconcile()
    item = ReconciliationBreak.objects.get()

    with pytest.raises(services.AdjustmentRefused, match="differs by 2"):
        services.ledger_adjustment_request(acting_user=officer, item=item, strategy=alpha, qty="3", price="100",
                                           reason="typo")
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        services.ledger_adjustment_request(acting_user=alice, item=item, strategy=alpha, qty="2", price="100",
                                           reason="not an officer")
    assert not LedgerAdjustment.objects.exists()
    assert Position.objects.get(strategy=alpha, symbol="AAPL").qty == D("5")
