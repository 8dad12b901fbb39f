"""Ledger adjustments: the audited way to bring the ledger to the broker's truth for a break.

An officer names the strategy, the quantity (signed) and the price, and a
reason. The adjustment is a ledger entry of its own (``LedgerAdjustment``),
applied to the strategy's position by the same average-cost rule as a fill and
listed with the position; it must make the ledger equal the broker, so it
resolves the break. Under four-eyes (``KILL_SWITCH_RESET_APPROVALS=2``) the
first officer's adjustment waits for a second, different officer: the one
four-eyes mechanism of ``risk.approvals``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from core.exceptions import BusinessRefusal
from orders.day_start import position_mark_before_fill
from orders.models import (
    OPEN_BREAK_STATES,
    AdjustmentStatus,
    BreakStatus,
    LedgerAdjustment,
    Position,
    ReconciliationBreak,
)
from orders.services.execution import _apply_fill_to_position
from orders.services.reconciliation import _break_close, _qty
from risk import alerts
from risk.approvals import FourEyes, four_eyes_reject, four_eyes_request_or_approve
from risk.models import AlertLevel, RiskEventKind, Strategy
from risk.services import actor_label, risk_event_record

LEDGER_ADJUSTMENT = FourEyes(
    prefix="approval_",
    permission="orders.adjust_ledger",
    requested_event=RiskEventKind.LEDGER_ADJUSTMENT_REQUESTED,
    rejected_event=RiskEventKind.LEDGER_ADJUSTMENT_REJECTED,
    noun="adjustment",
)


class AdjustmentRefused(BusinessRefusal):
    """The adjustment cannot be made as asked (it would not make the ledger equal the broker ...): nothing changed."""


def _require(acting_user: Any) -> None:
    if not (getattr(acting_user, "is_active", False) and acting_user.has_perm(LEDGER_ADJUSTMENT.permission)):
        raise PermissionDenied(f"missing permission {LEDGER_ADJUSTMENT.permission}")


def _decimal(value: Any, name: str) -> Decimal:
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise AdjustmentRefused(f"{name} must be a number") from exc
    if not number.is_finite():
        raise AdjustmentRefused(f"{name} must be a finite number")
    return number


@transaction.atomic
def ledger_adjustment_request(
    *, acting_user: Any, item: ReconciliationBreak, strategy: Strategy, qty: Any, price: Any, reason: str
) -> LedgerAdjustment:
    """Propose (four-eyes) or make an adjustment that resolves ``item``. Returns it, pending or applied."""
    _require(acting_user)
    reason = (reason or "").strip()
    if not reason:
        raise AdjustmentRefused("a reason is required")
    qty, price = _decimal(qty, "qty"), _decimal(price, "price")
    if qty == 0:
        raise AdjustmentRefused("qty must not be 0")
    if price <= 0:
        raise AdjustmentRefused("price must be positive")
    item = ReconciliationBreak.objects.select_for_update().get(pk=item.pk)
    _check_it_closes(item, qty)
    if item.adjustments.filter(status=AdjustmentStatus.PENDING).exists():
        raise AdjustmentRefused("an adjustment of this break already waits for approval: approve or reject it first")
    adjustment = LedgerAdjustment.objects.create(
        reconciliation_break=item, strategy=strategy, symbol=item.symbol, qty=qty, price=price, reason=reason,
        created_by=acting_user,
    )
    if four_eyes_request_or_approve(LEDGER_ADJUSTMENT, adjustment, acting_user=acting_user, reason=reason,
                                    strategy=strategy):
        _apply(adjustment, item, acting_user=acting_user, requested_by=None)
    return adjustment


@transaction.atomic
def ledger_adjustment_approve(*, acting_user: Any, adjustment: LedgerAdjustment, reason: str) -> LedgerAdjustment:
    """A second officer approves a pending adjustment: it applies now (if it still closes the break)."""
    _require(acting_user)
    reason = (reason or "").strip()
    if not reason:
        raise AdjustmentRefused("a reason is required")
    adjustment = LedgerAdjustment.objects.select_for_update().get(pk=adjustment.pk)
    if adjustment.status != AdjustmentStatus.PENDING:
        raise AdjustmentRefused(f"the adjustment is {adjustment.get_status_display().lower()}, not pending")
    item = ReconciliationBreak.objects.select_for_update().get(pk=adjustment.reconciliation_break_id)
    _check_it_closes(item, adjustment.qty)
    requested_by = adjustment.approval_requested_by
    if not four_eyes_request_or_approve(LEDGER_ADJUSTMENT, adjustment, acting_user=acting_user, reason=reason,
                                        strategy=adjustment.strategy):
        return adjustment  # four-eyes was switched on after it was proposed: this is now its request
    _apply(adjustment, item, acting_user=acting_user, requested_by=requested_by)
    return adjustment


@transaction.atomic
def ledger_adjustment_reject(*, acting_user: Any, adjustment: LedgerAdjustment, reason: str) -> LedgerAdjustment:
    _require(acting_user)
    reason = (reason or "").strip()
    if not reason:
        raise AdjustmentRefused("a reason is required")
    adjustment = LedgerAdjustment.objects.select_for_update().get(pk=adjustment.pk)
    four_eyes_reject(LEDGER_ADJUSTMENT, adjustment, acting_user=acting_user, reason=reason,
                     strategy=adjustment.strategy)
    adjustment.status, adjustment.decided_by, adjustment.decided_at = (
        AdjustmentStatus.REJECTED, acting_user, timezone.now()
    )
    adjustment.save(update_fields=["status", "decided_by", "decided_at"])
    return adjustment


def _check_it_closes(item: ReconciliationBreak, qty: Decimal) -> None:
    if item.status not in OPEN_BREAK_STATES:
        raise AdjustmentRefused(f"the break on {item.symbol} is {item.get_status_display().lower()}, not open")
    if qty != item.difference:
        raise AdjustmentRefused(
            f"the adjustment must make the ledger equal the broker: {item.symbol} differs by "
            f"{_qty(item.difference)} (broker {_qty(item.broker_qty)}, ledger {_qty(item.ledger_qty)}), "
            f"not {_qty(qty)}"
        )


def _apply(adjustment: LedgerAdjustment, item: ReconciliationBreak, *, acting_user: Any, requested_by: Any) -> None:
    """Move the position like a fill would, record the entry, resolve the break: one transaction, audited."""
    Position.objects.get_or_create(strategy=adjustment.strategy, symbol=adjustment.symbol)
    position = Position.objects.select_for_update().get(strategy=adjustment.strategy, symbol=adjustment.symbol)
    before = position.qty
    position_mark_before_fill(position, price=adjustment.price, now=timezone.now())
    side = "buy" if adjustment.qty > 0 else "sell"
    realised = _apply_fill_to_position(position, side, abs(adjustment.qty), adjustment.price)
    position.save()
    adjustment.status, adjustment.decided_by, adjustment.decided_at = (
        AdjustmentStatus.APPLIED, acting_user, timezone.now()
    )
    adjustment.position_qty_before, adjustment.position_qty_after = before, position.qty
    adjustment.realized_pnl = realised
    adjustment.save()
    item.ledger_qty = item.broker_qty  # what the ledger now says, summed over strategies
    item.save(update_fields=["ledger_qty"])
    who = actor_label(acting_user) + (f" (requested by {requested_by.get_username()})" if requested_by else "")
    reason = f"ledger adjustment {_qty(adjustment.qty)} {adjustment.symbol} @ {adjustment.price}: {adjustment.reason}"
    _break_close(item, label=None, reason=reason, status=BreakStatus.RESOLVED, acting_user=acting_user)
    new: dict[str, Any] = {
        "symbol": adjustment.symbol, "qty": _qty(adjustment.qty), "price": str(adjustment.price),
        "position_qty": _qty(position.qty), "adjustment": adjustment.pk,
    }
    if requested_by is not None:
        new["requested_by"] = requested_by.get_username()
    risk_event_record(
        kind=RiskEventKind.LEDGER_ADJUSTED, acting_user=acting_user, strategy=adjustment.strategy,
        reason=adjustment.reason, old={"symbol": adjustment.symbol, "position_qty": _qty(before)}, new=new,
    )
    alerts.alert_raise(
        key=f"ledger_adjustment:{adjustment.pk}", level=AlertLevel.WARNING, kind="ledger_correction",
        subject=f"Ledger adjusted: {adjustment.symbol}",
        message=f"{who} moved {adjustment.strategy}'s {adjustment.symbol} position {_qty(before)} -> "
                f"{_qty(position.qty)} at {adjustment.price}: {adjustment.reason}",
        symbol=adjustment.symbol, strategy=adjustment.strategy.slug,
    )
