"""Risk in the admin: limits, strategies, kill switches, the circuit breaker, and their audit trail.

Every change goes through ``risk.services``: a limit form's save calls
``limit_update`` / ``strategy_update`` with the form's required reason, and
every control (activate, reset, approve, reject, pause, resume, paper/live)
is an ``ObjectAction``: a confirmation page with a reason, a permission
check on the request itself, then the service, which checks again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import DateFieldListFilter
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models import F, Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from backoffice import dashboard
from backoffice.admin_exports import CsvExportMixin
from backoffice.admin_tools import (
    REFUSALS,
    BackofficeModelAdmin,
    LargeTableAdminMixin,
    ObjectAction,
    ReadOnlyAdminMixin,
    SingletonAdminMixin,
    has_perm,
    refusal_message,
    timestamp,
    timestamp_column,
)
from backoffice.jobs import job_status
from core.models import JobRun
from orders.models import BreakStatus
from orders.selectors import risk_picture
from risk import services
from risk.approvals import FourEyes, four_eyes_required
from risk.checks import drawdown_pct
from risk.models import (
    Alert,
    BreakerState,
    EquitySnapshot,
    KillSwitch,
    KillSwitchSource,
    Mode,
    RestrictedSymbol,
    RiskEvent,
    RiskEventKind,
    RiskLimits,
    RiskState,
    Strategy,
)

K = RiskEventKind

# How fields read in forms and in the audit trail ("old -> new").
LIMIT_LABELS = {
    "daily_drawdown_warning_pct": "Daily drawdown warning (%)",
    "max_daily_drawdown_pct": "Max daily drawdown (%)",
    "max_total_drawdown_pct": "Max total drawdown (%)",
    "max_capital_deployed_pct": "Max capital deployed (% of equity)",
    "max_open_positions": "Max open positions",
    "max_risk_per_trade_pct": "Max risk per trade (% of equity)",
    "max_notional": "Max notional per order ($)",
    "max_price_deviation_pct": "Max price deviation from last (%)",
    "min_stock_price": "Min stock price ($)",
    "assumed_stop_distance_pct": "Assumed stop distance (%)",
    "max_order_qty": "Max quantity per order (shares)",
    "max_symbol_concentration_pct": "Max symbol concentration (% of equity)",
    "duplicate_order_max": "Identical orders allowed in the window",
    "duplicate_order_window_s": "Duplicate-order window (seconds)",
    "allow_short_selling": "Allow short selling",
    "market_closed_policy": "When the market is closed",
}
STRATEGY_LABELS = {
    "name": "Name",
    "max_allocation_amount": "Max allocation ($)",
    "max_allocation_pct": "Max allocation (% of equity)",
    "max_daily_loss_pct": "Max daily loss (% of day-start equity)",
    "max_orders_per_second": "Max orders per second",
    "max_orders_per_minute": "Max orders per minute",
}
CHANGE_LABELS = {**LIMIT_LABELS, **STRATEGY_LABELS, "paused": "Paused", "mode": "Mode", "active": "Active",
                 "state": "Breaker state", "status": "Status"}

REASON_HELP = "Why: written to the audit trail with your name, the time and every old → new value."
KILL_SWITCH_KINDS = [
    K.KILL_SWITCH_ACTIVATED, K.KILL_SWITCH_RESET_REQUESTED, K.KILL_SWITCH_RESET_REJECTED, K.KILL_SWITCH_RESET
]
BREAKER_KINDS = [K.BREAKER_CHANGED, K.BREAKER_RESET_REQUESTED, K.BREAKER_RESET_REJECTED, K.BREAKER_RESET]


MONEY_KEYS = {"max_notional", "min_stock_price", "max_allocation_amount", "equity", "day_start_equity", "peak_equity"}
CHOICE_LABELS: dict[str, dict[str, str]] = {
    "mode": dict(Mode.choices), "state": dict(BreakerState.choices), "status": dict(BreakStatus.choices),
}


def human_value(key: str, value: Any) -> str:
    """How a stored value reads to an officer: "yes"/"no", "$25,000.00", "2.5 %", a choice's label."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in CHOICE_LABELS:
        return CHOICE_LABELS[key].get(str(value), str(value))
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return str(value)
    if key in MONEY_KEYS:
        return dashboard.money(number)
    if key.endswith("_pct"):
        return f"{format(number.normalize(), 'f')} %"
    return format(number.normalize(), "f") if not isinstance(value, int) else f"{value:,}"


