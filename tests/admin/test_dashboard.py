"""The risk dashboard on the admin index, its JSON refresh, and the banner on every page."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from backoffice import dashboard
from core.models import JobRun
from orders.models import BreakStatus, ReconciliationBreak, ReconciliationRun
from risk import services
from risk.models import EquitySnapshot, KillSwitchSource
from tests.admin.conftest import make_orders

pytestmark = pytest.mark.django_db


def test_it_shows_an_officer_equity_drawdowns_and_limits_on_the_admin_index(officer_client, equity):
    page = officer_client.get("/admin/").content.decode()

    assert "Risk dashboard" in page
    assert "$98,800.00" in page  # equity
    assert "$100,000.00" in page  # day-start equity
    assert "$101,000.00" in page  # peak equity
    assert "1.20 %</strong> <span class=\"bo-quiet\">of 3.00 % limit" in page  # daily drawdown against its limit
    assert "2.18 %</strong> <span class=\"bo-quiet\">of 10.00 % limit" in page  # total drawdown from the peak
    assert 'data-kpi="breaker">CLOSED' in page
    assert 'class="bo-equity"' in page  # the equity chart is drawn server-side
    assert "Activate global kill switch" in page


def test_it_shows_capital_deployed_open_positions_and_working_orders(officer_client, equity, alpha, market):
    make_orders(alpha, 3, status="submitted", prefix="w")
    make_orders(alpha, 1, status="unknown", prefix="u")

    page = officer_client.get("/admin/").content.decode()

    assert "0.40 % ($400.00)" in page  # 4 working buys of 1 AAPL at $100 against $98,800
    assert '<strong>1</strong> <span class="bo-quiet">of 20 limit' in page  # one symbol exposed
    assert 'href="/admin/orders/order/">4</a>' in page
    assert "?status__exact=unknown" in page


def test_it_marks_a_job_that_has_not_succeeded_lately_as_stale(officer_client, equity):
    now = timezone.now()
    JobRun.objects.create(name="order_sync", last_succeeded_at=now - dt.timedelta(seconds=3))
    JobRun.objects.create(name="risk_eval", last_succeeded_at=now - dt.timedelta(seconds=10))
    JobRun.objects.create(name="reconcile", last_succeeded_at=now - dt.timedelta(minutes=10))

    page = officer_client.get("/admin/").content.decode()

    assert 'data-job="order_sync" data-stale="false"' in page
    assert 'data-job="risk_eval" data-stale="false"' in page
    assert 'class="bo-row-breach" data-job="reconcile" data-stale="true"' in page
    assert "10 min ago — stale" in page


def test_it_lists_open_reconciliation_breaks(officer_client, equity):
    run = ReconciliationRun.objects.create(positions_checked=3, breaks_found=2)
    ReconciliationBreak.objects.create(run=run, symbol="MSFT", broker_qty=Decimal("10"), ledger_qty=Decimal("7"))
    ReconciliationBreak.objects.create(
        run=run, symbol="SPY", broker_qty=Decimal("1"), ledger_qty=Decimal("0"), status=BreakStatus.RESOLVED
    )

    page = officer_client.get("/admin/").content.decode()

    assert "MSFT</a>: broker 10 vs ledger 7" in page
    assert "SPY</a>" not in page  # resolved
    assert 'bo-count-breach" href="/admin/orders/reconciliationbreak/?status__in=open,acknowledged">1</a>' in page
    listed = officer_client.get("/admin/orders/reconciliationbreak/?status__in=open,acknowledged").content.decode()
    assert "MSFT" in listed and "SPY" not in listed


def test_the_json_endpoint_returns_the_facts_and_every_panel_for_the_refresh(officer_client, equity):
    response = officer_client.get("/admin/dashboard.json")

    assert response.status_code == 200
    body = response.json()
    assert body["equity"] == "98800.00"
    assert body["daily_drawdown"] == "1.2000"
    assert body["circuit_breaker"] == "closed"
    assert body["kill_switch"]["global_active"] is False
    assert set(body["panels"]) == set(dashboard.PANELS)
    assert "$98,800.00" in body["panels"]["status"]


def test_it_refreshes_what_changed_since_the_page_was_drawn(officer_client, equity):
    officer_client.get("/admin/")
    services.equity_record(equity=Decimal("96500"), day_start_equity=Decimal("100000"))

    body = officer_client.get("/admin/dashboard.json").json()

    assert body["circuit_breaker"] == "tripped"
    assert "TRIPPED" in body["panels"]["status"]
    assert "Circuit breaker TRIPPED" in body["panels"]["banner"]


def test_an_auditor_sees_the_dashboard_but_no_control(auditor_client, equity):
    page = auditor_client.get("/admin/").content.decode()

    assert "$98,800.00" in page
    assert "Activate global kill switch" not in page
    assert auditor_client.get("/admin/dashboard.json").status_code == 200


def test_a_staff_user_without_the_permission_gets_no_dashboard(stan_client, equity):
    page = stan_client.get("/admin/").content.decode()

    assert "$98,800.00" not in page
    assert stan_client.get("/admin/dashboard.json").status_code == 403
    assert stan_client.get("/admin/banner.json").status_code == 403


def test_the_kill_switch_banner_is_on_every_admin_page(officer, officer_client, alpha):
    services.killswitch_activate(acting_user=officer, reason="exchange outage", source=KillSwitchSource.ADMIN)

    for url in ["/admin/", "/admin/orders/order/", "/admin/risk/risklimits/1/change/",
                f"/admin/risk/strategy/{alpha.pk}/change/", "/admin/django_celery_beat/periodictask/"]:
        page = officer_client.get(url).content.decode()
        assert "GLOBAL KILL SWITCH ACTIVE" in page, url
        assert "exchange outage" in page, url
    banner = officer_client.get("/admin/banner.json").json()
    assert banner["global_kill_switch_active"] is True
    assert "GLOBAL KILL SWITCH ACTIVE" in banner["panels"]["banner"]


def test_a_strategy_kill_switch_shows_its_own_banner(officer, officer_client, alpha):
    services.killswitch_activate(acting_user=officer, strategy=alpha, reason="runaway", source=KillSwitchSource.ADMIN)

    page = officer_client.get("/admin/orders/order/").content.decode()

    assert "Kill switch active: strategy alpha" in page
    assert "GLOBAL KILL SWITCH ACTIVE" not in page


# --- The equity chart's selector -------------------------------------------------


def snapshot(at: dt.datetime, equity: str) -> EquitySnapshot:
    return EquitySnapshot.objects.create(at=at, equity=Decimal(equity), day_start_equity=Decimal("100000"),
                                         peak_equity=Decimal("100000"))


def test_the_equity_series_keeps_the_last_snapshot_of_each_bucket_in_one_query():
    hour = timezone.now().replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=3)
    snapshot(hour + dt.timedelta(minutes=1), "100")
    snapshot(hour + dt.timedelta(minutes=59), "101")
    snapshot(hour + dt.timedelta(minutes=61), "102")
    snapshot(hour - dt.timedelta(days=40), "1")  # outside the window

    with CaptureQueriesContext(connection) as queries:
        series = dashboard.equity_series(since=hour - dt.timedelta(days=30), bucket="hour")

    assert [point.equity for point in series] == [Decimal("101"), Decimal("102")]
    assert len(queries) == 1


def test_the_dashboard_reads_the_same_number_of_queries_with_a_long_history(officer_client, equity):
    def queries_for_one_refresh() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert officer_client.get("/admin/dashboard.json").status_code == 200
        return len(queries)

    queries_for_one_refresh()  # warms the cached closed hours, as a first load does
    before = queries_for_one_refresh()
    now = timezone.now()
    EquitySnapshot.objects.bulk_create(
        EquitySnapshot(at=now - dt.timedelta(minutes=15 * i), equity=Decimal("100000"),
                       day_start_equity=Decimal("100000"), peak_equity=Decimal("101000"))
        for i in range(1, 3000)
    )

    assert queries_for_one_refresh() == before


def test_the_closed_days_of_the_history_are_grouped_once_per_day(equity):
    now = timezone.now()
    with CaptureQueriesContext(connection) as first:
        dashboard.equity_history(now=now)
    with CaptureQueriesContext(connection) as second:
        dashboard.equity_history(now=now)

    assert len(first) == 2  # the closed days, then the current one
    assert len(second) == 1  # the current day only: the rest comes from the cache


def test_it_renders_before_the_first_equity_snapshot(officer_client):
    page = officer_client.get("/admin/").content.decode()

    assert 'data-kpi="equity">—' in page
    assert "No equity snapshot in this window yet" in page
    assert officer_client.get("/admin/dashboard.json").status_code == 200


def test_it_lists_pending_resets_of_both_the_kill_switch_and_the_circuit_breaker(officer, officer_client, settings):
    settings.KILL_SWITCH_RESET_APPROVALS = 2
    services.equity_record(equity=Decimal("100000"), day_start_equity=Decimal("100000"))
    services.equity_record(equity=Decimal("96500"), day_start_equity=Decimal("100000"))  # 3.5 %: tripped
    services.killswitch_activate(acting_user=officer, reason="desk halt", source=KillSwitchSource.ADMIN)
    services.killswitch_reset(acting_user=officer, reason="feed is back")
    services.circuit_breaker_reset(acting_user=officer, reason="loss understood")

    page = officer_client.get("/admin/").content.decode()
    body = officer_client.get("/admin/dashboard.json").json()

    assert "Reset of the <strong>global kill switch</strong> requested by <strong>olivia</strong>" in page
    assert "feed is back" in page
    assert 'data-pending-reset="circuit-breaker"' in page
    assert "Reset of the <strong>circuit breaker</strong> requested by <strong>olivia</strong>" in page
    assert "loss understood" in page
    assert body["pending_resets"] == ["global kill switch", "circuit breaker"]


def test_it_lists_no_pending_reset_once_the_second_officer_decided(officer, second_officer, officer_client, settings):
    settings.KILL_SWITCH_RESET_APPROVALS = 2
    services.equity_record(equity=Decimal("100000"), day_start_equity=Decimal("100000"))
    services.equity_record(equity=Decimal("96500"), day_start_equity=Decimal("100000"))
    services.circuit_breaker_reset(acting_user=officer, reason="loss understood")
    services.circuit_breaker_reset_reject(acting_user=second_officer, reason="not yet")

    page = officer_client.get("/admin/").content.decode()

    assert "data-pending-reset" not in page
    assert officer_client.get("/admin/dashboard.json").json()["pending_resets"] == []


def test_each_strategy_shows_its_allocation_daily_loss_and_throttle_in_use(officer_client, equity, alpha, market):
    from risk.models import Strategy

    Strategy.objects.filter(pk=alpha.pk).update(max_allocation_amount=Decimal("500"), max_orders_per_minute=5)
    make_orders(alpha, 4, status="submitted", prefix="w")  # 4 working buys of 1 AAPL at $100, all this minute

    page = officer_client.get("/admin/").content.decode()
    row = page[page.index('data-strategy="alpha"') :]
    row = row[: row.index("</tr>")]

    assert '<span class="bo-badge bo-warn">$400.00</span> of $500.00' in row  # 80 % of the allocation used
    assert '<span class="bo-badge bo-ok">$0.00</span> of −$3,000.00' in row  # 3 % of $100,000 day-start equity
    assert '<span class="bo-badge bo-warn">4</span> of 5/min' in row
    board = officer_client.get("/admin/dashboard.json").json()
    alpha_usage = next(s for s in board["strategies"] if s["strategy"] == "alpha")
    assert (alpha_usage["allocation_used"], alpha_usage["orders_last_minute"]) == ("400.00", 4)


def _chart(page: str, key: str) -> str:
    section = page[page.index(f'data-chart="{key}"'):]
    return section[: section.index("</svg>")]


@pytest.fixture
def five_trading_days(db):
    """Closes over five trading days: $100,000 (flat on its start), up, down, up, and down today.

    Several snapshots a day; only each day's last one is a close. The peak reaches $102,000 the day before.
    """
    from orders.selectors import trading_day_start

    now = timezone.now()
    today = trading_day_start(now)
    # (day offset, [(hour after the day's midnight, equity)], day start equity, peak)
    days = [
        (4, [(10, "99000"), (15, "100000")], "100000", "100000"),
        (3, [(10, "103000"), (15, "101000")], "100000", "103000"),
        (2, [(10, "100000"), (15, "100500")], "101000", "103000"),
        (1, [(10, "101500"), (15, "102000")], "100500", "103000"),
    ]
    rows = [
        EquitySnapshot(at=today - dt.timedelta(days=offset) + dt.timedelta(hours=hour), equity=Decimal(value),
                       day_start_equity=Decimal(start), peak_equity=Decimal(peak))
        for offset, readings, start, peak in days for hour, value in readings
    ]
    rows.append(EquitySnapshot(at=now, equity=Decimal("101200"), day_start_equity=Decimal("102000"),
                               peak_equity=Decimal("103000")))
    EquitySnapshot.objects.bulk_create(rows)


def test_the_30_day_chart_has_one_point_per_trading_day_and_the_peak_line(officer_client, five_trading_days):
    page = officer_client.get("/admin/").content.decode()
    history = _chart(page, "history")

    titles = re.findall(r'<circle class="bo-point"[^>]*><title>([^<]*)</title>', history)
    assert len(titles) == 5  # ten snapshots over five trading days: one point per day, its last
    assert [t.split(": ")[1] for t in titles] == ["$100,000.00", "$101,000.00", "$100,500.00", "$102,000.00",
                                                  "$101,200.00"]
    zone = timezone.now().astimezone(zoneinfo.ZoneInfo("America/New_York")).tzname()
    assert all(f" {zone}: " in t for t in titles)  # every time in the exchange's zone
    assert 'class="bo-threshold bo-th-peak"' in history
    peak_label = history[history.index('class="bo-th-label bo-th-peak"'):]
    assert ">Peak<" in peak_label and "$103,000.00" in peak_label.split("</text>")[1]


def test_the_daily_pnl_bars_show_each_days_change_with_its_sign(officer_client, five_trading_days):
    page = officer_client.get("/admin/").content.decode()
    bars = _chart(page, "daily-pnl")

    assert re.findall(r'data-sign="(\w+)"', bars) == ["flat", "up", "down", "up", "down"]
    changes = [t.split(": ")[1] for t in re.findall(r"<title>([^<]*)</title>", bars)]
    assert changes == ["$0.00", "+$1,000.00", "-$500.00", "+$1,500.00", "-$800.00"]
    assert 'class="bo-zero"' in bars
