"""The kill switch and the circuit breaker: activation, equity evaluation, resets (four-eyes), re-basing."""


from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from brokers.types import Account
from core.actors import actor_label
from risk import alerts
from risk.approvals import FourEyes, four_eyes_reject, four_eyes_request_or_approve
from risk.audit import risk_event_record
from risk.checks import drawdown_pct
from risk.exceptions import RiskActionError
from risk.models import (
    AlertLevel,
    BreakerState,
    EquitySnapshot,
    KillSwitch,
    KillSwitchSource,
    RiskEventKind,
    RiskLimits,
    RiskState,
    Strategy,
    trading_day,
)
from risk.services.common import _jsonable, _require_perm, _require_reason
from risk.signals import kill_switch_activated

logger = logging.getLogger(__name__)
User = AbstractBaseUser | AnonymousUser

# --- Kill switch ------------------------------------------------------------


def _kill_switch_row(strategy: Strategy | None) -> KillSwitch:
    if strategy is None:
        KillSwitch.objects.get_or_create(strategy=None)
        return KillSwitch.objects.select_for_update().get(strategy__isnull=True)
    KillSwitch.objects.get_or_create(strategy=strategy)
    return KillSwitch.objects.select_for_update().get(strategy=strategy)


BREAKER_ALERT_KEY = "circuit_breaker"


def kill_switch_alert_key(strategy: Strategy | None) -> str:
    return "kill_switch:global" if strategy is None else f"kill_switch:strategy:{strategy.slug}"


def can_activate_kill_switch(user: Any, strategy: Strategy | None) -> bool:
    """Global: a risk officer. Strategy: an officer, or any client that trades it."""
    if user is None:
        return True
    if user.has_perm("risk.activate_global_killswitch"):
        return True
    return strategy is not None and strategy.clients.filter(pk=user.pk).exists()


@transaction.atomic
def killswitch_activate(
    *,
    acting_user: Any | None,
    strategy: Strategy | None = None,
    reason: str,
    source: str = KillSwitchSource.API,
    job: str | None = None,
) -> KillSwitch:
    """Halt trading in scope; after commit, working orders are cancelled and officers alerted.

    Order senders hold a share lock on this row while they talk to the broker,
    so taking it FOR UPDATE here waits for every send in flight: once this
    commits, no order in scope can reach the broker (the senders that come
    after see the switch and cancel locally).

    The active row is the stored intent: every sync cycle cancels what is
    still open in scope (and flattens, if configured) until the switch is
    reset, whatever happened to the cancels sent after this commit (adr/0011).
    Activating an active switch again (a person, not a job re-checking its
    rule) is audited, voids a pending reset request and sends the cancels
    again at once.
    """
    if not can_activate_kill_switch(acting_user, strategy):
        raise PermissionDenied("activating this kill switch needs a risk officer or a client of the strategy")
    reason = _require_reason(reason)
    switch = _kill_switch_row(strategy)
    if switch.active:
        if job is not None:
            # A job (the drawdown rule, reconciliation) that finds its switch already active
            # every run is not a new decision: no event, no alert, the reset request stands.
            return switch
        return _killswitch_activate_again(switch, acting_user=acting_user, strategy=strategy, reason=reason,
                                          source=source)
    user = acting_user if getattr(acting_user, "is_authenticated", False) else None
    switch.active = True
    switch.activated_at = timezone.now()
    switch.activated_by = user
    switch.source = source
    switch.reason = reason
    KILL_SWITCH_RESET.clear_request(switch)  # a new activation overtakes any old reset request
    switch.save()
    risk_event_record(
        kind=RiskEventKind.KILL_SWITCH_ACTIVATED,
        acting_user=acting_user,
        job=job,
        strategy=strategy,
        reason=reason,
        old={"active": False},
        new={"active": True, "source": source, "scope": switch.scope},
    )
    label = actor_label(acting_user, job)
    strategy_id = strategy.pk if strategy else None
    scope = switch.scope_label

    alerts.alert_raise(
        key=kill_switch_alert_key(strategy), level=AlertLevel.CRITICAL, kind="kill_switch",
        subject=f"KILL SWITCH ACTIVATED ({scope})", message=f"Activated by {label} ({source}): {reason}",
        strategy=strategy.slug if strategy else None, state="active",
    )
    transaction.on_commit(
        lambda: kill_switch_activated.send(sender=KillSwitch, strategy_id=strategy_id, actor_label=label)
    )
    return switch