def describe_changes(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str, str]]:
    """[(label, old, new)] for every key of ``new``, old "" when the event carried none (a fact, not a change)."""
    return [
        (CHANGE_LABELS.get(key, key.replace("_", " ").capitalize()),
         "" if key not in old else human_value(key, old[key]), human_value(key, value))
        for key, value in new.items()
    ]


def changes_html(event: RiskEvent) -> str:
    return format_html_join(
        "",
        '<div class="change"><span class="field">{}</span>{}<strong>{}</strong></div>',
        ((label, f" {old} → " if old else ": ", new) for label, old, new in describe_changes(event.old, event.new)),
    )


def changes_message(old_values: dict[str, Any], instance: Model, names: list[str]) -> str:
    return "; ".join(f"{CHANGE_LABELS.get(n, n)} {old_values[n]} → {getattr(instance, n)}" for n in names)


def _explained(name: str, validator: MinValueValidator | MaxValueValidator) -> MinValueValidator | MaxValueValidator:
    """The model's own bound, with a message that says what a valid value is."""
    limit = validator.limit_value
    if name.endswith("_pct"):
        # %% because validator messages are %-formatted.
        message = ("A percentage cannot be negative." if isinstance(validator, MinValueValidator)
                   else "A percentage is at most 100 (type 3 for 3 %%, not 0.03).")
    elif isinstance(validator, MaxValueValidator):
        return validator
    elif isinstance(limit, Decimal) and name.endswith("_qty"):
        message = "Must be a positive quantity."
    elif isinstance(limit, Decimal):
        message = "Must be a positive dollar amount." if limit > 0 else "Cannot be negative."
    else:
        message = f"Must be at least {limit}."
    return type(validator)(limit, message)


def explain_fields(form: forms.ModelForm, labels: dict[str, str]) -> None:  # type: ignore[type-arg]
    """Labels with units, and the model's bounds checked by the form with messages that explain themselves.

    (The model checks its bounds again when the service saves; the form's
    check only comes first, so its message is the one the officer reads.)
    """
    model = form._meta.model
    for name, field in form.fields.items():
        field.label = labels.get(name, field.label)
        if name not in labels:
            continue
        bounds = model._meta.get_field(name).validators
        field.validators = [
            *field.validators,
            *(_explained(name, v) for v in bounds if isinstance(v, MinValueValidator | MaxValueValidator)),
        ]
        if name.endswith("_pct"):
            field.widget.attrs.update(min="0", max="100", step="0.01")


AUDIT_ROWS_SHOWN = 20


class AuditTrailMixin:
    """The RiskEvent rows about an object, shown under its form, newest first."""

    def audit_trail(self, obj: Any) -> QuerySet[RiskEvent] | None:
        return None

    def audit_rows(self, obj: Any) -> list[dict[str, Any]] | None:
        trail = self.audit_trail(obj)
        if trail is None:
            return None
        return [{"event": event, "changes": changes_html(event)} for event in trail[:AUDIT_ROWS_SHOWN]]


class ReasonedChangeAdmin(AuditTrailMixin, BackofficeModelAdmin):
    """A change form whose save calls a service with the form's reason; refusals stay on the page."""

    editable_fields: tuple[str, ...] = ()

    def get_fieldsets(self, request: HttpRequest, obj: Model | None = None) -> Any:
        fieldsets = list(super().get_fieldsets(request, obj))
        if not self.has_change_permission(request, obj):
            # View-only (auditors): no reason box for a form they cannot submit.
            fieldsets = [
                (name, {**opts, "fields": [f for f in opts["fields"] if f != "reason"]}) for name, opts in fieldsets
            ]
        return fieldsets

    def save_service(self, request: HttpRequest, obj: Model, changes: dict[str, Any], reason: str) -> None:
        raise NotImplementedError

    def save_model(self, request: HttpRequest, obj: Model, form: forms.ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        names = [n for n in form.changed_data if n in self.editable_fields]
        if not names:
            messages.info(request, "Nothing changed: no limit was modified.")
            request._service_refused = True  # type: ignore[attr-defined]
            return
        before = type(obj).objects.get(pk=obj.pk)
        old_values = {n: getattr(before, n) for n in names}
        try:
            self.save_service(request, obj, {n: form.cleaned_data[n] for n in names}, form.cleaned_data["reason"])
        except REFUSALS as exc:
            messages.error(request, f"Not saved: {refusal_message(exc)}")
            request._service_refused = True  # type: ignore[attr-defined]
            return
        messages.success(request, f"Saved and audited: {changes_message(old_values, obj, names)}.")

    def log_change(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        if getattr(request, "_service_refused", False):
            return None
        return super().log_change(request, obj, message)

    def response_change(self, request: HttpRequest, obj: Model) -> HttpResponse:
        # Back to the same page: the new values and their history entry are there.
        return HttpResponseRedirect(request.path)

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> HttpResponse:
        # "Save" already comes back here; a second button that does the same would only confuse.
        context["show_save_and_continue"] = False
        return super().render_change_form(request, context, *args, **kwargs)


# --- Limits ------------------------------------------------------------------------


class ReasonedModelForm(forms.ModelForm):  # type: ignore[type-arg]
    """A limits form: labels with units, self-explaining validation, and the reason the service requires."""

    field_labels: dict[str, str] = {}
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}), max_length=2000, help_text=REASON_HELP,
        error_messages={"required": "A reason is required for every limit change."},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        explain_fields(self, self.field_labels)


