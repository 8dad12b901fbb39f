"""The end-of-day report: produced after the close by a beat job, stored, e-mailed to the officers.

A trading day is the exchange's (America/New_York, ``trading_day_start``).
Every figure is read from stored rows (fills, orders, risk events, breaks),
so producing the report again would give the same numbers: it is produced
once and kept. The e-mail is an intent stored on the row (``emailed_at``
empty) and sent by the same job until it succeeds.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import zoneinfo
from collections import Counter
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from backoffice.models import EndOfDayReport
from orders.models import Fill, Order, ReconciliationBreak
from orders.selectors import trading_day_start
from orders.states import OrderStatus
from risk.models import RiskEvent, RiskEventKind, Strategy

logger = logging.getLogger(__name__)
K = RiskEventKind
KILL_SWITCH_KINDS = {K.KILL_SWITCH_ACTIVATED, K.KILL_SWITCH_RESET_REQUESTED, K.KILL_SWITCH_RESET_REJECTED,
                     K.KILL_SWITCH_RESET}
BREAKER_KINDS = {K.BREAKER_CHANGED, K.BREAKER_RESET_REQUESTED, K.BREAKER_RESET_REJECTED, K.BREAKER_RESET}
ACCOUNT = "(account)"
CSV_COLUMNS = ["strategy", "realised_pnl", "orders", "fills", "denials", "limit_breaches", "breaks",
               "kill_switch_events", "breaker_events"]
OFFICERS_GROUP = "Risk officers"


def _exchange() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.TRADING_DAY_TIME_ZONE)


def day_window(trading_day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(trading_day, dt.time(12), tzinfo=_exchange())  # noon: never a DST edge
    begin = trading_day_start(start)
    return begin, trading_day_start(begin + dt.timedelta(hours=36))


def report_due(now: dt.datetime) -> dt.date | None:
    """The trading day whose report is due at ``now``: today once the close is past (weekdays), else None."""
    local = now.astimezone(_exchange())
    hour, minute = (int(part) for part in settings.EOD_REPORT_AFTER.split(":"))
    if local.weekday() >= 5 or (local.hour, local.minute) < (hour, minute):
        return None
    return local.date()


def _rows(trading_day: dt.date) -> list[dict[str, Any]]:
    begin, end = day_window(trading_day)
    slugs = list(Strategy.objects.order_by("slug").values_list("slug", flat=True))
    fills = Fill.objects.filter(at__gte=begin, at__lt=end)
    pnl = dict(fills.values_list("strategy__slug").annotate(total=Sum("realized_pnl")).values_list(
        "strategy__slug", "total"))
    fill_counts = dict(fills.values_list("strategy__slug").annotate(n=Count("id")).values_list("strategy__slug", "n"))
    orders = Order.objects.filter(created_at__gte=begin, created_at__lt=end)
    order_counts = dict(orders.values_list("strategy__slug").annotate(n=Count("id")).values_list(
        "strategy__slug", "n"))
    denials: dict[str, Counter[str]] = {slug: Counter() for slug in slugs}
    for slug, violations in orders.filter(status=OrderStatus.DENIED).values_list("strategy__slug", "violations"):
        denials.setdefault(slug, Counter()).update(v.get("code", "unknown") for v in violations or [])
    events = RiskEvent.objects.filter(at__gte=begin, at__lt=end)
    by_strategy: dict[str, Counter[str]] = {}
    for slug, kind in events.values_list("strategy__slug", "kind"):
        key = slug or ACCOUNT
        group = "kill_switch" if kind in KILL_SWITCH_KINDS else "breaker" if kind in BREAKER_KINDS else None
        if group:
            by_strategy.setdefault(key, Counter())[group] += 1
    breaks = ReconciliationBreak.objects.filter(run__at__gte=begin, run__at__lt=end).count()
    rows = []
    for slug in slugs:
        codes = denials.get(slug, Counter())
        rows.append({
            "strategy": slug,
            "realised_pnl": str((pnl.get(slug) or Decimal(0)).quantize(Decimal("0.01"))),
            "orders": order_counts.get(slug, 0),
            "fills": fill_counts.get(slug, 0),
            "denials": dict(sorted(codes.items())),
            # A breach is a limit the pre-trade check held: every violation of a denied order.
            "limit_breaches": sum(codes.values()),
            "breaks": 0,  # reconciliation compares the account, not a strategy
            "kill_switch_events": by_strategy.get(slug, Counter())["kill_switch"],
            "breaker_events": 0,
        })
    account = by_strategy.get(ACCOUNT, Counter())
    rows.append({
        "strategy": ACCOUNT,
        "realised_pnl": str(sum((Decimal(r["realised_pnl"]) for r in rows), Decimal(0)).quantize(Decimal("0.01"))),
        "orders": sum(r["orders"] for r in rows),
        "fills": sum(r["fills"] for r in rows),
        "denials": dict(sorted(sum((Counter(r["denials"]) for r in rows), Counter()).items())),
        "limit_breaches": sum(r["limit_breaches"] for r in rows),
        "breaks": breaks,
        "kill_switch_events": account["kill_switch"] + sum(r["kill_switch_events"] for r in rows),
        "breaker_events": account["breaker"],
    })
    return rows


def eod_report_produce(*, trading_day: dt.date) -> EndOfDayReport:
    """Store the day's report once (a second run, or a racing worker, returns the stored one)."""
    existing = EndOfDayReport.objects.filter(trading_day=trading_day).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return EndOfDayReport.objects.create(trading_day=trading_day, rows=_rows(trading_day))
    except IntegrityError:  # the unique day: another worker stored it first
        return EndOfDayReport.objects.get(trading_day=trading_day)


