"""Every admin page a risk officer opens, in a real browser at 1440x900: readable, and no console error.

Chromium (Debian's, headless) against pytest-django's live server. The run
saves screenshots of the dashboard, positions, strategies, fills and the
end-of-day report under var/screenshots/.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from backoffice.eod import eod_report_produce
from backoffice.models import EndOfDayReport
from core.models import JobRun
from orders.models import Order, Position, ReconciliationBreak, ReconciliationRun
from orders.services import order_apply_broker_update
from tests.admin.browser import log_in, new_page, screenshot
from tests.jobs.helpers import working_book

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LAPTOP = {"width": 1440, "height": 900}


@pytest.fixture
def book(equity_history, alpha, beta, market) -> list[Order]:
    """A book mid-session: working orders, fills and positions in two strategies, jobs that ran, one break."""
    from brokers import types as bt

    orders = working_book(alpha, 30, symbol="AAPL", limit_price="95") + working_book(beta, 5, symbol="MSFT")
    for order, qty in ((orders[0], "1"), (orders[30], "1")):
        order_apply_broker_update(
            broker_order=bt.BrokerOrder(
                broker_order_id=order.broker_order_id, client_order_id=order.client_order_id, symbol=order.symbol,
                side=bt.Side.BUY, qty=order.qty, status="filled", filled_qty=Decimal(qty),
                filled_avg_price=order.limit_price, type=bt.OrderType.LIMIT, time_in_force=bt.TimeInForce.GTC,
                limit_price=order.limit_price, updated_at=timezone.now(), submitted_at=timezone.now(),
            ),
            label="test",
        )
    Position.objects.filter(symbol="AAPL").update(qty=Decimal("1234.5"), avg_price=Decimal("95.125"))
    for order in Order.objects.all():  # the ids the API makes when a client sends none: 32 characters
        Order.objects.filter(pk=order.pk).update(client_order_id=uuid.uuid4().hex)
    now = timezone.now()
    for name in ("order_sync", "risk_eval", "reconcile"):
        JobRun.objects.create(name=name, last_succeeded_at=now - dt.timedelta(seconds=5))
    run = ReconciliationRun.objects.create(positions_checked=2, breaks_found=1, at=now - dt.timedelta(minutes=1))
    ReconciliationBreak.objects.create(run=run, symbol="MSFT", broker_qty=Decimal("2"), ledger_qty=Decimal("1"))
    eod_report_produce(trading_day=timezone.now().date())
    return orders


def _errors_on(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def _admin_pages(book: list[Order]) -> list[str]:
    """The index, every registered model's list, and the change page of one row of each that has rows."""
    pages = [reverse("admin:index")]
    for model in admin.site._registry:
        opts = model._meta
        pages.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        first = model._default_manager.order_by("pk").first()
        if first is not None:
            pages.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[first.pk]))
    return pages


def test_no_admin_page_logs_a_console_error(browser, live_server, superuser_named_root, book):
    page = new_page(browser, **LAPTOP)
    errors = _errors_on(page)
    log_in(page, live_server, "root")

    broken: dict[str, list[str]] = {}
    for path in _admin_pages(book):
        errors.clear()
        response = page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        assert response is not None and response.status == 200, (path, response and response.status)
        if errors:
            broken[path] = list(errors)

    assert broken == {}


def test_the_order_list_shows_status_and_fills_without_scrolling_on_a_laptop(browser, live_server, officer, book):
    page = new_page(browser, **LAPTOP)
    errors = _errors_on(page)
    log_in(page, live_server, "olivia")

    page.goto(f"{live_server.url}{reverse('admin:orders_order_changelist')}")
    screenshot(page, "orders-1440")

    for column in ("status_badge", "filled", "average_fill", "broker_order_id"):
        # Visible means: the element the browser finds at the header's right edge is that header
        # (not clipped by the list's own horizontal scroll, not off the window).
        shown = page.evaluate(
            """(selector) => {
                const th = document.querySelector(selector);
                const box = th.getBoundingClientRect();
                const hit = document.elementFromPoint(box.right - 2, box.top + box.height / 2);
                return box.right <= window.innerWidth && hit !== null && th.contains(hit);
            }""",
            f"#result_list thead th.column-{column}",
        )
        assert shown, f"{column} is not visible without scrolling at 1440x900"
    assert page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]
    assert page.evaluate("(() => { const r = document.querySelector('.results'); "
                         "return r.scrollWidth <= r.clientWidth; })()"), "the list scrolls sideways"
    assert errors == []


def test_screenshots_of_dashboard_positions_strategies_fills_and_the_eod_report(browser, live_server, officer, book):
    page = new_page(browser, **LAPTOP)
    errors = _errors_on(page)
    log_in(page, live_server, "olivia")

    shots = {}
    for name, path in (
        ("dashboard", reverse("admin:index")),
        ("positions", reverse("admin:orders_position_changelist")),
        ("strategies", reverse("admin:risk_strategy_changelist")),
        ("fills", reverse("admin:orders_fill_changelist")),
        ("eod-report", reverse("admin:backoffice_endofdayreport_change", args=[EndOfDayReport.objects.get().pk])),
    ):
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        shots[name] = screenshot(page, f"1440-{name}")

    assert all(path.stat().st_size > 10_000 for path in shots.values()), shots
    assert errors == []