KILL_SWITCH_RESET = FourEyes(
    prefix="reset_",
    permission="risk.reset_killswitch",
    requested_event=RiskEventKind.KILL_SWITCH_RESET_REQUESTED,
    rejected_event=RiskEventKind.KILL_SWITCH_RESET_REJECTED,
)
def _killswitch_activate_again(
    switch: KillSwitch, *, acting_user: Any | None, strategy: Strategy | None, reason: str, source: str
) -> KillSwitch:
    """The switch is active and someone activates it again: they want the cancels sent again now."""
    reset_pending = KILL_SWITCH_RESET.pending(switch)
    KILL_SWITCH_RESET.clear_request(switch)  # the officers asked to stop again: a pending reset is void
    switch.save()
    risk_event_record(
        kind=RiskEventKind.KILL_SWITCH_ACTIVATED,
        acting_user=acting_user,
        strategy=strategy,
        reason=reason,
        old={"active": True, "reset_pending": reset_pending},
        new={"active": True, "source": source, "scope": switch.scope, "repeated": True},
    )
    label = actor_label(acting_user)
    strategy_id = strategy.pk if strategy else None
    scope = switch.scope_label
    voided = " (a pending reset request is void)" if reset_pending else ""

    def after_commit() -> None:
        kill_switch_activated.send(sender=KillSwitch, strategy_id=strategy_id, actor_label=label)
        alerts.alert(f"KILL SWITCH ACTIVATED AGAIN ({scope})", f"Activated again by {label} ({source}): {reason}"
                     f"{voided}")

    transaction.on_commit(after_commit)
    return switch


@dataclass(frozen=True)
class ResetOutcome:
    done: bool  # False: waiting for a second officer


@transaction.atomic
def killswitch_reset(*, acting_user: Any, strategy: Strategy | None = None, reason: str) -> ResetOutcome:
    """Deactivate a kill switch; under four-eyes, a request that a second officer approves (risk.approvals)."""
    _require_perm(acting_user, KILL_SWITCH_RESET.permission)
    reason = _require_reason(reason)
    if strategy is None:
        # The account row first, as the equity evaluation and order entry take
        # them: a drawdown re-base needs it, and the other order could deadlock.
        _locked_state()
    switch = _kill_switch_row(strategy)
    if not switch.active:
        raise RiskActionError(f"the {switch.scope_label} kill switch is not active")
    requester = switch.reset_requested_by
    if not four_eyes_request_or_approve(
        KILL_SWITCH_RESET, switch, acting_user=acting_user, reason=reason, strategy=strategy
    ):
        return ResetOutcome(done=False)
    rebased_by_drawdown = switch.strategy_id is None and switch.source == KillSwitchSource.CIRCUIT_BREAKER
    switch.active = False
    KILL_SWITCH_RESET.clear_request(switch)
    switch.save()
    new: dict[str, object] = {"active": False}
    if requester is not None:
        new["requested_by"] = requester.get_username()
    old_peak: dict[str, object] = {}
    if rebased_by_drawdown:
        # The total-drawdown rule activated it: without a new high-water mark
        # the next evaluation (seconds away) would activate it again, forever.
        peak_before, peak_after = peak_rebase(acting_user=acting_user, reason=reason)
        old_peak["peak_equity"], new["peak_equity"] = _jsonable(peak_before), _jsonable(peak_after)
    risk_event_record(
        kind=RiskEventKind.KILL_SWITCH_RESET, acting_user=acting_user, strategy=strategy, reason=reason,
        old={"active": True, **old_peak}, new=new,
    )
    alerts.alert_raise(
        key=kill_switch_alert_key(strategy), level=AlertLevel.WARNING, kind="kill_switch",
        subject=f"Kill switch reset ({switch.scope_label})", message=f"Reset by {actor_label(acting_user)}: {reason}",
        strategy=strategy.slug if strategy else None, state="reset",
    )
    return ResetOutcome(done=True)


@transaction.atomic
def killswitch_reset_reject(*, acting_user: Any, strategy: Strategy | None = None, reason: str) -> None:
    _require_perm(acting_user, KILL_SWITCH_RESET.permission)
    reason = _require_reason(reason)
    switch = _kill_switch_row(strategy)
    four_eyes_reject(KILL_SWITCH_RESET, switch, acting_user=acting_user, reason=reason, strategy=strategy)


# --- Equity and the circuit breaker ----------------------------------------


def _locked_state() -> RiskState:
    RiskState.current()
    return RiskState.objects.select_for_update().get(pk=1)


@transaction.atomic
def equity_record(
    *,
    equity: Decimal,
    day_start_equity: Decimal,
    at: dt.datetime | None = None,
    job: str = "risk_eval",
    account: Account | None = None,
) -> RiskState:
    """Store an equity reading, move the high-water mark, and evaluate the circuit breaker.

    With ``account`` (the broker's account as read with the equity) its status
    and buying power are stored too: the market-access checks read them from
    this row, so order entry makes no account call of its own.
    """
    at = at or timezone.now()
    state = _locked_state()
    state.equity = equity
    state.day_start_equity = day_start_equity
    if account is not None:
        state.buying_power = account.buying_power
        state.account_status = account.status
        state.trading_blocked = account.trading_blocked
        state.account_blocked = account.account_blocked
    state.peak_equity = max(equity, state.peak_equity or equity)
    state.equity_at = at
    state.save()
    EquitySnapshot.objects.create(
        at=at, equity=equity, day_start_equity=day_start_equity, peak_equity=state.peak_equity
    )
    _breaker_evaluate(state, job=job)
    return state


