"""The risk picture: equity, drawdowns, the breaker, capital deployed and every limit's use, typed.

What ``GET /v1/risk`` serves and the admin dashboard and breaker page draw.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.core.cache import cache

from orders.models import (
    Position,
)
from orders.selectors import exposure_summary, open_trade_risk, strategy_usage, working_orders
from risk import checks
from risk.models import RiskLimits, RiskState, trading_day

ZERO = Decimal(0)
RISK_PICTURE_PRICE_CACHE_S = 3


@dataclass(frozen=True)
class LimitUse:
    """One limit and how much of it is used now (``current`` and ``utilisation_pct`` rounded to 0.01)."""

    name: str
    unit: str  # "percent", "count" or "dollars"
    limit: Decimal | int
    current: Decimal | None
    utilisation_pct: Decimal | None


@dataclass(frozen=True)
class BreakerPicture:
    state: str
    since: dt.datetime
    reason: str


@dataclass(frozen=True)
class PeakPicture:
    """The high-water mark and who last restarted it."""

    equity: Decimal
    since: dt.datetime
    by: str | None
    reason: str


@dataclass(frozen=True)
class RiskPicture:
    """Equity, drawdowns (percent), the breaker, capital deployed and every limit's use: typed, not text."""

    strategies: list[dict[str, object]]  # each strategy's limits next to their use (selectors.strategy_usage)
    equity: Decimal
    day_start_equity: Decimal
    peak_equity: Decimal
    equity_at: dt.datetime | None
    peak: PeakPicture
    daily_drawdown_base: Decimal
    daily_drawdown: Decimal
    total_drawdown: Decimal
    circuit_breaker: BreakerPicture
    capital_deployed: Decimal
    # Held or worked without a fresh price: not in capital_deployed at a real
    # price, and every order that adds exposure is denied stale_price meanwhile.
    unpriced_symbols: list[str]
    working_orders: int
    limits: list[LimitUse]

    def limit(self, name: str) -> LimitUse:
        return next(item for item in self.limits if item.name == name)


def risk_picture(*, now: dt.datetime | None = None) -> RiskPicture:
    """Equity, drawdowns, the breaker, and each limit with its current utilisation (API and dashboard)."""
    from brokers.exceptions import BrokerError
    from brokers.registry import get_market_data

    now = now or dt.datetime.now(dt.UTC)
    RiskState.current()
    state = RiskState.objects.select_related("peak_reset_by").get(pk=1)
    limits = RiskLimits.current()
    held = set(Position.objects.exclude(qty=0).values_list("symbol", flat=True))
    held |= set(working_orders().values_list("symbol", flat=True).distinct())
    # The dashboard refreshes every few seconds per open page: marks are reused
    # for a few seconds instead of one market-data request per refresh.
    key = "risk-picture-prices:" + ",".join(sorted(held))
    prices = cache.get(key)
    if prices is None:
        try:
            prices = get_market_data().latest_trades(held) if held else {}
            cache.set(key, prices, RISK_PICTURE_PRICE_CACHE_S)
        except BrokerError:
            prices = {}
    exposure = exposure_summary(prices=prices, now=now)
    equity = state.equity or ZERO
    day_start = state.day_start_equity or equity
    drawdown_base = state.daily_drawdown_base(trading_day(now)) or equity
    peak = state.peak_equity or equity
    hundred = Decimal(100)
    daily_dd = checks.drawdown_pct(drawdown_base, equity)
    total_dd = checks.drawdown_pct(peak, equity)
    deployed = exposure.gross_position_value + exposure.working_add
    deployed_pct = deployed / equity * hundred if equity else None

    def item(name: str, unit: str, limit: Decimal | int, current: Decimal | int | None) -> LimitUse:
        utilisation = None
        if current is not None and limit:
            utilisation = (Decimal(current) / Decimal(limit) * hundred).quantize(Decimal("0.01"))
        return LimitUse(
            name=name, unit=unit, limit=limit,
            current=None if current is None else Decimal(current).quantize(Decimal("0.01")),
            utilisation_pct=utilisation,
        )

    return RiskPicture(
        strategies=strategy_usage(exposure=exposure, day_start_equity=day_start, equity=equity, now=now),
        equity=equity,
        day_start_equity=day_start,
        peak_equity=peak,
        equity_at=state.equity_at,
        peak=PeakPicture(
            equity=peak,
            since=state.peak_reset_at,
            by=state.peak_reset_by.get_username() if state.peak_reset_by else None,
            reason=state.peak_reset_reason,
        ),
        daily_drawdown_base=drawdown_base,
        daily_drawdown=daily_dd.quantize(Decimal("0.0001")),
        total_drawdown=total_dd.quantize(Decimal("0.0001")),
        circuit_breaker=BreakerPicture(
            state=state.breaker_state, since=state.breaker_since, reason=state.breaker_reason
        ),
        capital_deployed=deployed.quantize(Decimal("0.01")),
        unpriced_symbols=sorted(exposure.unpriced_symbols),
        working_orders=working_orders().count(),
        limits=[
            item("daily_drawdown_warning", "percent", limits.daily_drawdown_warning_pct, daily_dd),
            item("max_daily_drawdown", "percent", limits.max_daily_drawdown_pct, daily_dd),
            item("max_total_drawdown", "percent", limits.max_total_drawdown_pct, total_dd),
            item("max_capital_deployed", "percent", limits.max_capital_deployed_pct, deployed_pct),
            item("max_open_positions", "count", limits.max_open_positions, exposure.open_positions),
            # The open book against the per-trade limit: the largest risk one position carries now, to its
            # working stop, or at the assumed distance when it has none (never placed, or ended by the broker).
            item("max_risk_per_trade", "percent", limits.max_risk_per_trade_pct,
                 open_trade_risk(marks={s: t.price for s, t in prices.items()},
                                 assumed_stop_distance_pct=limits.assumed_stop_distance_pct) / equity * hundred
                 if equity else None),
            item("max_notional", "dollars", limits.max_notional, None),
            item("max_price_deviation", "percent", limits.max_price_deviation_pct, None),
            item("min_stock_price", "dollars", limits.min_stock_price, None),
        ],
    )
