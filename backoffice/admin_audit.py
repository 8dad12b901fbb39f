"""The risk audit trail in the admin: how changed fields read ("old → new", in people's words) and the
trail under a form.

Shared by every admin room (risk, controls, orders): a RiskEvent reads the
same wherever it is shown.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import Model, QuerySet
from django.utils.html import format_html_join

from backoffice.formatting import money
from orders.models import BreakStatus
from risk.models import (
    BreakerState,
    Mode,
    RiskEvent,
    RiskEventKind,
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
        return money(number)
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
