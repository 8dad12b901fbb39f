"""Builders for the pure check's tests: a fresh strategy's snapshot and an order intent, overridable."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal

from risk.checks import LastPrice, OrderIntent, RiskSnapshot, StrategyState, evaluate

NOW = dt.datetime(2026, 11, 20, 15, 0, tzinfo=dt.UTC)
D = Decimal


def snapshot(**overrides) -> RiskSnapshot:
    """$100,000 equity, no loss, no position, AAPL at $100 priced 5 s ago."""
    base = RiskSnapshot(
        now=NOW,
        equity=D("100000"),
        day_start_equity=D("100000"),
        peak_equity=D("100000"),
        strategy=StrategyState(slug="alpha"),
        last_price=LastPrice(price=D("100"), at=NOW - dt.timedelta(seconds=5)),
    )
    return replace(base, **overrides)


def order(side: str = "buy", qty: str = "10", **overrides) -> OrderIntent:
    """A market order of alpha in AAPL."""
    return OrderIntent(
        **{"strategy": "alpha", "symbol": "AAPL", "side": side, "qty": D(qty), "type": "market", **overrides}
    )


def buy(qty: str = "10", **overrides) -> OrderIntent:
    """``order`` with the quantity first (``side`` may still be overridden)."""
    return order(overrides.pop("side", "buy"), qty, **overrides)


def codes(intent: OrderIntent, snap: RiskSnapshot) -> list[str]:
    return [v.code for v in evaluate(intent, snap)]
