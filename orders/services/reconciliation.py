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
from orders.models import BreakStatus, Order, Position, ReconciliationBreak, ReconciliationRun
from orders.services.sync import orders_sync
from orders.states import OrderStatus
from risk import alerts
from risk.models import KillSwitchSource, RiskEventKind
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
    sync = orders_sync(label=label, report_unknown_open=report_unknown_open)
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
        breaks = [
            ReconciliationBreak.objects.create(run=run, symbol=symbol, broker_qty=broker, ledger_qty=ledger)
            for symbol, (broker, ledger) in sorted(differences.items())
        ]
        for item in breaks:
            risk_event_record(
                kind=RiskEventKind.RECONCILIATION_BREAK, acting_user=None, label=label,
                reason=f"{item.symbol}: broker {_qty(item.broker_qty)} vs ledger {_qty(item.ledger_qty)}",
                new={"symbol": item.symbol, "broker_qty": _qty(item.broker_qty), "ledger_qty": _qty(item.ledger_qty)},
            )
        if breaks or unknown_broker_orders:
            summary = "; ".join(
                f"{b.symbol}: broker {_qty(b.broker_qty)} vs ledger {_qty(b.ledger_qty)}" for b in breaks
            )
            if unknown_broker_orders:
                summary += f"; {len(unknown_broker_orders)} open broker orders unknown to this system"
            transaction.on_commit(lambda: alerts.alert("Reconciliation break", summary.strip("; ")))
        if breaks and settings.HALT_ON_RECONCILIATION_BREAK:
            killswitch_activate(
                acting_user=None,
                job="reconcile",
                source=KillSwitchSource.RECONCILIATION,
                reason=f"{len(breaks)} unresolved reconciliation break(s)",
            )
    return ReconcileResult(run=run, breaks=breaks)


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
