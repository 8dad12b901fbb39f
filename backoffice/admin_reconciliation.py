"""Reconciliation in the admin: runs, breaks (acknowledge, resolve, adjust the ledger), ledger adjustments.

Every change goes through ``orders.services`` (``break_handle``, the
four-eyes ledger adjustment services) behind an ``ObjectAction`` confirmation.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin import DateFieldListFilter
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from backoffice.admin_audit import AuditTrailMixin
from backoffice.admin_orders import ReadOnlyInline
from backoffice.admin_tools import (
    BackofficeModelAdmin,
    LargeTableAdminMixin,
    ObjectAction,
    ReadOnlyAdminMixin,
    ReasonForm,
    badge,
    has_perm,
    quantity,
    timestamp_column,
)
from orders import services
from orders.models import (
    OPEN_BREAK_STATES,
    AdjustmentStatus,
    BreakStatus,
    LedgerAdjustment,
    ReconciliationBreak,
    ReconciliationRun,
)
from orders.services.adjustments import LEDGER_ADJUSTMENT
from risk.approvals import four_eyes_required
from risk.models import RiskEvent, RiskEventKind, Strategy


class BreakInline(ReadOnlyInline):
    model = ReconciliationBreak
    fk_name = "run"  # the run that opened the break
    fields = ["symbol", "broker_qty", "ledger_qty", "status", "handled_by", "note"]
    readonly_fields = fields
    show_change_link = True


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(LargeTableAdminMixin, ReadOnlyAdminMixin, BackofficeModelAdmin):
    list_display = [timestamp_column("at", "at (UTC)"), "positions_checked", "breaks_found", "unknown_orders"]
    list_filter = [("at", DateFieldListFilter)]
    sortable_by = ()
    actions = None
    inlines = [BreakInline]
    fields = [timestamp_column("at", "at (UTC)"), "positions_checked", "breaks_found", "unknown_broker_orders"]
    readonly_fields = fields

    @admin.display(description="broker orders unknown here")
    def unknown_orders(self, run: ReconciliationRun) -> int:
        return len(run.unknown_broker_orders)


def handle_break(status: str) -> Any:
    def run(request: HttpRequest, item: ReconciliationBreak, note: str) -> str:
        services.break_handle(acting_user=request.user, item=item, status=status, note=note)
        return f"Break on {item.symbol} {status}."

    return run


BREAK_KINDS = [
    RiskEventKind.RECONCILIATION_BREAK, RiskEventKind.BREAK_CHANGED, RiskEventKind.BREAK_CLOSED,
    RiskEventKind.BREAK_ACKNOWLEDGED, RiskEventKind.BREAK_RESOLVED, RiskEventKind.LEDGER_ADJUSTED,
]


class AdjustmentForm(ReasonForm):
    """The ledger adjustment an officer enters on a break: which strategy, how many, at what price, why."""

    strategy = forms.ModelChoiceField(queryset=Strategy.objects.none(), help_text="Whose position moves.")
    qty = forms.DecimalField(
        max_digits=20, decimal_places=8,
        help_text="Signed. It must make the ledger equal the broker: the break's difference (broker − ledger).",
    )
    price = forms.DecimalField(max_digits=20, decimal_places=8, min_value=0,
                               help_text="The price of the trade the ledger missed (average cost follows it).")
    field_order = ["strategy", "qty", "price", "reason"]

    def __init__(self, *args: Any, obj: ReconciliationBreak, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        holders = Strategy.objects.filter(positions__symbol=obj.symbol).distinct()
        self.fields["strategy"].queryset = holders if holders.exists() else Strategy.objects.all()  # type: ignore[attr-defined]
        if not self.is_bound:
            self.initial.update(qty=obj.difference)
            if holders.count() == 1:
                self.initial["strategy"] = holders.first()


def adjust_break(request: HttpRequest, item: ReconciliationBreak, data: dict[str, Any]) -> str:
    adjustment = services.ledger_adjustment_request(
        acting_user=request.user, item=item, strategy=data["strategy"], qty=data["qty"], price=data["price"],
        reason=data["reason"],
    )
    if adjustment.status == AdjustmentStatus.PENDING:
        return (f"Ledger adjustment of {item.symbol} requested: a second, different officer must approve it "
                "(Ledger adjustments).")
    return f"Ledger adjusted: {item.symbol} {adjustment.qty:+} for {adjustment.strategy}; the break is resolved."


@admin.register(ReconciliationBreak)
class ReconciliationBreakAdmin(AuditTrailMixin, ReadOnlyAdminMixin, BackofficeModelAdmin):
    list_display = ["symbol", "broker_quantity", "ledger_quantity", "difference", "status_badge", "run",
                    "handled_by", timestamp_column("handled_at", "handled (UTC)"), "note"]
    list_select_related = ["run", "handled_by"]
    list_filter = ["status"]
    search_fields = ["=symbol"]
    actions = None
    fields = ["symbol", "broker_quantity", "ledger_quantity", "difference", "status_badge", "run", "handled_by",
              timestamp_column("handled_at", "handled (UTC)"), "note"]
    readonly_fields = fields
    object_actions = (
        ObjectAction(
            name="acknowledge", label="Acknowledge", run=handle_break(BreakStatus.ACKNOWLEDGED),
            allowed=has_perm("orders.change_reconciliationbreak"),
            available=lambda user, b: b.status == BreakStatus.OPEN,
            explanation="Records that you are looking into it; the break stays unresolved (and halts trading "
                        "if the halt-on-break policy is on).",
            reason_label="Note", reason_help="What you found or are doing; written to the audit trail.",
        ),
        ObjectAction(
            name="adjust", label="Adjust the ledger", run=lambda request, item, reason: "",
            run_with_form=adjust_break, form_class=AdjustmentForm,
            label_for=lambda user, b: "Request a ledger adjustment" if four_eyes_required() else "Adjust the ledger",
            allowed=has_perm(LEDGER_ADJUSTMENT.permission),
            available=lambda user, b: b.status in OPEN_BREAK_STATES
            and not b.adjustments.filter(status=AdjustmentStatus.PENDING).exists(),
            style="danger",
            explanation=lambda user, b: (
                f"Brings the ledger to the broker's truth: a ledger entry of its own, moving one strategy's "
                f"{b.symbol} position by the difference ({b.difference:+}) at the price you give, audited and "
                "alerted; the break is resolved. "
                + ("Four-eyes is on: it applies only when a second, different officer approves it."
                   if four_eyes_required() else "It applies as soon as you confirm.")
            ),
            reason_help="Why the books differ (the trade outside this system, the split ...); written to the "
                        "audit trail with your name.",
        ),
        ObjectAction(
            name="resolve", label="Resolve", run=handle_break(BreakStatus.RESOLVED),
            allowed=has_perm("orders.change_reconciliationbreak"),
            available=lambda user, b: b.status in OPEN_BREAK_STATES, style="primary",
            explanation="Nothing is changed at the broker or in the ledger: resolving records how the "
                        "difference was explained or fixed.",
            reason_label="Note", reason_help="How it was resolved; written to the audit trail.",
        ),
    )

    @admin.display(description="broker − ledger")
    def difference(self, item: ReconciliationBreak) -> Any:
        return quantity(item.difference)

    @admin.display(description="broker qty")
    def broker_quantity(self, item: ReconciliationBreak) -> str:
        return quantity(item.broker_qty)

    @admin.display(description="ledger qty")
    def ledger_quantity(self, item: ReconciliationBreak) -> str:
        return quantity(item.ledger_qty)

    @admin.display(description="status", ordering="status")
    def status_badge(self, item: ReconciliationBreak) -> str:
        level = {BreakStatus.OPEN: "breach", BreakStatus.ACKNOWLEDGED: "warn"}.get(item.status, "ok")
        return badge(item.get_status_display(), level)

    def audit_trail(self, obj: ReconciliationBreak) -> QuerySet[Any]:  # type: ignore[override]
        return RiskEvent.objects.filter(
            Q(old__symbol=obj.symbol) | Q(new__symbol=obj.symbol), kind__in=BREAK_KINDS, at__gte=obj.opened_at,
        ).select_related("strategy")


def decide_adjustment(approve: bool) -> Any:
    def run(request: HttpRequest, adjustment: LedgerAdjustment, reason: str) -> str:
        if approve:
            adjustment = services.ledger_adjustment_approve(acting_user=request.user, adjustment=adjustment,
                                                            reason=reason)
            return f"Ledger adjustment approved and applied: {adjustment}."
        services.ledger_adjustment_reject(acting_user=request.user, adjustment=adjustment, reason=reason)
        return f"Ledger adjustment rejected: {adjustment}. The break stays open."

    return run


@admin.register(LedgerAdjustment)
class LedgerAdjustmentAdmin(ReadOnlyAdminMixin, BackofficeModelAdmin):
    """Adjustments that resolved breaks, and those waiting for a second officer (four-eyes)."""

    list_display = ["symbol", "strategy", "qty", "price", "status_badge", "created_by", "decided_by",
                    timestamp_column("created_at", "proposed (UTC)"), "reason"]
    list_select_related = ["strategy", "created_by", "decided_by"]
    list_filter = ["status"]
    search_fields = ["=symbol"]
    actions = None
    fields = ["reconciliation_break", "symbol", "strategy", "qty", "price", "reason", "status_badge", "created_by",
              "approval_requested_at", "decided_by", "decided_at", "position_qty_before", "position_qty_after",
              "realized_pnl"]
    readonly_fields = fields
    object_actions = (
        ObjectAction(
            name="approve", label="Approve ledger adjustment", run=decide_adjustment(True),
            allowed=has_perm(LEDGER_ADJUSTMENT.permission),
            available=lambda user, a: a.status == AdjustmentStatus.PENDING and LEDGER_ADJUSTMENT.pending_by_other(
                a, user),
            style="danger",
            explanation=lambda user, a: (
                f"{a.created_by} proposed moving {a.strategy}'s {a.symbol} position by {a.qty:+} at {a.price}: "
                f"“{a.reason}”. Approving applies it now (if it still makes the ledger equal the broker) and "
                "resolves the break."
            ),
        ),
        ObjectAction(
            name="reject", label="Reject ledger adjustment", run=decide_adjustment(False),
            allowed=has_perm(LEDGER_ADJUSTMENT.permission),
            available=lambda user, a: a.status == AdjustmentStatus.PENDING and LEDGER_ADJUSTMENT.pending_by_other(
                a, user),
            explanation="Nothing moves; the break stays open and a new adjustment can be proposed.",
        ),
    )

    @admin.display(description="status", ordering="status")
    def status_badge(self, adjustment: LedgerAdjustment) -> str:
        level = {AdjustmentStatus.PENDING: "warn", AdjustmentStatus.REJECTED: "muted"}.get(adjustment.status, "ok")
        return badge(adjustment.get_status_display(), level)

