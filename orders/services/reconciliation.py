"""Reconciliation: broker positions vs the ledger at consistent cuts; breaks stored, alerted, handled."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from brokers.registry import get_broker
from core.exceptions import BusinessRefusal
from orders.models import OPEN_BREAK_STATES, BreakStatus, Order, Position, ReconciliationBreak, ReconciliationRun
from orders.services.sync import orders_sync
from orders.states import OrderStatus
from risk import alerts
from risk.models import AlertLevel, KillSwitchSource, RiskEventKind
from risk.services import killswitch_activate, risk_event_record

# Orders whose send has no stored outcome yet: the broker may know more than we do.
IN_FLIGHT = (OrderStatus.PENDING, OrderStatus.UNKNOWN)


def _broker_positions() -> dict[str, Decimal]:
    return {p.symbol: p.qty for p in get_broker().list_positions()}


def _symbols_in_flight() -> set[str]:
    """Symbols with an order whose send has no known outcome yet (`pending`, `unknown`).

    The broker may already hold such an order's fills while the ledger cannot
    (the sender has not stored the acknowledgement, or the send was ambiguous
    and waits for its lookup), so that symbol's difference is not judged yet.
    """
    return set(
        Order.objects.filter(status__in=IN_FLIGHT).values_list("symbol", flat=True).distinct()
    )


def _ledger_positions() -> dict[str, Decimal]:
    return {row["symbol"]: row["total"] for row in Position.objects.values("symbol").annotate(total=Sum("qty"))}


@dataclass
class _Cut:
    differences: dict[str, tuple[Decimal, Decimal]]  # symbol -> (broker, ledger)
    moving: list[str]
    checked: int
    unknown_open: list[dict[str, str]]


def _compare_at_a_cut(*, label: str, report_unknown_open: bool) -> _Cut:
    """Broker vs ledger at a consistent cut.

    Broker positions are read, the ledger is synced, and broker positions are
    read again. A symbol whose broker quantity did not move in between is
    judged (every fill before the second read is in the ledger); one that moved
    is trading right now and is reported as unconfirmed, never as a break. The
    sync's open listing can also yield the open broker orders we do not know.
    A symbol with an order in flight (sent, outcome not yet stored) at either
    end of the cut is unconfirmed too: its fills may be at the broker before
    the ledger can know them.
    """
    in_flight = _symbols_in_flight()
    before = _broker_positions()
    sync = orders_sync(label=label, report_unknown_open=report_unknown_open, drive=False)
    ledger = _ledger_positions()
    after = _broker_positions()
    in_flight |= _symbols_in_flight()
    zero = Decimal(0)
    symbols = set(before) | set(after) | set(ledger)
    moving = sorted(s for s in symbols if before.get(s, zero) != after.get(s, zero) or s in in_flight)
    differences = {
        s: (after.get(s, zero), ledger.get(s, zero))
        for s in symbols
        if s not in moving and after.get(s, zero) != ledger.get(s, zero)
    }
    return _Cut(differences, moving, len(symbols), sync.unknown_open)


@dataclass
class ReconcileResult:
    run: ReconciliationRun
    breaks: list[ReconciliationBreak]


def _qty(value: Decimal) -> str:
    return format(value.normalize(), "f")


def positions_reconcile(*, label: str = "job:reconcile") -> ReconcileResult:
    """Broker positions vs the ledger summed over strategies, per symbol.

    A difference must hold at two consistent cuts in a row before it is
    recorded as a break: a fill the ledger has not polled yet is not a break.
    Breaks are stored, alerted and shown; never "fixed" here.
    """
    first = _compare_at_a_cut(label=label, report_unknown_open=True)
    differences, moving, checked = first.differences, first.moving, first.checked
    if differences:
        again = _compare_at_a_cut(label=label, report_unknown_open=False)
        differences = {s: v for s, v in again.differences.items() if s in differences}
        moving = sorted(set(moving) | set(again.moving))
        checked = again.checked
    unknown_broker_orders = first.unknown_open  # from the first cut's open listing, seconds old
    with transaction.atomic():
        run = ReconciliationRun.objects.create(
            positions_checked=checked, breaks_found=len(differences), unknown_broker_orders=unknown_broker_orders,
            unconfirmed_symbols=moving,
        )
        breaks, news = _breaks_update(run, differences, moving, label=label)
        _alert_unknown_broker_orders(unknown_broker_orders)
        if news and settings.HALT_ON_RECONCILIATION_BREAK:
            # Only a break that opens or changes halts: an officer's reset of the
            # switch while a known break persists is not undone every minute.
            killswitch_activate(
                acting_user=None,
                job="reconcile",
                source=KillSwitchSource.RECONCILIATION,
                reason=f"{len(breaks)} unresolved reconciliation break(s)",
            )
    return ReconcileResult(run=run, breaks=breaks)


def break_alert_key(symbol: str) -> str:
    return f"break:{symbol}"


def _describe(item: ReconciliationBreak) -> str:
    return f"{item.symbol}: broker {_qty(item.broker_qty)} vs ledger {_qty(item.ledger_qty)}"


def _breaks_update(
    run: ReconciliationRun, differences: dict[str, tuple[Decimal, Decimal]], moving: list[str], *, label: str
) -> tuple[list[ReconciliationBreak], int]:
    """The life cycle: one open break per symbol, updated while it persists, closed when it is gone.

    Returns the open breaks this run saw and how many opened or changed.
    """
    now = timezone.now()
    open_breaks = {
        item.symbol: item
        for item in ReconciliationBreak.objects.select_for_update().filter(status__in=OPEN_BREAK_STATES)
    }
    seen: list[ReconciliationBreak] = []
    news = 0
    for symbol, (broker, ledger) in sorted(differences.items()):
        item = open_breaks.get(symbol)
        quantities = {"symbol": symbol, "broker_qty": _qty(broker), "ledger_qty": _qty(ledger)}
        if item is None:
            item = ReconciliationBreak.objects.create(
                run=run, last_run=run, symbol=symbol, broker_qty=broker, ledger_qty=ledger, opened_at=now,
                changed_at=now,
            )
            risk_event_record(kind=RiskEventKind.RECONCILIATION_BREAK, acting_user=None, label=label,
                              reason=_describe(item), new=quantities)
            news += 1
        elif (item.broker_qty, item.ledger_qty) != (broker, ledger):
            old = {"symbol": symbol, "broker_qty": _qty(item.broker_qty), "ledger_qty": _qty(item.ledger_qty)}
            item.broker_qty, item.ledger_qty, item.changed_at, item.last_run = broker, ledger, now, run
            item.save(update_fields=["broker_qty", "ledger_qty", "changed_at", "last_run"])
            risk_event_record(kind=RiskEventKind.BREAK_CHANGED, acting_user=None, label=label,
                              reason=_describe(item), old=old, new=quantities)
            news += 1
        else:
            item.last_run = run
            item.save(update_fields=["last_run"])
        seen.append(item)
        # Said once per difference; while it stays the same, at most a daily reminder.
        alerts.alert_raise(
            key=break_alert_key(symbol), level=AlertLevel.CRITICAL, kind="reconciliation_break",
            subject=f"Reconciliation break: {symbol}",
            message=f"{_describe(item)} (difference {_qty(item.difference)}), open since "
                    f"{item.opened_at:%Y-%m-%d %H:%M} UTC. Resolve it with a ledger adjustment in the admin.",
            symbol=symbol, state=f"{_qty(broker)}|{_qty(ledger)}", remind_after=alerts.DAILY,
        )
    for symbol, item in open_breaks.items():
        if symbol in differences or symbol in moving:
            continue  # still there, or not judged this time
        _break_close(item, label=label, reason="the difference disappeared: broker and ledger agree",
                     status=BreakStatus.CLOSED, acting_user=None)
    return seen, news


def _break_close(
    item: ReconciliationBreak, *, label: str | None, reason: str, status: str, acting_user: Any | None
) -> None:
    """An open break ends (locked by the caller): audited, and its alert condition cleared."""
    old_status = item.status
    item.status, item.closed_at = status, timezone.now()
    if acting_user is not None:
        item.handled_by, item.handled_at, item.note = acting_user, item.closed_at, reason
    item.save()
    kind = RiskEventKind.BREAK_CLOSED if status == BreakStatus.CLOSED else RiskEventKind.BREAK_RESOLVED
    risk_event_record(kind=kind, acting_user=acting_user, label=label, reason=reason,
                      old={"status": old_status, "symbol": item.symbol}, new={"status": status})
    alerts.alert_clear(key=break_alert_key(item.symbol))


def _alert_unknown_broker_orders(unknown: list[dict[str, str]]) -> None:
    if not unknown:
        alerts.alert_clear(key="unknown_broker_orders")
        return
    ids = sorted(str(o.get("broker_order_id") or o.get("id") or o) for o in unknown)
    alerts.alert_raise(
        key="unknown_broker_orders", level=AlertLevel.CRITICAL, kind="reconciliation_break",
        subject="Open broker orders unknown to this system",
        message=f"{len(unknown)} open broker order(s) are not ours: {', '.join(ids[:10])}",
        state=",".join(ids), remind_after=alerts.DAILY,
    )


class BreakHandlingRefused(BusinessRefusal):
    """A break cannot be handled this way (no note, an unknown status): nothing changed."""


@transaction.atomic
def break_handle(*, acting_user: Any, item: ReconciliationBreak, status: str, note: str) -> ReconciliationBreak:
    """Acknowledge or resolve a break, with a note, audited."""
    if not acting_user.has_perm("orders.change_reconciliationbreak"):
        from django.core.exceptions import PermissionDenied

        raise PermissionDenied("missing permission orders.change_reconciliationbreak")
    note = (note or "").strip()
    if not note:
        raise BreakHandlingRefused("a note is required")
    if status not in {BreakStatus.ACKNOWLEDGED, BreakStatus.RESOLVED}:
        raise BreakHandlingRefused("status must be acknowledged or resolved")
    item = ReconciliationBreak.objects.select_for_update().get(pk=item.pk)
    old = item.status
    item.status, item.note, item.handled_by, item.handled_at = status, note, acting_user, timezone.now()
    if status == BreakStatus.RESOLVED:
        item.closed_at = item.handled_at
        alerts.alert_clear(key=break_alert_key(item.symbol))
    item.save()
    kind = RiskEventKind.BREAK_RESOLVED if status == BreakStatus.RESOLVED else RiskEventKind.BREAK_ACKNOWLEDGED
    risk_event_record(
        kind=kind,
        acting_user=acting_user,
        reason=note,
        old={"status": old, "symbol": item.symbol},
        new={"status": status},
    )
    return item