def _breaker_evaluate(state: RiskState, *, job: str) -> None:
    """closed -> warning (2 %, clears itself) -> tripped (3 %, latched) -> kill switch (10 % total)."""
    if state.equity is None or not state.day_start_equity or not state.peak_equity:
        return
    limits = RiskLimits.current()
    base = state.daily_drawdown_base(trading_day(timezone.now())) or state.day_start_equity
    daily = drawdown_pct(base, state.equity)
    total = drawdown_pct(state.peak_equity, state.equity)
    old = state.breaker_state
    if old == BreakerState.TRIPPED or daily >= limits.max_daily_drawdown_pct:
        new = BreakerState.TRIPPED
    elif daily >= limits.daily_drawdown_warning_pct:
        new = BreakerState.WARNING
    else:
        new = BreakerState.CLOSED
    if new != old:
        state.breaker_state = new
        state.breaker_since = timezone.now()
        state.breaker_reason = f"daily drawdown {daily:.2f}%"
        state.save()
        risk_event_record(
            kind=RiskEventKind.BREAKER_CHANGED,
            acting_user=None,
            job=job,
            reason=state.breaker_reason,
            old={"state": old},
            new={"state": new, "daily_drawdown_pct": f"{daily:.4f}"},
        )
        level = {BreakerState.TRIPPED: AlertLevel.CRITICAL, BreakerState.WARNING: AlertLevel.WARNING}.get(
            new, AlertLevel.INFO
        )
        alerts.alert_raise(
            key=BREAKER_ALERT_KEY, level=level, kind="circuit_breaker", subject=f"Circuit breaker {new}",
            message=f"Circuit breaker {old} -> {new}: {state.breaker_reason}", state=new,
        )
    if total >= limits.max_total_drawdown_pct:
        killswitch_activate(
            acting_user=None,
            job=job,
            source=KillSwitchSource.CIRCUIT_BREAKER,
            reason=f"total drawdown {total:.2f}% reached the {limits.max_total_drawdown_pct}% limit",
        )


def peak_rebase(
    *, acting_user: Any, reason: str, state: RiskState | None = None
) -> tuple[Decimal | None, Decimal | None]:
    """Restart the high-water mark at the current equity (an officer acknowledged the loss).

    Part of a reset, inside its transaction; the reset's risk event records the
    old and the new peak. Returns (old peak, new peak).
    """
    state = state or _locked_state()
    before = state.peak_equity
    if state.equity is not None:
        state.peak_equity = state.equity
    state.peak_reset_at = timezone.now()
    state.peak_reset_by = acting_user if getattr(acting_user, "is_authenticated", False) else None
    state.peak_reset_reason = reason
    state.save()
    return before, state.peak_equity


BREAKER_RESET = FourEyes(
    prefix="breaker_reset_",
    permission="risk.reset_circuit_breaker",
    requested_event=RiskEventKind.BREAKER_RESET_REQUESTED,
    rejected_event=RiskEventKind.BREAKER_RESET_REJECTED,
)


@transaction.atomic
def circuit_breaker_reset(*, acting_user: Any, reason: str) -> ResetOutcome:
    """Unlatch a tripped breaker; the peak equity restarts from the current equity. Four-eyes as the kill switch."""
    _require_perm(acting_user, BREAKER_RESET.permission)
    reason = _require_reason(reason)
    state = _locked_state()
    if state.breaker_state == BreakerState.CLOSED:
        raise RiskActionError("the circuit breaker is not tripped")
    if not four_eyes_request_or_approve(BREAKER_RESET, state, acting_user=acting_user, reason=reason):
        return ResetOutcome(done=False)
    now = timezone.now()
    old = state.breaker_state
    state.breaker_state = BreakerState.CLOSED
    state.breaker_since = now
    state.breaker_reason = f"reset: {reason}"
    BREAKER_RESET.clear_request(state)
    # The officer acknowledges today's loss so far: without a new base the
    # next evaluation, seconds away, would trip the breaker again.
    base_before = state.daily_drawdown_base(trading_day(now))
    if state.equity is not None:
        state.daily_base_equity, state.daily_base_on = state.equity, trading_day(now)
    state.save()
    peak_before, peak_after = peak_rebase(acting_user=acting_user, reason=reason, state=state)
    risk_event_record(
        kind=RiskEventKind.BREAKER_RESET, acting_user=acting_user, reason=reason,
        old={"state": old, "peak_equity": _jsonable(peak_before), "daily_base_equity": _jsonable(base_before)},
        new={"state": "closed", "peak_equity": _jsonable(peak_after),
             "daily_base_equity": _jsonable(state.daily_drawdown_base(trading_day(now)))},
    )
    alerts.alert_raise(
        key=BREAKER_ALERT_KEY, level=AlertLevel.WARNING, kind="circuit_breaker", subject="Circuit breaker reset",
        message=f"Reset by {actor_label(acting_user)}: {reason}; peak equity re-based at {peak_after}",
        state="reset",
    )
    return ResetOutcome(done=True)


@transaction.atomic
def circuit_breaker_reset_reject(*, acting_user: Any, reason: str) -> None:
    _require_perm(acting_user, BREAKER_RESET.permission)
    reason = _require_reason(reason)
    state = _locked_state()
    four_eyes_reject(BREAKER_RESET, state, acting_user=acting_user, reason=reason)
