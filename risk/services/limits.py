"""Limits, the restricted list, strategies and their mode: every edit audited."""


from __future__ import annotations

import logging
import re
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import transaction

from risk.audit import risk_event_record
from risk.exceptions import ModeTransitionRefused, RiskActionError
from risk.models import (
    BreakerState,
    KillSwitch,
    Mode,
    RestrictedSymbol,
    RiskEventKind,
    RiskLimits,
    RiskState,
    Strategy,
)
from risk.services.common import _apply_changes, _require_perm, _require_reason

logger = logging.getLogger(__name__)
User = AbstractBaseUser | AnonymousUser
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
