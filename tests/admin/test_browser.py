"""A risk officer's day in a real browser: watch, adjust a limit, stop trading, restart it; four-eyes.

Chromium (Debian's, headless) against pytest-django's live server. The tests
are transactional, so the kill switch's on-commit hook really cancels the
working orders at the simulated broker. Screenshots land in var/screenshots/.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from backoffice import admin_site
from brokers.models import SimOrder
from core.models import JobRun
from orders.models import ReconciliationBreak, ReconciliationRun
from risk import services
from risk.models import KillSwitch, RiskEvent, RiskEventKind, RiskLimits, RiskState
from tests.admin.browser import log_in, new_page, screenshot
from tests.jobs.helpers import working_book

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def expect():
    from playwright.sync_api import expect

    expect.set_options(timeout=8_000)
    return expect


@pytest.fixture
def trading_day(equity_history, alpha, beta, market):
    """A book mid-session: a month of equity, working orders at the broker, jobs that ran, one open break."""
    book = working_book(alpha, 3, symbol="AAPL", limit_price="95")
    now = timezone.now()
    JobRun.objects.create(name="order_sync", last_succeeded_at=now - dt.timedelta(seconds=4))
    JobRun.objects.create(name="risk_eval", last_succeeded_at=now - dt.timedelta(seconds=9))
    JobRun.objects.create(name="reconcile", last_succeeded_at=now - dt.timedelta(minutes=4))  # late: shown red
    run = ReconciliationRun.objects.create(positions_checked=4, breaks_found=1, at=now - dt.timedelta(minutes=4))
    ReconciliationBreak.objects.create(run=run, symbol="MSFT", broker_qty=Decimal("25"), ledger_qty=Decimal("20"))
    return book


@pytest.fixture
def fast_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin_site, "DASHBOARD_REFRESH_MS", 700)
    monkeypatch.setattr(admin_site, "BANNER_REFRESH_MS", 700)


def test_it_lets_an_officer_watch_adjust_stop_and_restart_trading(
    browser, live_server, officer, trading_day, fast_refresh, expect
):
    page = new_page(browser)
    log_in(page, live_server, "olivia")

    # Watch: the dashboard is the admin's home page.
    expect(page.locator("h1")).to_have_text("Risk dashboard")
    expect(page.locator('[data-gauge="daily_drawdown"]')).to_contain_text("1.20 %")
    expect(page.locator('[data-job="reconcile"]')).to_contain_text("stale")
    expect(page.locator('[data-chart="today"] svg path.bo-equity')).to_have_count(1)
    expect(page.locator('[data-chart="history"] svg path.bo-th-kill')).to_have_count(1)
    screenshot(page, "01-dashboard")

    # It refreshes by itself: a new equity reading shows up without a reload.
    day_start = RiskState.current().day_start_equity
    equity = (day_start * Decimal("0.975")).quantize(Decimal("0.01"))  # 2.5 % down: the breaker warns
    services.equity_record(equity=equity, day_start_equity=day_start)
    expect(page.locator('[data-kpi="equity"]')).to_have_text(f"${equity:,.2f}")
    expect(page.locator('[data-kpi="breaker"]')).to_have_text("WARNING")

    # Adjust: a limit, with the reason the form insists on; it shows in the history.
    page.click("text=Edit limits")
    page.fill("#id_daily_drawdown_warning_pct", "1.5")
    page.fill("#id_max_daily_drawdown_pct", "2.5")
    page.click("input[name=_save]")
    expect(page.locator(".errorlist")).to_contain_text("A reason is required for every limit change.")
    page.fill("#id_reason", "Volatile session: tighter daily limits")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("Max daily drawdown (%) 3.00 → 2.5")
    expect(page.locator("#audit-trail")).to_contain_text("Volatile session: tighter daily limits")
    expect(page.locator("#audit-trail")).to_contain_text("olivia")
    screenshot(page, "02-limits-history")
    assert RiskLimits.current().max_daily_drawdown_pct == Decimal("2.5")

    # Stop trading: the global kill switch, confirmed with a reason.
    page.goto(f"{live_server.url}/admin/")
    page.click('[data-action="activate-global"]')
    expect(page.locator(".bo-confirm-what")).to_contain_text("one cancel-all call")
    screenshot(page, "03-kill-switch-confirm")
    page.fill("#id_reason", "Market data looks wrong on every feed")
    page.click('[data-confirm="activate"]')
    banner = page.locator('[data-banner="global-kill-switch"]')
    expect(banner).to_contain_text("GLOBAL KILL SWITCH ACTIVE")
    expect(banner).to_contain_text("Market data looks wrong on every feed")
    screenshot(page, "04-kill-switch-active")
    assert set(SimOrder.objects.values_list("status", flat=True)) == {"canceled"}  # cancelled at the broker

    # The banner follows the officer everywhere in the admin.
    page.goto(f"{live_server.url}/admin/orders/order/")
    expect(page.locator('[data-banner="global-kill-switch"]')).to_be_visible()
    page.goto(f"{live_server.url}/admin/")
    expect(page.locator('[data-kpi="kill-switch"]')).to_have_text("ACTIVE")
    screenshot(page, "05-dashboard-halted")

    # Restart: reset with a reason; the banner goes away.
    page.click("text=Kill-switch controls")
    page.click("text=Reset kill switch")
    page.fill("#id_reason", "Feeds verified against the exchange")
    page.click('[data-confirm="reset"]')
    expect(page.locator(".messagelist")).to_contain_text("new orders are accepted again")
    expect(page.locator('[data-banner="global-kill-switch"]')).to_have_count(0)
    screenshot(page, "06-kill-switch-reset")
    kinds = list(RiskEvent.objects.filter(strategy__isnull=True).values_list("kind", flat=True))
    assert RiskEventKind.KILL_SWITCH_ACTIVATED in kinds and RiskEventKind.KILL_SWITCH_RESET in kinds


def test_four_eyes_one_officer_requests_the_reset_and_another_approves_it(
    browser, live_server, officer, second_officer, trading_day, fast_refresh, settings, expect
):
    settings.KILL_SWITCH_RESET_APPROVALS = 2
    services.killswitch_activate(acting_user=officer, reason="Drawdown alert from the desk")
    switch = KillSwitch.objects.get(strategy__isnull=True)

    olivia = new_page(browser)
    log_in(olivia, live_server, "olivia")
    olivia.goto(f"{live_server.url}/admin/risk/killswitch/{switch.pk}/change/")
    olivia.click("text=Request kill switch reset")
    expect(olivia.locator(".bo-confirm-what")).to_contain_text("a second, different officer approves it")
    olivia.fill("#id_reason", "Desk confirms the alert was a data error")
    olivia.click('[data-confirm="reset"]')
    expect(olivia.locator(".messagelist")).to_contain_text("stays active until a second officer approves")
    expect(olivia.locator('[data-banner="reset-pending"]')).to_contain_text("awaiting a second officer")
    expect(olivia.locator(".bo-controls")).to_have_count(0)  # nothing for her to approve herself
    screenshot(olivia, "07-four-eyes-pending")

    oscar = new_page(browser)
    log_in(oscar, live_server, "oscar")
    expect(oscar.locator('[data-banner="reset-pending"]')).to_contain_text("olivia")
    oscar.click("text=Kill-switch controls")
    expect(oscar.locator('[data-state="reset-pending"]')).to_contain_text("Desk confirms the alert was a data error")
    oscar.click("text=Approve kill switch reset")
    expect(oscar.locator(".bo-confirm-what")).to_contain_text("olivia requested this reset")
    screenshot(oscar, "08-four-eyes-approve")
    oscar.fill("#id_reason", "Checked the feeds with olivia")
    oscar.click('[data-confirm="reset"]')
    expect(oscar.locator(".messagelist")).to_contain_text("new orders are accepted again")

    # Olivia's open page loses its banner on the next refresh, without a reload.
    expect(olivia.locator('[data-banner="global-kill-switch"]')).to_have_count(0)
    switch.refresh_from_db()
    assert not switch.active
    reset = RiskEvent.objects.get(kind=RiskEventKind.KILL_SWITCH_RESET)
    assert reset.actor == second_officer and reset.new["requested_by"] == "olivia"
    assert RiskEvent.objects.get(kind=RiskEventKind.KILL_SWITCH_RESET_REQUESTED).actor == officer
