"""Reads shared by the order pipeline, the API, the admin and the jobs.

The pre-trade snapshot is built from aggregates over small sets (positions,
working orders through a partial index, today's fills of one strategy, the
last minute of one strategy's orders), so its cost does not grow with the
number of historical orders or fills.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import zoneinfo
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, models
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from brokers.exceptions import BrokerError
from brokers.registry import get_broker
from brokers.types import LastTrade
from core.sql import instance_from_json, literals, prepared_cursor
from orders.models import (
    Fill,
    Order,
    OrderEvent,
    Position,
    ReconciliationRun,
)
from orders.states import WORKING, OrderStatus
from risk import checks
from risk.models import (
    MAX_DUPLICATE_ORDER_WINDOW_S,
    KillSwitch,
    Mode,
    RestrictedSymbol,
    RiskLimits,
    RiskState,
    Strategy,
    trading_day,
)

logger = logging.getLogger(__name__)
ZERO = Decimal(0)
ASSET_CACHE_SECONDS = 3600
CLOCK_CACHE_SECONDS = 60


def trading_day_start(now: dt.datetime) -> dt.datetime:
    """Midnight of the exchange's trading day (America/New_York), as aware UTC."""
    tz = zoneinfo.ZoneInfo(settings.TRADING_DAY_TIME_ZONE)
    local = now.astimezone(tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(dt.UTC)


class LookupRefused(Exception):
    """The caller's budget of broker lookups is spent: the answer is not cached and the broker is not asked."""


@dataclass(frozen=True)
class AssetFlags:
    """What order entry needs of the broker's asset: tradable, and whether it may be sold short."""

    tradable: bool
    shortable: bool
    easy_to_borrow: bool


def asset_flags(symbol: str, *, may_ask_broker: Callable[[], bool] | None = None) -> AssetFlags:
    """Asks the broker once per symbol per hour (shared cache, "not tradable" included), not on every order.

    ``may_ask_broker`` is consulted only when the answer is not cached: a
    client naming new symbols spends its own lookup budget, not the
    account's broker rate limit (which the kill switch's cancels need).
    Raises BrokerError when the broker cannot answer.
    """
    key = f"asset-flags:{get_broker().name}:{symbol}"
    cached = cache.get(key)
    if cached is not None:
        return AssetFlags(*cached)
    if may_ask_broker is not None and not may_ask_broker():
        raise LookupRefused(symbol)
    asset = get_broker().get_asset(symbol)
    flags = AssetFlags(
        tradable=asset is not None and asset.tradable,
        shortable=asset is not None and asset.shortable,
        easy_to_borrow=asset is not None and asset.easy_to_borrow,
    )
    cache.set(key, (flags.tradable, flags.shortable, flags.easy_to_borrow), ASSET_CACHE_SECONDS)
    return flags


def symbol_is_tradable(symbol: str, *, may_ask_broker: Callable[[], bool] | None = None) -> bool:
    return asset_flags(symbol, may_ask_broker=may_ask_broker).tradable


CLOCK_UNKNOWN = checks.MarketClock(is_open=False, extended_is_open=False, known=False)


def market_clock(*, now: dt.datetime | None = None) -> checks.MarketClock:
    """The broker's clock, read at most once a minute across every process (the shared cache).

    The cached reading also expires at the session's next open or close, so it
    is never a minute late at the bell. A clock the broker cannot answer is
    unknown (not cached): the market_closed check denies rather than guess.
    """
    key = f"market-clock:{get_broker().name}"
    cached = cache.get(key)
    if cached is not None:
        return checks.MarketClock(is_open=cached[0], extended_is_open=cached[1])
    try:
        clock = get_broker().get_clock()
    except BrokerError as exc:
        logger.warning("market clock unavailable: %s", exc)
        return CLOCK_UNKNOWN
    now = now or dt.datetime.now(dt.UTC)
    edge = clock.next_close if clock.is_open else clock.next_open
    ttl = max(1, min(CLOCK_CACHE_SECONDS, int((edge - now).total_seconds())))
    cache.set(key, (clock.is_open, clock.extended_is_open), ttl)
    return checks.MarketClock(is_open=clock.is_open, extended_is_open=clock.extended_is_open)


def working_orders() -> QuerySet[Order]:
    return Order.objects.filter(status__in=WORKING)


def symbols_for_snapshot(symbol: str) -> set[str]:
    """The symbols whose prices a check needs: the order's, every open position's and every working order's.

    Asked of market data in one call, before the account lock; a working
    market order in a symbol the account does not hold is exposure too.
    """
    return entry_reads(client_order_id=None, symbol=symbol).symbols


@dataclass(frozen=True)
class EntryReads:
    """What order entry reads before the account lock (entry_reads)."""

    existing_id: str | None  # the order already stored under the request's client_order_id: a retry
    symbols: set[str]  # the symbols to price (symbols_for_snapshot)


def entry_reads(*, client_order_id: str | None, symbol: str) -> EntryReads:
    """Order entry's two reads before the account lock in ONE statement (issue 19).

    The symbols to price (held, working, and the order's own) and, given a
    client_order_id, the id of the order a retry finds stored under it. Plain
    SQL, so SQLite runs the same statement.
    """
    params = [client_order_id] if client_order_id is not None else []
    with prepared_cursor() as cursor:
        cursor.execute(_entry_reads_sql(connection.vendor, with_retry=client_order_id is not None), params)
        rows = cursor.fetchall()
    existing = next((found for held, found in rows if found is not None), None)
    return EntryReads(existing_id=existing, symbols={symbol, *(held for held, _ in rows if held is not None)})


@functools.cache
def _entry_reads_sql(vendor: str, *, with_retry: bool) -> str:
    """entry_reads' statement, written once per process (``vendor``: the text is the same on both)."""
    quote = connection.ops.quote_name
    orders, positions = quote(Order._meta.db_table), quote(Position._meta.db_table)
    sql = (
        f"SELECT symbol, NULL FROM {positions} WHERE qty <> 0 "
        f"UNION SELECT symbol, NULL FROM {orders} WHERE status IN ({literals(WORKING)})"
    )
    if with_retry:
        sql += f" UNION ALL SELECT NULL, CAST(id AS text) FROM {orders} WHERE client_order_id = %s"
    return sql


@dataclass
class Exposure:
    """Gross exposure of the account, and of one strategy in one symbol."""

    gross_position_value: Decimal = ZERO
    working_add: Decimal = ZERO
    exposed_symbols: set[str] = field(default_factory=set)  # open positions and symbols with adding orders
    # Exposed symbols without a fresh last price (a position is then shown at
    # its average cost, a working market order at nothing): the check denies.
    unpriced_symbols: set[str] = field(default_factory=set)
    strategy_position_value: Decimal = ZERO
    strategy_unrealised: Decimal = ZERO  # since entry
    strategy_unrealised_today: Decimal = ZERO  # its change since the trading day began
    strategy_working_add: Decimal = ZERO
    strategy_position_qty: Decimal = ZERO
    working_buy: Decimal = ZERO
    working_sell: Decimal = ZERO
    # The account (every strategy) in the order's symbol: concentration and short-sale checks.
    symbol_position_value: Decimal = ZERO
    symbol_working_add: Decimal = ZERO
    symbol_net_qty: Decimal = ZERO
    symbol_working_sell: Decimal = ZERO
    # Notional of working buys sent after ``buys_since`` (the account reading): buying power not yet reserved.
    working_buy_since: Decimal = ZERO
    # Every strategy's exposure (|positions at market| + adding working orders) and unrealised P&L.
    exposure_by_strategy: dict[int, Decimal] = field(default_factory=lambda: defaultdict(lambda: ZERO))
    unrealised_by_strategy: dict[int, Decimal] = field(default_factory=lambda: defaultdict(lambda: ZERO))

    @property
    def open_positions(self) -> int:
        return len(self.exposed_symbols)


def _position_rows() -> list[dict[str, Any]]:
    rows = Position.objects.exclude(qty=0).values(
        "strategy_id", "symbol", "qty", "avg_price", "day_start_on", "day_start_unrealized_pnl"
    )
    return [dict(row) for row in rows]


def _working_rows(buys_since: dt.datetime | None) -> list[dict[str, Any]]:
    """Working orders by strategy, symbol and side (through the partial index): what they still add."""
    sent_since = Q(created_at__gt=buys_since) if buys_since is not None else Q(pk__isnull=False)
    return list(
        Order.objects.filter(status__in=WORKING)
        .values("strategy_id", "symbol", "side")
        .annotate(
            remaining=Sum(F("qty") - F("filled_qty")),
            # A stop order counts at its stop price (it trades there or past it), a stop limit at its limit.
            limit_notional=Sum((F("qty") - F("filled_qty")) * Coalesce("limit_price", "stop_price")),
            unlimited=Count("id", filter=Q(limit_price__isnull=True, stop_price__isnull=True)),
            remaining_since=Sum(F("qty") - F("filled_qty"), filter=sent_since),
        )
        .order_by()
    )


def exposure_summary(
    *,
    prices: dict[str, LastTrade],
    now: dt.datetime,
    strategy_id: int | None = None,
    symbol: str | None = None,
    buys_since: dt.datetime | None = None,
) -> Exposure:
    """Positions marked at the last price plus working orders that add exposure (FIA); see exposure_from_rows."""
    return exposure_from_rows(
        positions=_position_rows(), working=_working_rows(buys_since), prices=prices, now=now,
        strategy_id=strategy_id, symbol=symbol,
    )


def exposure_from_rows(
    *,
    positions: list[dict[str, Any]],
    working: list[dict[str, Any]],
    prices: dict[str, LastTrade],
    now: dt.datetime,
    strategy_id: int | None = None,
    symbol: str | None = None,
) -> Exposure:
    """Positions marked at the last price plus working orders that add exposure (FIA).

    ``positions``: one row per strategy and symbol held; ``working``: working
    orders aggregated by strategy, symbol and side (_position_rows and
    _working_rows, or order entry's one-statement read): the cost follows the
    size of the book, not of history. Only a fresh price marks anything (the
    check's own rule, ``checks.price_is_fresh``); a symbol without one is
    listed in ``unpriced_symbols``, never counted as $0.
    """
    max_age = dt.timedelta(seconds=settings.MAX_PRICE_AGE_S)
    marks = {
        s: trade.price
        for s, trade in prices.items()
        if checks.price_is_fresh(checks.LastPrice(trade.price, trade.at), now=now, max_age=max_age)
    }
    result = Exposure()
    today = trading_day(now)
    net_by_symbol: dict[str, Decimal] = defaultdict(lambda: ZERO)
    positions_by_key: dict[tuple[int, str], Decimal] = {}
    for row in positions:
        mark = marks.get(row["symbol"])
        if mark is None:
            result.unpriced_symbols.add(row["symbol"])
            mark = row["avg_price"]
        value = abs(row["qty"] * mark)
        result.gross_position_value += value
        net_by_symbol[row["symbol"]] += row["qty"]
        positions_by_key[(row["strategy_id"], row["symbol"])] = row["qty"]
        result.exposure_by_strategy[row["strategy_id"]] += value
        result.unrealised_by_strategy[row["strategy_id"]] += (mark - row["avg_price"]) * row["qty"]
        if row["symbol"] == symbol:
            result.symbol_position_value += value
            result.symbol_net_qty += row["qty"]
        if row["strategy_id"] == strategy_id:
            result.strategy_position_value += value
            unrealised = (mark - row["avg_price"]) * row["qty"]
            result.strategy_unrealised += unrealised
            # Without today's mark (the day-start job has not reached it) it counts since entry:
            # a loss is never dropped for want of a mark.
            start = row["day_start_unrealized_pnl"] if row["day_start_on"] == today else ZERO
            result.strategy_unrealised_today += unrealised - start
            if row["symbol"] == symbol:
                result.strategy_position_qty = row["qty"]
    result.exposed_symbols = {s for s, q in net_by_symbol.items() if q != 0}

    for row in working:
        remaining = row["remaining"] or ZERO
        position = positions_by_key.get((row["strategy_id"], row["symbol"]), ZERO)
        # The part of a working order that closes the position does not add exposure.
        reducing = ZERO
        if row["side"] == "sell" and position > 0:
            reducing = min(remaining, position)
        elif row["side"] == "buy" and position < 0:
            reducing = min(remaining, -position)
        adding = remaining - reducing
        mark = marks.get(row["symbol"])
        price = mark if mark is not None else ZERO
        if row["limit_notional"] is not None and remaining:
            price = max(price, row["limit_notional"] / remaining)  # a limit order counts at its limit when higher
        if adding > 0 and mark is None and row["unlimited"]:
            # A market order without a fresh last price has no price at all:
            # say so, rather than let it count as $0.
            result.unpriced_symbols.add(row["symbol"])
        result.working_add += adding * price
        if adding > 0:
            result.exposed_symbols.add(row["symbol"])
        result.exposure_by_strategy[row["strategy_id"]] += adding * price
        if row["side"] == "buy" and row["remaining_since"]:
            result.working_buy_since += row["remaining_since"] * price
        if row["symbol"] == symbol:
            result.symbol_working_add += adding * price
            if row["side"] == "sell":
                result.symbol_working_sell += remaining
        if row["strategy_id"] == strategy_id:
            result.strategy_working_add += adding * price
            if row["symbol"] == symbol:
                if row["side"] == "buy":
                    result.working_buy += remaining
                else:
                    result.working_sell += remaining
    return result


def open_trade_risk(*, marks: dict[str, Decimal], assumed_stop_distance_pct: Decimal) -> Decimal:
    """The largest risk one open position carries now, in dollars (docs/risk-policy.md, risk per trade).

    Each strategy's position in a symbol risks, for the part a working stop
    order covers (a stop-loss leg, or a stop order of its own, on the closing
    side), the distance from the mark to that stop; for the rest, the assumed
    stop distance of its market value: a position whose stop was never placed,
    or that the broker ended, counts as unprotected. A position without a mark
    is left out (it is named in the picture's ``unpriced_symbols``).
    """
    stops: dict[tuple[int, str], list[tuple[str, Decimal, Decimal]]] = defaultdict(list)
    for strategy_id, symbol, side, stop_price, remaining in (
        Order.objects.filter(status__in=WORKING, type__in=["stop", "stop_limit"])
        .annotate(remaining=F("qty") - F("filled_qty"))
        .values_list("strategy_id", "symbol", "side", "stop_price", "remaining")
    ):
        stops[(strategy_id, symbol)].append((side, stop_price, remaining))
    largest = ZERO
    for strategy_id, symbol, qty in Position.objects.exclude(qty=0).values_list("strategy_id", "symbol", "qty"):
        mark = marks.get(symbol)
        if mark is None:
            continue
        closing_side = "sell" if qty > 0 else "buy"
        uncovered, risk = abs(qty), ZERO
        for side, stop_price, remaining in stops.get((strategy_id, symbol), []):
            if side != closing_side or uncovered <= 0:
                continue
            covered = min(uncovered, remaining)
            risk += covered * max(ZERO, mark - stop_price if qty > 0 else stop_price - mark)
            uncovered -= covered
        risk += uncovered * mark * assumed_stop_distance_pct / Decimal(100)
        largest = max(largest, risk)
    return largest


@dataclass(frozen=True)
class SnapshotRows:
    """What the pre-trade check reads from the database, read inside the account lock (build_snapshot)."""

    state: RiskState
    limits: RiskLimits
    strategy: Strategy
    restriction: str | None  # the restricted symbol's reason
    switches: dict[int | None, bool]  # kill switches: None is the global one
    positions: list[dict[str, Any]]  # as _position_rows
    working: list[dict[str, Any]]  # as _working_rows(state.equity_at)
    realised_today: Decimal  # the strategy's realised P&L since the trading day began
    orders_last_second: int
    orders_last_minute: int
    identical_recent: int  # the duplicate-order check's count


def _identical(intent: checks.OrderIntent, since: dt.datetime) -> Q:
    """Orders like ``intent`` since ``since`` that passed (a runaway loop), not the ones already denied."""
    return Q(
        created_at__gte=since,
        symbol=intent.symbol,
        side=intent.side,
        qty=intent.qty,
        type=intent.type,
        limit_price=intent.limit_price,
        stop_price=intent.stop_price,
    ) & ~Q(status=OrderStatus.DENIED)


def _snapshot_rows_orm(*, strategy_id: int, intent: checks.OrderIntent, now: dt.datetime) -> SnapshotRows:
    """The portable read (SQLite, the embedded default): one query per row set."""
    limits = RiskLimits.current()
    state = RiskState.current()
    strategy = Strategy.objects.get(pk=strategy_id)
    restriction = RestrictedSymbol.objects.filter(symbol=intent.symbol).values_list("reason", flat=True).first()
    switches: dict[int | None, bool] = dict(
        KillSwitch.objects.filter(Q(strategy__isnull=True) | Q(strategy_id=strategy_id)).values_list(
            "strategy_id", "active"
        )
    )
    realised_today = Fill.objects.filter(strategy_id=strategy_id, at__gte=trading_day_start(now)).aggregate(
        total=Coalesce(Sum("realized_pnl"), ZERO)
    )["total"]
    duplicate_window = dt.timedelta(seconds=limits.duplicate_order_window_s)
    recent = Order.objects.filter(
        strategy_id=strategy_id, created_at__gte=now - max(dt.timedelta(seconds=60), duplicate_window)
    ).aggregate(
        minute=Count("id", filter=Q(created_at__gte=now - dt.timedelta(seconds=60))),
        second=Count("id", filter=Q(created_at__gte=now - dt.timedelta(seconds=1))),
        identical=Count("id", filter=_identical(intent, now - duplicate_window)),
    )
    return SnapshotRows(
        state=state, limits=limits, strategy=strategy, restriction=restriction, switches=switches,
        positions=_position_rows(), working=_working_rows(state.equity_at), realised_today=realised_today,
        orders_last_second=recent["second"], orders_last_minute=recent["minute"],
        identical_recent=recent["identical"],
    )


# Order entry's snapshot in ONE statement on PostgreSQL (issue 19): the same reads as
# _snapshot_rows_orm, each a scalar subquery, row sets as JSON. One round trip and no
# ORM compilation inside the account lock. It runs after the lock statement, never
# merged with it: a statement's snapshot is taken when it starts, so a read merged
# into the lock statement would predate the wait for the lock.
_SNAPSHOT_SQL = """
WITH limits AS (SELECT * FROM risk_risklimits WHERE id = 1),
     state AS (SELECT * FROM risk_riskstate WHERE id = 1)
SELECT
  (SELECT row_to_json(state) FROM state)::text,
  (SELECT row_to_json(limits) FROM limits)::text,
  (SELECT row_to_json(s) FROM risk_strategy s WHERE s.id = %(strategy)s)::text,
  (SELECT reason FROM risk_restrictedsymbol WHERE symbol = %(symbol)s),
  (SELECT json_agg(json_build_array(strategy_id, active)) FROM risk_killswitch
    WHERE strategy_id IS NULL OR strategy_id = %(strategy)s)::text,
  (SELECT json_agg(p) FROM (
     SELECT strategy_id, symbol, qty, avg_price, day_start_on, day_start_unrealized_pnl
     FROM orders_position WHERE qty <> 0) p)::text,
  (SELECT json_agg(w) FROM (
     SELECT strategy_id, symbol, side,
            SUM(qty - filled_qty) AS remaining,
            SUM((qty - filled_qty) * COALESCE(limit_price, stop_price)) AS limit_notional,
            COUNT(*) FILTER (WHERE limit_price IS NULL AND stop_price IS NULL) AS unlimited,
            SUM(qty - filled_qty) FILTER (
              WHERE (SELECT equity_at FROM state) IS NULL OR created_at > (SELECT equity_at FROM state)
            ) AS remaining_since
     FROM orders_order WHERE status IN ({working})
     GROUP BY strategy_id, symbol, side) w)::text,
  (SELECT COALESCE(SUM(realized_pnl), 0) FROM orders_fill
    WHERE strategy_id = %(strategy)s AND at >= %(day_start)s
      -- For the plan prepared once (see below): the trading day began at most 25 hours ago.
      AND at >= statement_timestamp() - interval '{day_window_s} seconds'),
  (SELECT json_build_array(
            COUNT(*) FILTER (WHERE created_at >= %(minute_ago)s),
            COUNT(*) FILTER (WHERE created_at >= %(second_ago)s),
            COUNT(*) FILTER (
              WHERE created_at >= %(now)s - (SELECT duplicate_order_window_s FROM limits) * interval '1 second'
              AND symbol = %(symbol)s AND side = %(side)s AND qty = %(qty)s AND type = %(type)s
              AND limit_price IS NOT DISTINCT FROM %(limit_price)s
              AND stop_price IS NOT DISTINCT FROM %(stop_price)s AND status <> %(denied)s))
   FROM orders_order
   WHERE strategy_id = %(strategy)s
     -- The constant bound (the longest window a limit may set) is for the planner: without
     -- it the row estimate is a third of the strategy's history and it plans a parallel scan.
     AND created_at >= %(longest_window_ago)s
     -- The same bound on the database's clock, an hour wider, for the plan prepared once (below).
     AND created_at >= statement_timestamp() - interval '{planner_window_s} seconds'
     AND created_at >= LEAST(%(minute_ago)s,
                             %(now)s - (SELECT duplicate_order_window_s FROM limits) * interval '1 second'))::text
"""


# The statement is prepared once per connection and its plan made once, without the
# parameters' values (plan_cache_mode=force_generic_plan, adr/0013). The planner estimates
# "created_at >= $n" as a third of the rows, which with a long history would make that plan
# scan it. The two bounds on statement_timestamp(), which the planner can evaluate, make its
# estimates the real ones: the strategy's last hours. They never narrow the result as long
# as the database's clock is less than an hour ahead of the application's (the windows are
# measured on the application's clock, as orders are stamped).
PLANNER_MARGIN_S = 3600


@functools.cache
def _snapshot_sql() -> str:
    """The snapshot statement, written once per process."""
    return _SNAPSHOT_SQL.format(
        working=literals(WORKING),
        planner_window_s=max(60, MAX_DUPLICATE_ORDER_WINDOW_S) + PLANNER_MARGIN_S,
        day_window_s=25 * 3600 + PLANNER_MARGIN_S,  # a trading day (a DST change's 25 hours at most)
    )


def _rows_from_json(model: type[models.Model], text: str | None) -> list[dict[str, Any]]:
    """json_agg's rows, each value typed by the model field of the same name (aggregates: Decimal or int)."""
    if text is None:
        return []
    fields = {f.column: f for f in model._meta.concrete_fields}
    return [
        {key: fields[key].to_python(value) if key in fields else value for key, value in row.items()}
        for row in json.loads(text, parse_float=Decimal)
    ]


def _snapshot_rows_sql(*, strategy_id: int, intent: checks.OrderIntent, now: dt.datetime) -> SnapshotRows:
    params: dict[str, Any] = {
        "strategy": strategy_id, "symbol": intent.symbol, "side": intent.side, "qty": intent.qty,
        "type": intent.type, "limit_price": intent.limit_price, "stop_price": intent.stop_price,
        "denied": OrderStatus.DENIED,
        "now": now, "minute_ago": now - dt.timedelta(seconds=60), "second_ago": now - dt.timedelta(seconds=1),
        "longest_window_ago": now - dt.timedelta(seconds=max(60, MAX_DUPLICATE_ORDER_WINDOW_S)),
        "day_start": trading_day_start(now),
    }
    with prepared_cursor() as cursor:
        cursor.execute(_snapshot_sql(), params)
        state_json, limits_json, strategy_json, restriction, switches, positions, working_rows, realised, recent = (
            cursor.fetchone()
        )
    state = instance_from_json(RiskState, state_json)
    limits = instance_from_json(RiskLimits, limits_json)
    strategy = instance_from_json(Strategy, strategy_json)
    if state is None or limits is None:  # created by migrations; a flushed test database may lack them
        RiskState.current()
        RiskLimits.current()
        return _snapshot_rows_sql(strategy_id=strategy_id, intent=intent, now=now)
    if strategy is None:
        raise Strategy.DoesNotExist(strategy_id)
    minute, second, identical = json.loads(recent)
    return SnapshotRows(
        state=state, limits=limits, strategy=strategy, restriction=restriction,
        switches=dict(json.loads(switches or "[]")),
        positions=_rows_from_json(Position, positions),
        working=_rows_from_json(Order, working_rows),
        realised_today=realised, orders_last_second=second, orders_last_minute=minute, identical_recent=identical,
    )


def snapshot_rows(*, strategy_id: int, intent: checks.OrderIntent, now: dt.datetime) -> SnapshotRows:
    """Everything the check reads from the database: one statement on PostgreSQL (call it under the account lock)."""
    if connection.vendor == "postgresql":
        return _snapshot_rows_sql(strategy_id=strategy_id, intent=intent, now=now)
    return _snapshot_rows_orm(strategy_id=strategy_id, intent=intent, now=now)


def build_snapshot(
    *,
    strategy_id: int,
    intent: checks.OrderIntent,
    prices: dict[str, LastTrade],
    now: dt.datetime,
    clock: checks.MarketClock | None = None,
    asset: AssetFlags | None = None,
) -> checks.RiskSnapshot:
    """Everything the pure check needs, read inside the account lock (snapshot_rows, then snapshot_from_rows)."""
    rows = snapshot_rows(strategy_id=strategy_id, intent=intent, now=now)
    return snapshot_from_rows(rows, intent=intent, prices=prices, now=now, clock=clock, asset=asset)


def snapshot_from_rows(
    rows: SnapshotRows,
    *,
    intent: checks.OrderIntent,
    prices: dict[str, LastTrade],
    now: dt.datetime,
    clock: checks.MarketClock | None = None,
    asset: AssetFlags | None = None,
) -> checks.RiskSnapshot:
    """The check's snapshot from what snapshot_rows read and the prices fetched before the lock.

    The broker is not asked here: the account comes from the last equity
    reading (``rows.state``), the clock and the asset from the shared cache
    (``clock`` and ``asset`` when the caller read them before taking the lock).
    """
    state, limits_row, strategy, switches = rows.state, rows.limits, rows.strategy, rows.switches
    restriction = rows.restriction
    clock = clock or market_clock(now=now)
    asset = asset or asset_flags(intent.symbol)
    exposure = exposure_from_rows(
        positions=rows.positions, working=rows.working, prices=prices, now=now, strategy_id=strategy.pk,
        symbol=intent.symbol,
    )
    realised_today = rows.realised_today
    recent = {
        "second": rows.orders_last_second, "minute": rows.orders_last_minute, "identical": rows.identical_recent
    }

    deployment_mode = Mode.LIVE if settings.TRADING_MODE == "live" else Mode.PAPER
    strategy_state = checks.StrategyState(
        slug=strategy.slug,
        paused=strategy.paused,
        kill_switch_active=bool(switches.get(strategy.pk, False)),
        max_allocation_amount=strategy.max_allocation_amount,
        max_allocation_pct=strategy.max_allocation_pct,
        max_daily_loss_pct=strategy.max_daily_loss_pct,
        max_orders_per_second=strategy.max_orders_per_second,
        max_orders_per_minute=strategy.max_orders_per_minute,
        orders_last_second=recent["second"],
        orders_last_minute=recent["minute"],
        exposure=exposure.strategy_position_value + exposure.strategy_working_add,
        # Realised today plus the change of unrealised since the day began (orders/day_start.py).
        daily_pnl=realised_today + exposure.strategy_unrealised_today,
        position_qty=exposure.strategy_position_qty,
        working_buy_qty=exposure.working_buy,
        working_sell_qty=exposure.working_sell,
        mode=strategy.mode,
        mode_allowed=strategy.mode == deployment_mode,
    )
    equity = state.equity if state.equity is not None else ZERO
    last = prices.get(intent.symbol)
    return checks.RiskSnapshot(
        now=now,
        equity=equity,
        day_start_equity=state.day_start_equity or equity,
        peak_equity=state.peak_equity or equity,
        drawdown_base_equity=state.daily_drawdown_base(trading_day(now)),
        strategy=strategy_state,
        limits=checks.Limits(
            max_daily_drawdown_pct=limits_row.max_daily_drawdown_pct,
            max_total_drawdown_pct=limits_row.max_total_drawdown_pct,
            max_capital_deployed_pct=limits_row.max_capital_deployed_pct,
            max_open_positions=limits_row.max_open_positions,
            max_risk_per_trade_pct=limits_row.max_risk_per_trade_pct,
            max_notional=limits_row.max_notional,
            max_price_deviation_pct=limits_row.max_price_deviation_pct,
            min_stock_price=limits_row.min_stock_price,
            assumed_stop_distance_pct=limits_row.assumed_stop_distance_pct,
            max_order_qty=limits_row.max_order_qty,
            max_symbol_concentration_pct=limits_row.max_symbol_concentration_pct,
            duplicate_order_max=limits_row.duplicate_order_max,
            duplicate_order_window_s=limits_row.duplicate_order_window_s,
            allow_short_selling=limits_row.allow_short_selling,
            market_closed_policy=limits_row.market_closed_policy,
        ),
        global_kill_switch_active=bool(switches.get(None, False)),
        breaker_state=state.breaker_state,
        last_price=checks.LastPrice(price=last.price, at=last.at) if last else None,
        max_price_age=dt.timedelta(seconds=settings.MAX_PRICE_AGE_S),
        gross_position_value=exposure.gross_position_value,
        working_add_notional=exposure.working_add,
        open_positions=exposure.open_positions,
        symbol_has_position=intent.symbol in exposure.exposed_symbols,
        unpriced_symbols=tuple(sorted(exposure.unpriced_symbols)),
        symbol=checks.SymbolState(
            restricted=restriction is not None,
            restriction_reason=restriction or "",
            exposure=exposure.symbol_position_value + exposure.symbol_working_add,
            net_position_qty=exposure.symbol_net_qty,
            working_sell_qty=exposure.symbol_working_sell,
            shortable=asset.shortable,
            easy_to_borrow=asset.easy_to_borrow,
        ),
        account=checks.AccountStatus(
            status=state.account_status or "ACTIVE",
            trading_blocked=state.trading_blocked,
            account_blocked=state.account_blocked,
            buying_power=state.buying_power,
        ),
        clock=clock,
        working_buy_notional=exposure.working_buy_since,
        identical_recent_orders=recent["identical"],
    )


def strategy_usage(
    *, exposure: Exposure, equity: Decimal, day_start_equity: Decimal, now: dt.datetime
) -> list[dict[str, object]]:
    """Each strategy's limits next to their use: allocation, daily loss, the message throttle.

    The same figures the pre-trade check reads (exposure at market with
    working orders, today's realised plus unrealised P&L, orders of the last
    minute), from three aggregates over small sets.
    """
    realised = dict(
        Fill.objects.filter(at__gte=trading_day_start(now))
        .values("strategy_id")
        .annotate(total=Sum("realized_pnl"))
        .values_list("strategy_id", "total")
    )
    last_minute = dict(  # as the throttle counts: every message, denied ones included
        Order.objects.filter(created_at__gte=now - dt.timedelta(seconds=60))
        .values("strategy_id")
        .annotate(count=Count("id"))
        .values_list("strategy_id", "count")
    )
    hundred = Decimal(100)
    cents = Decimal("0.01")
    usage = []
    for strategy in Strategy.objects.order_by("slug"):
        allocation = (
            strategy.max_allocation_amount
            if strategy.max_allocation_amount is not None
            else equity * strategy.max_allocation_pct / hundred
        )
        daily_pnl = (realised.get(strategy.pk) or ZERO) + exposure.unrealised_by_strategy.get(strategy.pk, ZERO)
        usage.append(
            {
                "strategy": strategy.slug,
                "mode": strategy.mode,
                "paused": strategy.paused,
                "allocation": allocation.quantize(cents),
                "allocation_used": exposure.exposure_by_strategy.get(strategy.pk, ZERO).quantize(cents),
                "daily_pnl": daily_pnl.quantize(cents),
                "daily_loss_limit": (day_start_equity * strategy.max_daily_loss_pct / hundred).quantize(cents),
                "orders_last_minute": last_minute.get(strategy.pk, 0),
                "max_orders_per_minute": strategy.max_orders_per_minute,
                "max_orders_per_second": strategy.max_orders_per_second,
            }
        )
    return usage


def latest_reconciliation() -> ReconciliationRun | None:
    return ReconciliationRun.objects.prefetch_related("breaks").order_by("-at").first()


def visible_orders(user) -> QuerySet[Order]:  # noqa: ANN001
    """Officers and auditors see every order; an API client sees its strategies' orders only."""
    qs = Order.objects.select_related("strategy")
    if user.has_perm("orders.view_order"):
        return qs
    return qs.filter(strategy__clients=user)


def visible_positions(user) -> QuerySet[Position]:  # noqa: ANN001
    qs = Position.objects.select_related("strategy")
    if user.has_perm("orders.view_position"):
        return qs
    return qs.filter(strategy__clients=user)


def visible_fills(user) -> QuerySet[Fill]:  # noqa: ANN001
    """Officers and auditors see every fill; an API client sees its strategies' fills only."""
    qs = Fill.objects.select_related("strategy", "order")
    if user.has_perm("orders.view_fill"):
        return qs
    return qs.filter(strategy__clients=user)


def visible_events(user) -> QuerySet[OrderEvent]:  # noqa: ANN001
    """The event feed follows order visibility: a client sees its strategies' orders' events only."""
    qs = OrderEvent.objects.all()
    if user.has_perm("orders.view_order"):
        return qs
    return qs.filter(strategy__clients=user)