def report_csv(report: EndOfDayReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["trading_day", *CSV_COLUMNS])
    for row in report.rows:
        denials = ";".join(f"{code}={n}" for code, n in row["denials"].items())
        writer.writerow([f"{report.trading_day:%Y-%m-%d}", *[denials if c == "denials" else row[c]
                                                             for c in CSV_COLUMNS]])
    return out.getvalue()


def _officer_emails() -> list[str]:
    users = get_user_model().objects.filter(groups__name=OFFICERS_GROUP, is_active=True).exclude(email="")
    return sorted(set(users.values_list("email", flat=True)))


def _body(report: EndOfDayReport) -> str:
    lines = [f"End of day {report.trading_day:%Y-%m-%d} ({settings.TRADING_DAY_TIME_ZONE})", ""]
    for row in report.rows:
        denials = ", ".join(f"{code} {n}" for code, n in row["denials"].items()) or "none"
        lines.append(
            f"{row['strategy']}: realised P&L ${Decimal(row['realised_pnl']):,.2f}; {row['orders']} orders, "
            f"{row['fills']} fills; denials: {denials}; breaks {row['breaks']}; "
            f"kill-switch events {row['kill_switch_events']}; breaker events {row['breaker_events']}"
        )
    lines += ["", "The same figures are attached as CSV and kept in the admin (End-of-day reports)."]
    return "\n".join(lines)


def eod_report_email(*, report_id: int) -> bool:
    """Send a stored report to the officers once; False (and still pending) when the send fails."""
    report = EndOfDayReport.objects.get(pk=report_id)
    if report.emailed_at is not None:
        return True
    recipients = _officer_emails()
    if not recipients:
        logger.warning("end-of-day report %s: no risk officer has an e-mail address", report.trading_day)
        return False
    message = EmailMessage(
        subject=f"[back office] End of day {report.trading_day:%Y-%m-%d}",
        body=_body(report),
        from_email=settings.SERVER_EMAIL,
        to=recipients,
    )
    message.attach(f"eod-{report.trading_day:%Y-%m-%d}.csv", report_csv(report), "text/csv")
    try:
        message.send(fail_silently=False)
    except Exception as exc:  # noqa: BLE001  (any transport failure leaves the intent for the next run)
        logger.warning("end-of-day report %s: e-mail failed (%s); retried next run", report.trading_day,
                       type(exc).__name__)
        return False
    EndOfDayReport.objects.filter(pk=report.pk, emailed_at__isnull=True).update(
        emailed_at=timezone.now(), emailed_to=recipients
    )
    return True


def eod_reports_run(*, now: dt.datetime) -> list[dt.date]:
    """The beat job: produce the day's report once the close is past, and send every report not yet sent."""
    due = report_due(now)
    if due is not None:
        eod_report_produce(trading_day=due)
    sent = []
    for report_id, day in EndOfDayReport.objects.filter(emailed_at__isnull=True).values_list("id", "trading_day"):
        if eod_report_email(report_id=report_id):
            sent.append(day)
    return sent
