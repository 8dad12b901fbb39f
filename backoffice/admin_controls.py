"""The controls that stop and restart trading, in the admin: kill switches and the circuit breaker.

Every control (activate, reset, approve, reject) is an ``ObjectAction``: a
confirmation page with a reason, a permission check on the request itself,
then the ``risk.services`` service, which checks again. Resets go through the
one four-eyes mechanism (``risk.approvals``); ``four_eyes_actions`` builds
their buttons for any four-eyes action.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.db.models import F, Model, QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html

from backoffice.admin_audit import (
    AuditTrailMixin,
)
from backoffice.admin_tools import (
    BackofficeModelAdmin,
    ObjectAction,
    ReadOnlyAdminMixin,
    SingletonAdminMixin,
    badge,
    has_perm,
    timestamp,
)
from backoffice.formatting import money
from orders.risk_picture import risk_picture
from risk import services
from risk.approvals import FourEyes, four_eyes_required
from risk.models import (
    BreakerState,
    KillSwitch,
    KillSwitchSource,
    RiskEvent,
    RiskEventKind,
    RiskLimits,
    RiskState,
)

K = RiskEventKind

KILL_SWITCH_KINDS = [
    K.KILL_SWITCH_ACTIVATED, K.KILL_SWITCH_RESET_REQUESTED, K.KILL_SWITCH_RESET_REJECTED, K.KILL_SWITCH_RESET
]
BREAKER_KINDS = [K.BREAKER_CHANGED, K.BREAKER_RESET_REQUESTED, K.BREAKER_RESET_REJECTED, K.BREAKER_RESET]


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
        # An active switch is driven by the sync every cycle (adr/0011); activating it again,
        # which re-sends its cancels now, is the API's (POST /v1/controls/kill-switch).
        available=lambda user, s: not s.active,
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
        f"The breaker closes and the peak equity restarts from the current equity ({money(s.equity)})"
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
        return money(obj.equity)

    @admin.display(description="day-start equity")
    def day_start_display(self, obj: RiskState) -> str:
        return money(obj.day_start_equity)

    @admin.display(description="peak equity")
    def peak_display(self, obj: RiskState) -> str:
        return money(obj.peak_equity)

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
