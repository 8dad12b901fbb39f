"""Risk in the admin: limits, strategies, the risk events, equity snapshots, the jobs and alerts.

Every change goes through ``risk.services``: a limit form's save calls
``limit_update`` / ``strategy_update`` with the form's required reason, and
every strategy control (pause, resume, paper/live) is an ``ObjectAction``: a
confirmation page with a reason, a permission check on the request itself,
then the service, which checks again. The kill switches and the circuit
breaker are in ``admin_controls``; the audit trail's presentation in
``admin_audit``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import DateFieldListFilter
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from backoffice.admin_audit import (
    LIMIT_LABELS,
    STRATEGY_LABELS,
    AuditTrailMixin,
    changes_html,
    changes_message,
)
from backoffice.admin_exports import CsvExportMixin
from backoffice.admin_tools import (
    REFUSALS,
    BackofficeModelAdmin,
    LargeTableAdminMixin,
    ObjectAction,
    ReadOnlyAdminMixin,
    SingletonAdminMixin,
    badge,
    has_perm,
    refusal_message,
    timestamp_column,
)
from backoffice.formatting import money, percent
from backoffice.jobs import age_display, job_status
from core.models import JobRun
from risk import services
from risk.checks import drawdown_pct
from risk.models import (
    Alert,
    EquitySnapshot,
    KillSwitch,
    Mode,
    RestrictedSymbol,
    RiskEvent,
    RiskEventKind,
    RiskLimits,
    Strategy,
)

K = RiskEventKind
REASON_HELP = "Why: written to the audit trail with your name, the time and every old → new value."


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
            return money(strategy.max_allocation_amount)
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
        return percent(drawdown_pct(snap.day_start_equity, snap.equity) if snap.day_start_equity else None)

    @admin.display(description="total drawdown")
    def total_drawdown(self, snap: EquitySnapshot) -> str:
        return percent(drawdown_pct(snap.peak_equity, snap.equity) if snap.peak_equity else None)


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
            return age_display(job.age().total_seconds() if job.last_succeeded_at else None)
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
