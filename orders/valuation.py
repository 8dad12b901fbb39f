"""Positions valued at the last trade, the positions page's breaks and adjustments, and P&L by strategy.

Reads for the API's positions, the admin's positions and strategies pages, the
metrics and the end-of-day report; split from orders/selectors.py (order entry's
snapshot reads) so each module holds one concern.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q, QuerySet, Sum

from brokers.types import LastTrade
from orders.models import (
    OPEN_BREAK_STATES,
    AdjustmentStatus,
    Fill,
    LedgerAdjustment,
    Position,
    ReconciliationBreak,
    ReconciliationRun,
)
from orders.selectors import ZERO, trading_day_start
from risk.models import RiskState, Strategy, trading_day


@dataclass(frozen=True)
class ValuedPosition:
    """A ledger position marked at the last trade (None when no price could be had)."""

    position: Position
    last_price: Decimal | None
    market_value: Decimal | None
    unrealized_pnl: Decimal | None
    pct_of_equity: Decimal | None


def _last_prices(symbols: set[str]) -> dict[str, LastTrade]:
    from brokers.exceptions import BrokerError
    from brokers.registry import get_market_data

    if not symbols:
        return {}
    try:
        return get_market_data().latest_trades(symbols)
    except BrokerError:
        return {}  # shown without a value rather than not at all


def positions_valued(positions: QuerySet[Position], *, include_flat: bool = False) -> list[ValuedPosition]:
    """Each position with its last price, market value (signed), unrealised P&L and share of equity (percent)."""
    return value_positions(list(positions if include_flat else positions.exclude(qty=0)))


def value_positions(rows: list[Position]) -> list[ValuedPosition]:
    """``rows`` marked at the last trade: one market-data call for their symbols."""
    prices = _last_prices({p.symbol for p in rows})
    equity = RiskState.current().equity
    hundred = Decimal(100)
    valued = []
    for p in rows:
        trade = prices.get(p.symbol)
        last = trade.price if trade is not None else None
        if last is None and p.qty:
            valued.append(ValuedPosition(p, None, None, None, None))
            continue
        value = (p.qty * (last or ZERO)).quantize(Decimal("0.01"))  # a flat position is worth 0 at any price
        unrealised = (((last or ZERO) - p.avg_price) * p.qty).quantize(Decimal("0.01"))
        pct = (value / equity * hundred).quantize(Decimal("0.0001")) if equity else None
        valued.append(ValuedPosition(p, last, value, unrealised, pct))
    return valued


def breaks_to_show(run: ReconciliationRun | None) -> list[ReconciliationBreak]:
    """The open breaks, and those the latest run saw (one row per symbol while a difference persists)."""
    condition = Q(status__in=OPEN_BREAK_STATES)
    if run is not None:
        condition |= Q(last_run=run)
    return list(ReconciliationBreak.objects.filter(condition).order_by("symbol"))


def adjustments_by_position(positions: list[Position]) -> dict[int, list[LedgerAdjustment]]:
    """Applied ledger adjustments of these positions, oldest first (one query)."""
    keys = {(p.strategy_id, p.symbol): p.pk for p in positions}
    found: dict[int, list[LedgerAdjustment]] = {}
    if not keys:
        return found
    rows = LedgerAdjustment.objects.filter(
        status=AdjustmentStatus.APPLIED, strategy_id__in={s for s, _ in keys}, symbol__in={sym for _, sym in keys}
    ).select_related("decided_by", "created_by").order_by("decided_at", "id")
    for row in rows:
        pk = keys.get((row.strategy_id, row.symbol))
        if pk is not None:
            found.setdefault(pk, []).append(row)
    return found


@dataclass(frozen=True)
class StrategyPnl:
    """A strategy's P&L: realised today and since inception (fills), unrealised now (last prices)."""

    slug: str
    realised_today: Decimal
    realised_total: Decimal
    unrealised: Decimal | None  # None when a held symbol has no price
    open_positions: int
    unrealised_today: Decimal | None = None  # its change since the trading day began (orders/day_start.py)

    @property
    def total(self) -> Decimal | None:
        return None if self.unrealised is None else self.realised_total + self.unrealised

    @property
    def today(self) -> Decimal | None:
        """The daily P&L of the daily-loss limit: realised today + the change of unrealised since the day began."""
        if self.unrealised is None or self.unrealised_today is None:
            return None
        return self.realised_today + self.unrealised_today


def strategy_pnl(*, now: dt.datetime | None = None) -> list[StrategyPnl]:
    """Per strategy, from the positions (one row per strategy and symbol) and today's fills (index on strategy, at).

    "Today" is the daily-loss limit's daily P&L: realised today plus the
    change of unrealised P&L since the day's start mark (orders/day_start.py).
    """
    now = now or dt.datetime.now(dt.UTC)
    today = dict(
        Fill.objects.filter(at__gte=trading_day_start(now)).values_list("strategy__slug")
        .annotate(total=Sum("realized_pnl")).values_list("strategy__slug", "total")
    )
    positions = list(Position.objects.select_related("strategy"))
    valued = {v.position.pk: v for v in value_positions([p for p in positions if p.qty])}
    slugs = list(Strategy.objects.order_by("slug").values_list("slug", flat=True))
    realised: dict[str, Decimal] = dict.fromkeys(slugs, ZERO)
    unrealised: dict[str, Decimal | None] = dict.fromkeys(slugs, ZERO)
    open_positions: dict[str, int] = dict.fromkeys(slugs, 0)
    unrealised_today: dict[str, Decimal | None] = dict.fromkeys(slugs, ZERO)
    day = trading_day(now)
    for p in positions:
        slug = p.strategy.slug
        realised[slug] = realised.get(slug, ZERO) + p.realized_pnl
        if p.qty:
            open_positions[slug] = open_positions.get(slug, 0) + 1
            mark, so_far = valued[p.pk].unrealized_pnl, unrealised.get(slug, ZERO)
            unrealised[slug] = None if mark is None or so_far is None else so_far + mark
            start = p.day_start_unrealized_pnl if p.day_start_on == day else ZERO  # the snapshot's rule
            change = ZERO if mark is None else mark - start
            today_so_far = unrealised_today.get(slug, ZERO)
            unrealised_today[slug] = None if mark is None or today_so_far is None else today_so_far + change
    return [
        StrategyPnl(
            slug=slug, realised_today=today.get(slug) or ZERO, realised_total=realised[slug],
            unrealised=unrealised.get(slug, ZERO), open_positions=open_positions.get(slug, 0),
            unrealised_today=unrealised_today.get(slug, ZERO),
        )
        for slug in sorted(realised)
    ]