class RiskLimitsForm(ReasonedModelForm):
    field_labels = LIMIT_LABELS

    class Meta:
        model = RiskLimits
        fields = list(LIMIT_LABELS)


@admin.register(RiskLimits)
class RiskLimitsAdmin(SingletonAdminMixin, ReasonedChangeAdmin):
    form = RiskLimitsForm
    editable_fields = tuple(LIMIT_LABELS)
    fieldsets = [
        ("Drawdown (circuit breaker and kill switch)", {
            "fields": ["daily_drawdown_warning_pct", "max_daily_drawdown_pct", "max_total_drawdown_pct"],
            "description": "Warning below the daily limit, the daily limit below the total limit.",
        }),
        ("Exposure", {"fields": ["max_capital_deployed_pct", "max_open_positions"]}),
        ("Per order", {"fields": ["max_risk_per_trade_pct", "max_notional", "max_price_deviation_pct",
                                  "min_stock_price", "assumed_stop_distance_pct"]}),
        ("Market access (SEC 15c3-5, FIA)", {
            "fields": ["max_order_qty", "max_symbol_concentration_pct", "duplicate_order_max",
                       "duplicate_order_window_s", "allow_short_selling", "market_closed_policy"],
            "description": "The restricted list has its own page: Restricted symbols, under Risk.",
        }),
        ("Why this change", {"fields": ["reason"]}),
    ]

    def get_singleton(self) -> Model:
        return RiskLimits.current()

    def save_service(self, request: HttpRequest, obj: Model, changes: dict[str, Any], reason: str) -> None:
        services.limit_update(acting_user=request.user, changes=changes, reason=reason)

    def audit_trail(self, obj: Model) -> QuerySet[Any]:
        return RiskEvent.objects.filter(kind=K.LIMIT_UPDATED).select_related("strategy")

    def audit_trail_url(self, obj: Model) -> str:
        return reverse("admin:risk_riskevent_changelist") + f"?kind__exact={K.LIMIT_UPDATED}"


# --- The restricted list ------------------------------------------------------------


class RestrictedSymbolForm(forms.ModelForm):  # type: ignore[type-arg]
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}), max_length=2000, help_text=REASON_HELP,
        error_messages={"required": "A reason is required to restrict a symbol."},
    )

    class Meta:
        model = RestrictedSymbol
        fields = ["symbol", "reason"]
        help_texts = {"symbol": "No order may trade it (buys and sells alike) until it is removed."}

    def clean_symbol(self) -> str:
        symbol = self.cleaned_data["symbol"].strip().upper()
        if not services.SYMBOL_PATTERN.fullmatch(symbol):
            raise forms.ValidationError("Not a symbol: use e.g. AAPL or BRK.B.")
        if RestrictedSymbol.objects.filter(symbol=symbol).exists():
            raise forms.ValidationError(f"{symbol} is already restricted.")
        return symbol


def unrestrict(request: HttpRequest, row: RestrictedSymbol, reason: str) -> str:
    services.restricted_symbol_remove(acting_user=request.user, symbol=row.symbol, reason=reason)
    return f"{row.symbol} removed from the restricted list; orders may trade it again."


