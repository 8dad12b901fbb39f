"""Every state change of the risk layer: one transaction, its RiskEvent, side effects after commit.

A package of one concern per module (STYLE 11): ``limits`` (limits, the
restricted list, strategies, the paper/live mode) and ``controls`` (the kill
switch, the circuit breaker, equity evaluation, resets). Callers import from
``risk.services``; the names below are its public face.
"""

from core.actors import actor_label
from risk.audit import risk_event_record
from risk.exceptions import ModeTransitionRefused, RiskActionError
from risk.services.controls import (
    BREAKER_ALERT_KEY,
    BREAKER_RESET,
    KILL_SWITCH_RESET,
    ResetOutcome,
    can_activate_kill_switch,
    circuit_breaker_reset,
    circuit_breaker_reset_reject,
    equity_record,
    kill_switch_alert_key,
    killswitch_activate,
    killswitch_reset,
    killswitch_reset_reject,
    peak_rebase,
)
from risk.services.limits import (
    RESTRICTED_SYMBOLS,
    STRATEGY_LIMIT_FIELDS,
    SYMBOL_PATTERN,
    limit_update,
    restricted_symbol_add,
    restricted_symbol_remove,
    restricted_symbols,
    strategy_set_paused,
    strategy_transition_mode,
    strategy_update,
)

__all__ = [
    "BREAKER_ALERT_KEY",
    "BREAKER_RESET",
    "KILL_SWITCH_RESET",
    "RESTRICTED_SYMBOLS",
    "STRATEGY_LIMIT_FIELDS",
    "SYMBOL_PATTERN",
    "ModeTransitionRefused",
    "ResetOutcome",
    "RiskActionError",
    "actor_label",
    "can_activate_kill_switch",
    "circuit_breaker_reset",
    "circuit_breaker_reset_reject",
    "equity_record",
    "kill_switch_alert_key",
    "killswitch_activate",
    "killswitch_reset",
    "killswitch_reset_reject",
    "limit_update",
    "peak_rebase",
    "restricted_symbol_add",
    "restricted_symbol_remove",
    "restricted_symbols",
    "risk_event_record",
    "strategy_set_paused",
    "strategy_transition_mode",
    "strategy_update",
]
