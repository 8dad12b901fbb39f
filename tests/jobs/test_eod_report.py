"""The end-of-day report: produced after the close by the beat job, kept, e-mailed to the officers, in the admin."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zoneinfo
from decimal import Decimal

import pytest
from django.core import mail

from backoffice.eod import day_window, eod_reports_run
from backoffice.models import EndOfDayReport
from orders.models import Fill
from risk.models import RiskEvent, RiskEventKind
from tests.admin.conftest import logged_in, make_orders
from tests.factories import UserFactory, in_group

pytestmark = pytest.mark.django_db
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
DAY = dt.date(2026, 11, 20)  # a Friday
AFTER_CLOSE = dt.datetime(2026, 11, 20, 16, 30, tzinfo=NEW_YORK)
BEFORE_CLOSE = dt.datetime(2026, 11, 20, 15, 59, tzinfo=NEW_YORK)


@pytest.fixture
def the_day(alpha, beta):
    """alpha: 3 orders (one denied for max_notional), a fill realising +$150; beta: nothing; a global kill switch."""
    begin, _ = day_window(DAY)
    during = begin + dt.timedelta(hours=11)
    orders = make_orders(alpha, 2, prefix="a")
    denied = make_orders(alpha, 1, status="denied", prefix="d")[0]
    denied.violations = [{"code": "max_notional", "message": "too big", "limit": "25000", "actual": "30000"}]
    denied.save()
    from orders.models import Order

    Order.objects.filter(strategy=alpha).update(created_at=during)
    Fill.objects.create(order=orders[0], strategy=alpha, symbol="AAPL", side="sell", qty=Decimal("10"),
                        price=Decimal("115"), cumulative_qty=Decimal("10"), realized_pnl=Decimal("150"), at=during)
    Fill.objects.create(order=orders[1], strategy=alpha, symbol="AAPL", side="buy", qty=Decimal("1"),
                        price=Decimal("100"), cumulative_qty=Decimal("1"), at=during - dt.timedelta(days=1))
    RiskEvent.objects.create(kind=RiskEventKind.KILL_SWITCH_ACTIVATED, actor_label="olivia", at=during)
    return alpha


@pytest.fixture
def officers(db):
    in_group(UserFactory(username="ophelia", email="ophelia@example.com", is_staff=True), "Risk officers")
    in_group(UserFactory(username="otto", email="otto@example.com", is_staff=True), "Risk officers")
    in_group(UserFactory(username="aud", email="aud@example.com", is_staff=True), "Auditors")


def test_nothing_is_produced_before_the_close(the_day, officers):
    assert eod_reports_run(now=BEFORE_CLOSE) == []
    assert not EndOfDayReport.objects.exists()


def test_after_the_close_the_days_report_is_kept_per_strategy_and_emailed_to_the_officers(the_day, officers):
    sent = eod_reports_run(now=AFTER_CLOSE)

    report = EndOfDayReport.objects.get(trading_day=DAY)
    rows = {row["strategy"]: row for row in report.rows}
    assert rows["alpha"] == {
        "strategy": "alpha", "realised_pnl": "150.00", "orders": 3, "fills": 1, "denials": {"max_notional": 1},
        "limit_breaches": 1, "breaks": 0, "kill_switch_events": 0, "breaker_events": 0,
    }
    assert rows["beta"]["orders"] == 0 and rows["beta"]["realised_pnl"] == "0.00"
    assert rows["(account)"]["kill_switch_events"] == 1 and rows["(account)"]["fills"] == 1
    assert sent == [DAY]
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert sorted(message.to) == ["ophelia@example.com", "otto@example.com"]
    assert "End of day 2026-11-20" in message.subject
    assert "alpha: realised P&L $150.00; 3 orders, 1 fills; denials: max_notional 1" in message.body
    name, content, mimetype = message.attachments[0]
    assert (name, mimetype) == ("eod-2026-11-20.csv", "text/csv")
    assert "alpha" in content and "max_notional=1" in content


def test_running_again_keeps_one_report_and_sends_one_email(the_day, officers):
    eod_reports_run(now=AFTER_CLOSE)
    eod_reports_run(now=AFTER_CLOSE + dt.timedelta(minutes=5))

    assert EndOfDayReport.objects.count() == 1
    assert len(mail.outbox) == 1


def test_a_failed_send_stays_pending_and_goes_out_on_the_next_run(the_day, officers, settings):
    settings.EMAIL_BACKEND = "tests.jobs.test_eod_report.RefusingBackend"
    eod_reports_run(now=AFTER_CLOSE)
    assert EndOfDayReport.objects.get().emailed_at is None

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    eod_reports_run(now=AFTER_CLOSE + dt.timedelta(minutes=5))

    report = EndOfDayReport.objects.get()
    assert report.emailed_at is not None and report.emailed_to == ["ophelia@example.com", "otto@example.com"]
    assert len(mail.outbox) == 1


class RefusingBackend:
    def __init__(self, *args, **kwargs) -> None:
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("smtp down")


def test_the_admin_shows_the_report_and_serves_its_csv(the_day, officers, officer, auditor):
    eod_reports_run(now=AFTER_CLOSE)
    report = EndOfDayReport.objects.get()

    for user in (officer, auditor):
        browser = logged_in(user)
        assert "2026-11-20" in browser.get("/admin/backoffice/endofdayreport/").content.decode()
        page = browser.get(f"/admin/backoffice/endofdayreport/{report.pk}/change/").content.decode()
        assert "+$150.00" in page and "max_notional 1" in page
        response = browser.get(f"/admin/backoffice/endofdayreport/{report.pk}/csv/")
        rows = list(csv.DictReader(io.StringIO(response.content.decode())))
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        assert [r["strategy"] for r in rows] == ["alpha", "beta", "(account)"]
        assert rows[0]["realised_pnl"] == "150.00"