@admin.register(RestrictedSymbol)
class RestrictedSymbolAdmin(AuditTrailMixin, BackofficeModelAdmin):
    """Added with a reason (restricted_symbol_add), removed with one (restricted_symbol_remove): both audited."""

    form = RestrictedSymbolForm
    list_display = ["symbol", "reason", "added_by", timestamp_column("added_at", "added (UTC)")]
    list_select_related = ["added_by"]
    search_fields = ["=symbol"]
    actions = None
    object_actions = (
        ObjectAction(
            name="remove", label="Remove from the restricted list", run=unrestrict,
            allowed=has_perm("risk.delete_restrictedsymbol"), style="danger", back_to_list=True,
            explanation="Orders in this symbol are checked and sent again.",
        ),
    )

    def get_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        return ["symbol", "reason"] if obj is None else ["symbol", "reason", "added_by", "added_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        return [] if obj is None else ["symbol", "reason", "added_by", "added_at"]

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False  # a restriction is added or removed, never edited

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False  # removal needs a reason: the "Remove" control, not Django's delete

    def save_model(self, request: HttpRequest, obj: Model, form: forms.ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        row = services.restricted_symbol_add(
            acting_user=request.user, symbol=form.cleaned_data["symbol"], reason=form.cleaned_data["reason"]
        )
        obj.pk = row.pk

    def log_addition(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        return None  # the service's RiskEvent is the audit record

    def audit_trail(self, obj: Any) -> QuerySet[RiskEvent] | None:
        return RiskEvent.objects.filter(
            kind__in=[K.RESTRICTED_SYMBOL_ADDED, K.RESTRICTED_SYMBOL_REMOVED], new__symbol=obj.symbol
        ).select_related("strategy")


# --- Kill switches -------------------------------------------------------------------


def four_eyes_actions(
    four_eyes: FourEyes,
    *,
    thing: str,
    reset: Callable[[HttpRequest, Any, str], str],
    reject: Callable[[HttpRequest, Any, str], str],
    resettable: Callable[[Any], bool],
    effect: Callable[[Any], str],
    rejected_effect: str,
    subject: Callable[[Any], str],
) -> tuple[ObjectAction, ObjectAction]:
    """The two admin buttons of any four-eyes action (risk.approvals): reset/request/approve, and reject.

    ``thing`` names it in labels ("kill switch"); ``resettable(obj)`` says
    whether the object's state offers the action; ``effect(obj)`` says what
    the action does, ``rejected_effect`` what a rejection leaves, and
    ``subject(obj)`` names the object in the rejection's explanation.
    """

    def label(user: Any, obj: Any) -> str:
        if not four_eyes_required():
            return f"Reset {thing}"
        if not four_eyes.pending(obj):
            return f"Request {thing} reset"
        return f"Approve {thing} reset"

    def explanation(user: Any, obj: Any) -> str:
        what = effect(obj)
        if not four_eyes_required():
            return f"{what} as soon as you confirm."
        requested_by = four_eyes.requested_by(obj)
        if requested_by is None:
            return (f"Four-eyes is on: your request is recorded and {what.lower()} only when a second, "
                    "different officer approves it.")
        if requested_by.pk == user.pk:
            return "You requested this reset; a second, different officer must approve or reject it."
        return (f"{requested_by} requested this reset at {four_eyes.requested_at(obj):%Y-%m-%d %H:%M:%S} UTC, "
                f"reason: “{four_eyes.reason(obj)}”. Approving it: {what.lower()}.")

    return (
        ObjectAction(
            name="reset",
            label=f"Reset {thing}",
            label_for=label,
            run=reset,
            allowed=has_perm(four_eyes.permission),
            available=lambda user, obj: resettable(obj) and (
                not four_eyes.pending(obj) or four_eyes.pending_by_other(obj, user)
            ),
            style="primary",
            explanation=explanation,
        ),
        ObjectAction(
            name="reject-reset",
            label="Reject reset request",
            run=reject,
            allowed=has_perm(four_eyes.permission),
            available=lambda user, obj: four_eyes.pending_by_other(obj, user),
            explanation=lambda user, obj: (
                f"{four_eyes.requested_by(obj)} asked to reset {subject(obj)}: “{four_eyes.reason(obj)}”. "
                f"{rejected_effect}"
            ),
        ),
    )


def activate_switch(request: HttpRequest, switch: KillSwitch, reason: str) -> str:
    services.killswitch_activate(
        acting_user=request.user, strategy=switch.strategy, reason=reason, source=KillSwitchSource.ADMIN
    )
    return (f"The {switch.scope_label} kill switch is ACTIVE: working orders are being cancelled "
            "and new orders are denied.")


def reset_switch(request: HttpRequest, switch: KillSwitch, reason: str) -> str:
    outcome = services.killswitch_reset(acting_user=request.user, strategy=switch.strategy, reason=reason)
    if outcome.done:
        return f"The {switch.scope_label} kill switch is reset: new orders are accepted again."
    return f"Reset of the {switch.scope_label} kill switch requested: it stays active until a second officer approves."


def reject_switch_reset(request: HttpRequest, switch: KillSwitch, reason: str) -> str:
    services.killswitch_reset_reject(acting_user=request.user, strategy=switch.strategy, reason=reason)
    return f"Reset request rejected: the {switch.scope_label} kill switch stays active."


def activation_explanation(user: Any, switch: KillSwitch) -> str:
    if switch.active:
        return ("The switch is already active, and the status sync already cancels what is still open in its "
                "scope every cycle. Activating it again sends those cancels (and flatten, net of the flatten "
                "orders working) to the broker now, is audited, and voids a pending reset request.")
    if switch.strategy_id is None:
        cancels = "every working order (one cancel-all call at the broker)"
    else:
        cancels = f"every working order of strategy {switch.strategy} at the broker"
    positions = "flattened with market orders" if settings.KILL_SWITCH_FLATTEN else "frozen as they are"
    reset = "two officers reset it (four-eyes)" if four_eyes_required() else "an officer resets it"
    return (f"Cancels {cancels}, denies every new order in scope until {reset}, "
            f"and alerts the officers. Positions are {positions}.")


KILL_SWITCH_ACTIONS = (
    ObjectAction(
        name="activate",
        label="Activate kill switch",
        run=activate_switch,
        allowed=lambda user, s: user.is_active and services.can_activate_kill_switch(user, s.strategy),
        # An active switch may be activated again: it re-sends its cancels now (adr/0011).
        available=lambda user, s: True,
        style="danger",
        explanation=activation_explanation,
        submit_label="Activate: stop trading",
    ),
    *four_eyes_actions(
        services.KILL_SWITCH_RESET,
        thing="kill switch",
        reset=reset_switch,
        reject=reject_switch_reset,
        resettable=lambda s: s.active,
        effect=lambda s: "Trading resumes in scope",
        rejected_effect="Rejecting keeps it active and clears the request.",
        subject=lambda s: f"the {s.scope_label} kill switch",
    ),
)


def badge(text: str, level: str) -> str:
    return format_html('<span class="bo-badge bo-{}">{}</span>', level, text)


@admin.register(KillSwitch)
class KillSwitchAdmin(AuditTrailMixin, ReadOnlyAdminMixin, BackofficeModelAdmin):
    object_actions = KILL_SWITCH_ACTIONS
    list_display = ["scope_display", "state", "activated", "activated_by", "source", "reason", "reset_request"]
    list_display_links = ["scope_display", "state"]
    list_select_related = ["strategy", "activated_by", "reset_requested_by"]
    ordering = [F("strategy__slug").asc(nulls_first=True)]
    actions = None
    # The state block above the fields says the rest (who asked for a reset, and why).
    fieldsets = [
        (None, {"fields": ["scope_display", "state"]}),
        ("Last activation", {"fields": ["activated", "activated_by", "source", "reason"]}),
    ]
    readonly_fields = ["scope_display", "state", "activated", "activated_by", "source", "reason"]

    @admin.display(description="scope")
    def scope_display(self, switch: KillSwitch) -> str:
        return "GLOBAL (all strategies)" if switch.strategy_id is None else f"strategy {switch.strategy}"

    @admin.display(description="state")
    def state(self, switch: KillSwitch) -> str:
        return badge("ACTIVE — trading halted", "breach") if switch.active else badge("inactive", "ok")

    @admin.display(description="last activated (UTC)")
    def activated(self, switch: KillSwitch) -> str:
        return timestamp(switch.activated_at)

    @admin.display(description="reset request")
    def reset_request(self, switch: KillSwitch) -> str:
        if not switch.reset_pending:
            return "—"
        return format_html("pending: requested by <strong>{}</strong> at {:%H:%M:%S}", switch.reset_requested_by,
                           switch.reset_requested_at)

    def state_summary(self, request: HttpRequest, obj: Model) -> str:
        return render_to_string(
            "admin/backoffice/state/killswitch.html", {"switch": obj, "four_eyes": four_eyes_required()},
            request=request,
        )

    def audit_trail(self, obj: KillSwitch) -> QuerySet[Any]:  # type: ignore[override]
        events = RiskEvent.objects.filter(kind__in=KILL_SWITCH_KINDS).select_related("strategy")
        if obj.strategy_id is None:
            return events.filter(strategy__isnull=True)
        return events.filter(strategy=obj.strategy_id)

    def audit_trail_url(self, obj: KillSwitch) -> str:  # type: ignore[override]
        url = reverse("admin:risk_riskevent_changelist") + "?kind__in=" + ",".join(KILL_SWITCH_KINDS)
        return url + (f"&strategy__id__exact={obj.strategy_id}" if obj.strategy_id else "&strategy__isnull=True")


# --- The circuit breaker -------------------------------------------------------------


def reset_breaker(request: HttpRequest, state: RiskState, reason: str) -> str:
    outcome = services.circuit_breaker_reset(acting_user=request.user, reason=reason)
    if outcome.done:
        return "The circuit breaker is closed; the peak equity restarts from the current equity."
    return "Circuit-breaker reset requested: it stays latched until a second officer approves."


def reject_breaker_reset(request: HttpRequest, state: RiskState, reason: str) -> str:
    services.circuit_breaker_reset_reject(acting_user=request.user, reason=reason)
    return "Reset request rejected: the circuit breaker stays as it is."


BREAKER_ACTIONS = four_eyes_actions(
    services.BREAKER_RESET,
    thing="circuit breaker",
    reset=reset_breaker,
    reject=reject_breaker_reset,
    resettable=lambda s: s.breaker_state != BreakerState.CLOSED,
    effect=lambda s: (
        f"The breaker closes and the peak equity restarts from the current equity ({dashboard.money(s.equity)})"
    ),
    rejected_effect="Rejecting keeps it latched and clears the request.",
    subject=lambda s: "the circuit breaker",
)


@admin.register(RiskState)
class CircuitBreakerAdmin(SingletonAdminMixin, AuditTrailMixin, ReadOnlyAdminMixin, BackofficeModelAdmin):
    object_actions = BREAKER_ACTIONS
    fields = ["state", "since", "breaker_reason", "equity_display", "day_start_display", "peak_display",
              "equity_read", "peak_since"]
    readonly_fields = fields

    def get_singleton(self) -> Model:
        return RiskState.current()

    @admin.display(description="equity")
    def equity_display(self, obj: RiskState) -> str:
        return dashboard.money(obj.equity)

    @admin.display(description="day-start equity")
    def day_start_display(self, obj: RiskState) -> str:
        return dashboard.money(obj.day_start_equity)

    @admin.display(description="peak equity")
    def peak_display(self, obj: RiskState) -> str:
        return dashboard.money(obj.peak_equity)

    @admin.display(description="since (UTC)")
    def since(self, obj: RiskState) -> str:
        return timestamp(obj.breaker_since)

    @admin.display(description="equity read at (UTC)")
    def equity_read(self, obj: RiskState) -> str:
        return timestamp(obj.equity_at)

    @admin.display(description="peak tracked since (UTC)")
    def peak_since(self, obj: RiskState) -> str:
        return timestamp(obj.peak_reset_at)

    @admin.display(description="state")
    def state(self, obj: RiskState) -> str:
        level = {BreakerState.CLOSED: "ok", BreakerState.WARNING: "warn"}.get(obj.breaker_state, "breach")
        return badge(obj.get_breaker_state_display().upper(), level)

    def state_summary(self, request: HttpRequest, obj: Model) -> str:
        picture = risk_picture()
        return render_to_string(
            "admin/backoffice/state/breaker.html",
            {"state": obj, "picture": picture, "limits": RiskLimits.current(), "four_eyes": four_eyes_required()},
            request=request,
        )

    def audit_trail(self, obj: Model) -> QuerySet[Any]:
        return RiskEvent.objects.filter(kind__in=BREAKER_KINDS).select_related("strategy")

    def audit_trail_url(self, obj: Model) -> str:
        return reverse("admin:risk_riskevent_changelist") + "?kind__in=" + ",".join(BREAKER_KINDS)


# --- Strategies ------------------------------------------------------------------------


class StrategyForm(ReasonedModelForm):
    field_labels = STRATEGY_LABELS

    class Meta:
        model = Strategy
        fields = list(services.STRATEGY_LIMIT_FIELDS)


def set_paused(paused: bool) -> Any:
    def run(request: HttpRequest, strategy: Strategy, reason: str) -> str:
        services.strategy_set_paused(acting_user=request.user, strategy=strategy, paused=paused, reason=reason)
        return f"Strategy {strategy} is {'paused: its new orders are denied' if paused else 'trading again'}."

    return run


def transition_to(mode: str) -> Any:
    def run(request: HttpRequest, strategy: Strategy, reason: str) -> str:
        services.strategy_transition_mode(acting_user=request.user, strategy=strategy, target_mode=mode, reason=reason)
        return f"Strategy {strategy} is now {mode}."

    return run


def live_preconditions(user: Any, strategy: Strategy) -> str:
    return (
        "Going LIVE needs a live deployment (TRADING_MODE=live, now "
        f"{settings.TRADING_MODE}), no active kill switch (global or this strategy's), the strategy not paused, "
        "and the circuit breaker not tripped. Any unmet condition is named and nothing changes."
    )


STRATEGY_ACTIONS = (
    ObjectAction(
        name="pause", label="Pause strategy", run=set_paused(True), allowed=has_perm("risk.pause_strategy"),
        available=lambda user, s: not s.paused,
        explanation="New orders of this strategy are denied (strategy_paused); working orders stay working.",
    ),
    ObjectAction(
        name="resume", label="Resume strategy", run=set_paused(False), allowed=has_perm("risk.pause_strategy"),
        available=lambda user, s: s.paused, style="primary",
        explanation="New orders of this strategy are checked and sent again.",
    ),
    ObjectAction(
        name="go-live", label="Move to LIVE", run=transition_to(Mode.LIVE), allowed=has_perm("risk.transition_mode"),
        available=lambda user, s: s.mode == Mode.PAPER, style="danger", explanation=live_preconditions,
    ),
    ObjectAction(
        name="go-paper", label="Move to PAPER", run=transition_to(Mode.PAPER), allowed=has_perm("risk.transition_mode"),
        available=lambda user, s: s.mode == Mode.LIVE,
        explanation="LIVE → PAPER is always allowed.",
    ),
)


@admin.register(Strategy)
class StrategyAdmin(ReasonedChangeAdmin):
    form = StrategyForm
    object_actions = STRATEGY_ACTIONS
    editable_fields = services.STRATEGY_LIMIT_FIELDS
    list_display = ["slug", "name", "mode_badge", "status_badge", "kill_switch_badge", "allocation",
                    "max_daily_loss_pct", "throttle"]
    list_select_related = ["kill_switch"]
    list_filter = ["mode", "paused"]
    search_fields = ["slug", "name"]
    actions = None
    readonly_fields = ["slug", "mode_badge", "status_badge", "kill_switch_badge", "client_list"]
    fieldsets = [
        (None, {"fields": ["slug", "name", "mode_badge", "status_badge", "kill_switch_badge", "client_list"]}),
        ("Limits", {"fields": ["max_allocation_amount", "max_allocation_pct", "max_daily_loss_pct",
                               "max_orders_per_second", "max_orders_per_minute"],
                    "description": "The dollar allocation, when set, wins over the percent."}),
        ("Why this change", {"fields": ["reason"]}),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Strategies come with their API clients (manage.py create_api_client);
        # there is no audited service to create one here.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Strategy]:
        return super().get_queryset(request).prefetch_related("clients")

    @admin.display(description="mode", ordering="mode")
    def mode_badge(self, strategy: Strategy) -> str:
        return badge(strategy.mode, "breach" if strategy.mode == Mode.LIVE else "info")

    @admin.display(description="status", ordering="paused")
    def status_badge(self, strategy: Strategy) -> str:
        return badge("paused", "warn") if strategy.paused else badge("active", "ok")

    @admin.display(description="kill switch")
    def kill_switch_badge(self, strategy: Strategy) -> str:
        switch = getattr(strategy, "kill_switch", None)
        if switch is None or not switch.active:
            return badge("inactive", "ok")
        return badge("ACTIVE", "breach")

    @admin.display(description="allocation")
    def allocation(self, strategy: Strategy) -> str:
        if strategy.max_allocation_amount is not None:
            return dashboard.money(strategy.max_allocation_amount)
        return f"{strategy.max_allocation_pct} % of equity"

    @admin.display(description="throttle")
    def throttle(self, strategy: Strategy) -> str:
        return f"{strategy.max_orders_per_second}/s · {strategy.max_orders_per_minute}/min"

    @admin.display(description="API clients")
    def client_list(self, strategy: Strategy) -> str:
        return ", ".join(user.get_username() for user in strategy.clients.all()) or "—"

    def object_buttons(self, request: HttpRequest, obj: Model) -> list[dict[str, str]]:
        # The strategy's kill switch is one click away, through the kill switch's own pages.
        buttons = super().object_buttons(request, obj)
        switch = KillSwitch.objects.select_related("strategy").filter(strategy=obj).first()
        if switch is not None:
            buttons += self.admin_site.get_model_admin(KillSwitch).object_buttons(request, switch)
        return buttons

    def save_service(self, request: HttpRequest, obj: Model, changes: dict[str, Any], reason: str) -> None:
        services.strategy_update(acting_user=request.user, strategy=obj, changes=changes, reason=reason)  # type: ignore[arg-type]

    def audit_trail(self, obj: Model) -> QuerySet[Any]:
        return RiskEvent.objects.filter(strategy=obj).select_related("strategy")

    def audit_trail_url(self, obj: Model) -> str:
        return reverse("admin:risk_riskevent_changelist") + f"?strategy__id__exact={obj.pk}"


# --- The audit trail and the jobs -------------------------------------------------------


@admin.register(RiskEvent)
class RiskEventAdmin(CsvExportMixin, LargeTableAdminMixin, ReadOnlyAdminMixin, BackofficeModelAdmin):
    """Append-only: nobody adds, changes or deletes an event here, superusers included."""

    csv_name = "risk-events"
    csv_columns = [
        ("at", lambda e: e.at), ("id", lambda e: e.pk), ("kind", lambda e: e.kind), ("actor", lambda e: e.actor_label),
        ("strategy", lambda e: e.strategy.slug if e.strategy_id else ""), ("reason", lambda e: e.reason),
        ("old", lambda e: json.dumps(e.old, sort_keys=True)), ("new", lambda e: json.dumps(e.new, sort_keys=True)),
    ]

    list_display = [timestamp_column("at", "when (UTC)"), "kind", "who", "strategy", "reason", "changes"]
    list_select_related = ["strategy"]
    list_filter = ["kind", "strategy", ("at", DateFieldListFilter)]
    sortable_by = ()
    actions = None
    fields = [timestamp_column("at", "when (UTC)"), "kind", "who", "strategy", "reason", "changes"]
    readonly_fields = fields

    @admin.display(description="who")
    def who(self, event: RiskEvent) -> str:
        return event.actor_label  # the user, or the job that acted

    @admin.display(description="old → new")
    def changes(self, event: RiskEvent) -> str:
        return changes_html(event) or "—"


@admin.register(EquitySnapshot)
class EquitySnapshotAdmin(LargeTableAdminMixin, ReadOnlyAdminMixin, BackofficeModelAdmin):
    list_display = [timestamp_column("at", "at (UTC)"), "equity", "day_start_equity", "peak_equity", "daily_drawdown",
                    "total_drawdown"]
    list_filter = [("at", DateFieldListFilter)]
    sortable_by = ()
    actions = None

    @admin.display(description="daily drawdown")
    def daily_drawdown(self, snap: EquitySnapshot) -> str:
        return dashboard.percent(drawdown_pct(snap.day_start_equity, snap.equity) if snap.day_start_equity else None)

    @admin.display(description="total drawdown")
    def total_drawdown(self, snap: EquitySnapshot) -> str:
        return dashboard.percent(drawdown_pct(snap.peak_equity, snap.equity) if snap.peak_equity else None)


@admin.register(JobRun)
class JobRunAdmin(ReadOnlyAdminMixin, BackofficeModelAdmin):
    list_display = ["name", timestamp_column("last_succeeded_at", "last success (UTC)"), "freshness",
                    timestamp_column("last_failed_at", "last failure (UTC)"), "last_error", "runs",
                    timestamp_column("locked_until", "locked until (UTC)")]
    actions = None

    @admin.display(description="age")
    def freshness(self, job: JobRun) -> str:
        status = job_status(job.name, job.last_succeeded_at, timezone.now())
        if status is None:
            return dashboard.age_display(job.age().total_seconds() if job.last_succeeded_at else None)
        return badge(f"{status.age} — stale" if status.stale else status.age, "breach" if status.stale else "ok")


@admin.register(Alert)
class AlertAdmin(LargeTableAdminMixin, ReadOnlyAdminMixin, BackofficeModelAdmin):
    """What the officers were told, once per condition, and whether it reached them."""

    list_display = [timestamp_column("created_at", "raised (UTC)"), "level", "kind", "subject", "symbol", "strategy",
                    "delivery"]
    list_filter = ["level", "kind"]
    search_fields = ["subject", "key", "symbol", "strategy"]
    actions = None

    @admin.display(description="delivery")
    def delivery(self, item: Alert) -> str:
        if item.delivered_at is not None:
            return badge("delivered", "ok")
        if not item.last_error:
            return badge("queued", "warn")
        return badge(f"retrying ({item.attempts} attempts): {item.last_error}", "breach")
