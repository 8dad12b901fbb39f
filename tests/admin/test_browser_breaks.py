"""A persistent break resolved in a real browser by a ledger adjustment that two officers agree on (four-eyes)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from brokers.models import SimPosition
from orders import services
from orders.models import LedgerAdjustment, Position, ReconciliationBreak
from risk.models import RiskEvent
from tests.admin.browser import log_in, new_page, screenshot
from tests.conftest import order_body

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def expect():
    from playwright.sync_api import expect

    expect.set_options(timeout=8_000)
    return expect


@pytest.fixture
def persistent_break(alice_api, market):
    """The ledger holds 5 AAPL; 2 more were bought on the broker's dashboard; three runs saw it."""
    assert alice_api.post("/v1/orders", order_body(qty="5"), format="json").status_code == 201
    market.tick()
    services.orders_sync()
    SimPosition.objects.filter(symbol="AAPL").update(qty=Decimal("7"))
    for _ in range(3):
        services.positions_reconcile()
    return ReconciliationBreak.objects.get()


def test_two_officers_resolve_a_break_with_a_ledger_adjustment(
    browser, live_server, officer, second_officer, persistent_break, alpha, settings, expect
):
    settings.KILL_SWITCH_RESET_APPROVALS = 2

    olivia = new_page(browser)
    log_in(olivia, live_server, "olivia")
    olivia.goto(f"{live_server.url}/admin/orders/reconciliationbreak/{persistent_break.pk}/change/")
    olivia.click("text=Request a ledger adjustment")
    expect(olivia.locator(".bo-confirm-what")).to_contain_text("a second, different officer approves it")
    expect(olivia.locator("#id_qty")).to_have_value("2.00000000")  # the difference, proposed
    olivia.fill("#id_qty", "3")
    olivia.fill("#id_price", "101.50")
    olivia.fill("#id_reason", "Manual buy of 2 AAPL on the broker's dashboard at 09:41")
    olivia.click('[data-confirm="adjust"]')
    expect(olivia.locator(".errornote")).to_contain_text("must make the ledger equal the broker")
    olivia.fill("#id_qty", "2")
    olivia.click('[data-confirm="adjust"]')
    expect(olivia.locator(".messagelist")).to_contain_text("a second, different officer must approve it")
    screenshot(olivia, "20-adjustment-requested")
    assert Position.objects.get(strategy=alpha, symbol="AAPL").qty == Decimal("5")  # nothing moved yet

    adjustment = LedgerAdjustment.objects.get()
    olivia.goto(f"{live_server.url}/admin/orders/ledgeradjustment/{adjustment.pk}/change/")
    expect(olivia.locator("text=Approve ledger adjustment")).to_have_count(0)  # not her own

    oscar = new_page(browser)
    log_in(oscar, live_server, "oscar")
    oscar.goto(f"{live_server.url}/admin/orders/ledgeradjustment/?status__exact=pending")
    oscar.click(f'#result_list a[href*="/ledgeradjustment/{adjustment.pk}/change/"]')
    oscar.click("text=Approve ledger adjustment")
    expect(oscar.locator(".bo-confirm-what")).to_contain_text("olivia proposed moving alpha's AAPL position by +2")
    oscar.fill("#id_reason", "Matches the broker's activity report")
    oscar.click('[data-confirm="approve"]')
    expect(oscar.locator(".messagelist")).to_contain_text("approved and applied")

    position = Position.objects.get(strategy=alpha, symbol="AAPL")
    oscar.goto(f"{live_server.url}/admin/orders/position/{position.pk}/change/")
    expect(oscar.locator("[data-adjustment]")).to_contain_text("+2")
    expect(oscar.locator("[data-adjustment]")).to_contain_text("requested by olivia")
    screenshot(oscar, "21-adjustment-in-position")

    assert position.qty == Decimal("7")
    persistent_break.refresh_from_db()
    assert persistent_break.status == "resolved" and persistent_break.handled_by == second_officer
    adjusted = RiskEvent.objects.get(kind="ledger_adjusted")
    assert adjusted.actor == second_officer and adjusted.new["requested_by"] == "olivia"
    services.positions_reconcile()
    assert not ReconciliationBreak.objects.filter(status="open").exists()
