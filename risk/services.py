"""Every state change of the risk layer: one transaction, its RiskEvent, side effects after commit."""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from brokers.types import Account
from core.actors import actor_label
from risk import alerts
from risk.approvals import FourEyes, four_eyes_reject, four_eyes_request_or_approve
from risk.audit import risk_event_record
from risk.checks import drawdown_pct
from risk.exceptions import ModeTransitionRefused, RiskActionError
from risk.models import (
    AlertLevel,
    BreakerState,
    EquitySnapshot,
    KillSwitch,
    KillSwitchSource,
    Mode,
    RestrictedSymbol,
    RiskEventKind,
    RiskLimits,
    RiskState,
    Strategy,
    trading_day,
)
from risk.signals import kill_switch_activated

logger = logging.getLogger(__name__)
User = AbstractBaseUser | AnonymousUser


def _require_perm(user: Any | None, perm: str) -> None:
    if user is None:
        return  # system jobs act with the system's authority
    if not (getattr(user, "is_active", False) and user.has_perm(perm)):
        raise PermissionDenied(f"missing permission {perm}")


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise RiskActionError("a reason is required")
    return reason


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


# --- Limits -----------------------------------------------------------------


def _apply_changes(instance: Any, changes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    old, new = {}, {}
    for name, value in changes.items():
        field = instance._meta.get_field(name)
        value = field.to_python(value)
        current = getattr(instance, name)
        if current != value:
            old[name], new[name] = _jsonable(current), _jsonable(value)
            setattr(instance, name, value)
    return old, new


RESTRICTED_SYMBOLS = "restricted_symbols"
SYMBOL_PATTERN = re.compile(r"[A-Z][A-Z0-9.]{0,15}")


def restricted_symbols() -> list[str]:
    return list(RestrictedSymbol.objects.order_by("symbol").values_list("symbol", flat=True))


def _symbol(raw: str) -> str:
    symbol = (raw or "").strip().upper()
    if not SYMBOL_PATTERN.fullmatch(symbol):
        raise ValidationError({RESTRICTED_SYMBOLS: f"{raw!r} is not a symbol (e.g. AAPL, BRK.B)"})
    return symbol


def _restrict(*, acting_user: Any, symbol: str, reason: str) -> RestrictedSymbol | None:
    """Add one symbol, audited; None when it is already restricted."""
    _require_perm(acting_user, "risk.add_restrictedsymbol")
    user = acting_user if getattr(acting_user, "is_authenticated", False) else None
    row, created = RestrictedSymbol.objects.get_or_create(
        symbol=symbol, defaults={"reason": reason, "added_by": user}
    )
    if not created:
        return None
    risk_event_record(
        kind=RiskEventKind.RESTRICTED_SYMBOL_ADDED, acting_user=acting_user, reason=reason,
        old={"restricted": False, "symbol": symbol}, new={"restricted": True, "symbol": symbol},
    )
    return row


def _unrestrict(*, acting_user: Any, symbol: str, reason: str) -> bool:
    _require_perm(acting_user, "risk.delete_restrictedsymbol")
    deleted, _ = RestrictedSymbol.objects.filter(symbol=symbol).delete()
    if not deleted:
        return False
    risk_event_record(
        kind=RiskEventKind.RESTRICTED_SYMBOL_REMOVED, acting_user=acting_user, reason=reason,
        old={"restricted": True, "symbol": symbol}, new={"restricted": False, "symbol": symbol},
    )
    return True


@transaction.atomic
def restricted_symbol_add(*, acting_user: Any, symbol: str, reason: str) -> RestrictedSymbol:
    """Put a symbol on the restricted list (no order may trade it), with a reason, audited."""
    reason = _require_reason(reason)
    symbol = _symbol(symbol)
    row = _restrict(acting_user=acting_user, symbol=symbol, reason=reason)
    if row is None:
        raise RiskActionError(f"{symbol} is already restricted")
    return row


@transaction.atomic
def restricted_symbol_remove(*, acting_user: Any, symbol: str, reason: str) -> None:
    reason = _require_reason(reason)
    symbol = _symbol(symbol)
    if not _unrestrict(acting_user=acting_user, symbol=symbol, reason=reason):
        raise RiskActionError(f"{symbol} is not restricted")


@transaction.atomic
def limit_update(*, acting_user: Any, changes: dict[str, Any], reason: str) -> RiskLimits:
    """Change portfolio/order limits and the restricted list; validated as a whole, audited field by field.

    ``restricted_symbols``, when given, is the whole list: symbols not on it
    are removed, new ones added, each audited exactly as restricted_symbol_add
    and restricted_symbol_remove audit it, with this change's reason.
    """
    _require_perm(acting_user, "risk.change_risklimits")
    reason = _require_reason(reason)
    changes = dict(changes)
    wanted = changes.pop(RESTRICTED_SYMBOLS, None)
    RiskLimits.current()
    limits = RiskLimits.objects.select_for_update().get(pk=1)
    old, new = _apply_changes(limits, changes)
    if new:
        limits.full_clean()
        limits.save()
        risk_event_record(kind=RiskEventKind.LIMIT_UPDATED, acting_user=acting_user, reason=reason, old=old, new=new)
    if wanted is not None:
        target = {_symbol(symbol) for symbol in wanted}
        current = set(RestrictedSymbol.objects.select_for_update().values_list("symbol", flat=True))
        for symbol in sorted(current - target):
            _unrestrict(acting_user=acting_user, symbol=symbol, reason=reason)
        for symbol in sorted(target - current):
            _restrict(acting_user=acting_user, symbol=symbol, reason=reason)
    return limits


STRATEGY_LIMIT_FIELDS = (
    "max_allocation_amount",
    "max_allocation_pct",
    "max_daily_loss_pct",
    "max_orders_per_second",
    "max_orders_per_minute",
    "name",
)


@transaction.atomic
def strategy_update(*, acting_user: Any, strategy: Strategy, changes: dict[str, Any], reason: str) -> Strategy:
    """Change a strategy's limits (not its mode, not its pause: those have their own services)."""
    _require_perm(acting_user, "risk.change_strategy")
    reason = _require_reason(reason)
    unknown = set(changes) - set(STRATEGY_LIMIT_FIELDS)
    if unknown:
        raise RiskActionError(f"not editable here: {', '.join(sorted(unknown))}")
    strategy = Strategy.objects.select_for_update().get(pk=strategy.pk)
    old, new = _apply_changes(strategy, changes)
    if not new:
        return strategy
    strategy.full_clean(exclude=["clients"])
    strategy.save()
    risk_event_record(
        kind=RiskEventKind.STRATEGY_UPDATED, acting_user=acting_user, strategy=strategy, reason=reason,
        old=old, new=new,
    )
    return strategy


@transaction.atomic
def strategy_set_paused(*, acting_user: Any, strategy: Strategy, paused: bool, reason: str) -> Strategy:
    _require_perm(acting_user, "risk.pause_strategy")
    reason = _require_reason(reason)
    strategy = Strategy.objects.select_for_update().get(pk=strategy.pk)
    if strategy.paused == paused:
        return strategy
    strategy.paused = paused
    strategy.save(update_fields=["paused", "updated_at"])
    kind = RiskEventKind.STRATEGY_PAUSED if paused else RiskEventKind.STRATEGY_RESUMED
    risk_event_record(
        kind=kind, acting_user=acting_user, strategy=strategy, reason=reason,
        old={"paused": not paused}, new={"paused": paused},
    )
    return strategy


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


@transaction.atomic
def circuit_breaker_evaluate(*, job: str = "risk_eval") -> RiskState:
    state = _locked_state()
    _breaker_evaluate(state, job=job)
    return state


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


# --- Paper and live ---------------------------------------------------------


@transaction.atomic
def strategy_transition_mode(*, acting_user: Any, strategy: Strategy, target_mode: str, reason: str) -> Strategy:
    """PAPER -> LIVE only with permission, a reason and every precondition; LIVE -> PAPER always."""
    _require_perm(acting_user, "risk.transition_mode")
    reason = _require_reason(reason)
    if target_mode not in Mode.values:
        raise ValidationError({"target_mode": f"must be one of {', '.join(Mode.values)}"})
    strategy = Strategy.objects.select_for_update().get(pk=strategy.pk)
    if strategy.mode == target_mode:
        return strategy
    if target_mode == Mode.LIVE:
        refusals = []
        if settings.TRADING_MODE != "live":
            refusals.append("this is a paper deployment (TRADING_MODE=paper)")
        if KillSwitch.objects.filter(active=True, strategy__isnull=True).exists():
            refusals.append("the global kill switch is active")
        if KillSwitch.objects.filter(active=True, strategy=strategy).exists():
            refusals.append("the strategy's kill switch is active")
        if strategy.paused:
            refusals.append("the strategy is paused")
        if RiskState.current().breaker_state == BreakerState.TRIPPED:
            refusals.append("the circuit breaker is tripped")
        if refusals:
            raise ModeTransitionRefused("cannot go LIVE: " + "; ".join(refusals))
    old = strategy.mode
    strategy.mode = target_mode
    strategy.save(update_fields=["mode", "updated_at"])
    risk_event_record(kind=RiskEventKind.MODE_CHANGED, acting_user=acting_user, strategy=strategy, reason=reason,
           old={"mode": old}, new={"mode": target_mode})
    return strategy
