"""SimulatedBroker: a paper venue kept in the database.

The book (prices, orders, positions, the account) lives in ``brokers.models``
so that the web process, the Celery worker and beat, which are separate OS
processes, all trade against one venue. It speaks Alpaca's vocabulary and
answers the way Alpaca does wherever the order pipeline depends on it:

* ``submit_order`` only accepts or rejects; nothing fills inside it. Fills
  happen on ``tick()``, one step of the market that a Celery beat task drives
  (``brokers.tasks.simulated_market_tick``) and tests call directly.
* ``filled_qty`` / ``filled_avg_price`` are cumulative, as Alpaca reports them.
* A duplicate ``client_order_id`` is refused with Alpaca's 422 / 40010001, and
  the database's unique constraint (not a Python check) is what guarantees it.

Concurrency: every write runs in ``transaction.atomic()`` (a savepoint when the
caller already has a transaction) and takes row locks in one order, so that a
tick in the worker and a cancel or flatten from the web cannot both apply:
``SimState`` -> ``SimAccount`` -> ``SimPrice`` -> ``SimOrder`` (by submission)
-> ``SimPosition``. On PostgreSQL these are ``SELECT ... FOR UPDATE`` locks; on
SQLite ``select_for_update`` is a no-op and the settings' ``BEGIN IMMEDIATE``
serialises writers for the same effect.

Past 500 lines on purpose: it is one concern, the simulated venue (its
order book, matching on ``tick()`` and account, under one lock order that
must be read in one place).
"""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from brokers.base import MAX_PAGE_SIZE, BrokerClient, MarketData
from brokers.exceptions import BrokerRejected, OrderNotFound
from brokers.models import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    SimAccount,
    SimAsset,
    SimOrder,
    SimOrderStatus,
    SimPosition,
    SimPrice,
    SimState,
)
from brokers.types import (
    Account,
    Asset,
    BrokerOrder,
    BrokerPosition,
    CancelResult,
    Clock,
    LastTrade,
    OrderRequest,
    OrderType,
    ReplaceRequest,
    Side,
    TimeInForce,
)
from core.sql import insert_values, mark_saved, placeholders, prepared_cursor

# Alpaca's answer to a reused client_order_id. The order pipeline resends with
# the same id after an ambiguous submit and relies on exactly this refusal.
DUPLICATE_CLIENT_ORDER_ID_CODE = 40010001
DUPLICATE_CLIENT_ORDER_ID_MESSAGE = "client_order_id must be unique"
# Orders that close_all_positions creates carry this prefix, so that nobody
# mistakes them for orders of the back office.
CLOSE_ORDER_PREFIX = "sim-close-"

CENT = Decimal("0.01")
SUB_PENNY = Decimal("0.0001")
QTY_QUANTUM = Decimal("0.00000001")
AVERAGE_QUANTUM = Decimal("0.00000001")
MONEY_QUANTUM = Decimal("0.0001")
ZERO = Decimal("0")
MAX_PRICE = Decimal("1000000000")  # well inside the price columns' 20 digits
OPEN = list(OPEN_STATUSES)


def _trading_day(at: dt.datetime) -> dt.date:
    """The America/New_York trading day ``at`` belongs to (settings.TRADING_DAY_TIME_ZONE)."""
    return at.astimezone(ZoneInfo(settings.TRADING_DAY_TIME_ZONE)).date()


def _next_trading_day_start(at: dt.datetime) -> dt.datetime:
    exchange_zone = ZoneInfo(settings.TRADING_DAY_TIME_ZONE)
    tomorrow = _trading_day(at) + dt.timedelta(days=1)
    return dt.datetime.combine(tomorrow, dt.time.min, tzinfo=exchange_zone).astimezone(dt.UTC)


def _price_increment(price: Decimal) -> Decimal:
    # US equities quote in cents from $1 up, in hundredths of a cent below.
    return CENT if price >= 1 else SUB_PENNY


def _round_to_increment(price: Decimal) -> Decimal:
    rounded = price.quantize(_price_increment(price), rounding=ROUND_HALF_EVEN)
    # A random walk must never reach zero: the venue always has a positive last trade.
    return max(rounded, SUB_PENNY)


def _money(amount: Decimal) -> Decimal:
    return amount.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)


def _walk_return(*, seed: int, tick_number: int, symbol: str, volatility: Decimal) -> Decimal:
    """One tick's return for one symbol: a function of (seed, tick, symbol) only.

    ``random.Random`` hashes a str seed with SHA-512, so the draw is the same in
    every process and on every run (unlike ``hash()``, which is salted).
    """
    draw = random.Random(f"{seed}:{tick_number}:{symbol}").gauss(0.0, 1.0)
    # The float lives only for the draw; money arithmetic stays Decimal.
    return Decimal(f"{draw:.8f}") * volatility


# --- Locked reads of the singletons ------------------------------------------


def _locked_state() -> SimState:
    # get_or_create, not get: a transactional test (or an operator) may have
    # flushed the seed rows, and the market must still work.
    state, _ = SimState.objects.select_for_update().get_or_create(pk=1)
    return state


def _locked_account() -> SimAccount:
    account, _ = SimAccount.objects.select_for_update().get_or_create(pk=1)
    return account


def _current_prices(symbols: Iterable[str] | None = None) -> dict[str, Decimal]:
    rows = SimPrice.objects.all() if symbols is None else SimPrice.objects.filter(symbol__in=list(symbols))
    return dict(rows.values_list("symbol", "price"))


def _equity(cash: Decimal) -> Decimal:
    positions = list(SimPosition.objects.all())
    prices = _current_prices(position.symbol for position in positions)
    market_value = sum(
        (position.qty * prices.get(position.symbol, position.avg_entry_price) for position in positions), ZERO
    )
    return _money(cash + market_value)


def _capture_day_start_equity(account: SimAccount, now: dt.datetime) -> None:
    """Alpaca's ``last_equity``: the equity the account had when its trading day began.

    The simulated market never closes, so the day starts the first time the
    account is read or ticked on a new America/New_York day. ``account`` must be locked.
    """
    today = _trading_day(now)
    if account.last_equity_day == today:
        return
    account.last_equity = _equity(account.cash)
    account.last_equity_day = today
    account.save(update_fields=["last_equity", "last_equity_day"])


def _reserved_for_open_buys(prices: dict[str, Decimal]) -> Decimal:
    reserved = ZERO
    for order in SimOrder.objects.filter(status__in=OPEN, side=Side.BUY):
        price = order.limit_price or order.stop_price or prices.get(order.symbol, ZERO)
        reserved += order.remaining_qty * price
    return _money(reserved)


def _buying_power(cash: Decimal) -> Decimal:
    """Cash not yet promised to working buy orders: a cash account's buying power.

    Short-sale proceeds land in cash, so a short raises buying power; the
    simulated venue does not model margin (documented simplification).
    """
    return max(ZERO, _money(cash - _reserved_for_open_buys(_current_prices())))


# --- Market-side services ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimFill:
    broker_order_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one tick did: the tick number, the new prices and every fill, cancel and expiry."""

    tick_number: int
    at: dt.datetime
    prices: dict[str, Decimal]
    fills: list[SimFill] = field(default_factory=list)
    canceled: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)


class _Book:
    """Positions and cash, locked for the length of one tick and written back once."""

    def __init__(self, account: SimAccount) -> None:
        self.account = account
        self.positions = {position.symbol: position for position in SimPosition.objects.select_for_update()}
        self.touched: set[str] = set()

    def apply_fill(self, *, symbol: str, side: Side, qty: Decimal, price: Decimal) -> None:
        signed_qty = qty if side == Side.BUY else -qty
        position = self.positions.get(symbol)
        old_qty = position.qty if position is not None else ZERO
        new_qty = old_qty + signed_qty
        if position is None:
            position = SimPosition(symbol=symbol, qty=ZERO, avg_entry_price=price)
            self.positions[symbol] = position
        if old_qty == 0 or (old_qty > 0) == (signed_qty > 0):
            # Adding to a position (or opening one): the entry price is the
            # quantity-weighted average of the old entry and this fill.
            position.avg_entry_price = (
                (abs(old_qty) * position.avg_entry_price + qty * price) / (abs(old_qty) + qty)
            ).quantize(AVERAGE_QUANTUM, rounding=ROUND_HALF_EVEN)
        elif abs(signed_qty) > abs(old_qty):
            # Crossed through zero: what is left was opened by this fill.
            position.avg_entry_price = price
        # Reducing without crossing keeps the entry price, as Alpaca does.
        position.qty = new_qty
        self.touched.add(symbol)
        notional = _money(qty * price)
        self.account.cash += -notional if side == Side.BUY else notional

    def save(self) -> None:
        for symbol in self.touched:
            position = self.positions[symbol]
            if position.qty == 0:
                # Alpaca lists no flat positions.
                if position.pk is not None:
                    position.delete()
            else:
                position.save()
        self.account.save(update_fields=["cash"])


STOP_TYPES = (OrderType.STOP, OrderType.STOP_LIMIT)
LIMIT_TYPES = (OrderType.LIMIT, OrderType.STOP_LIMIT)


def _stop_reached(order: SimOrder, price: Decimal) -> bool:
    """A buy stop triggers at or above its stop price, a sell stop at or below (Alpaca's rule)."""
    assert order.stop_price is not None  # a stop order always has one (submit_order checks)
    return price >= order.stop_price if order.side == Side.BUY else price <= order.stop_price


def _fill_price(order: SimOrder, price: Decimal) -> Decimal | None:
    """The price ``order`` trades at now, or None if it is not marketable.

    A limit order that the market has crossed trades at the market, which is
    its limit price or better.
    """
    if order.type in STOP_TYPES and not order.stop_triggered:
        return None
    if order.type in (OrderType.MARKET, OrderType.STOP):
        return price
    assert order.limit_price is not None  # a limit order always has one (submit_order checks)
    if order.side == Side.BUY and price <= order.limit_price:
        return price
    if order.side == Side.SELL and price >= order.limit_price:
        return price
    return None


def _close(order: SimOrder, status: SimOrderStatus, now: dt.datetime) -> None:
    order.status = status
    order.updated_at = now
    if status == SimOrderStatus.CANCELED:
        order.canceled_at = now


def _work_order(
    order: SimOrder,
    *,
    prices: dict[str, Decimal],
    max_fill_qty: Decimal | None,
    book: _Book,
    now: dt.datetime,
    report: TickReport,
) -> bool:
    """Work one order at this tick; True when it changed."""
    broker_order_id = str(order.broker_order_id)
    if order.status == SimOrderStatus.HELD:
        return False  # a leg waits for its entry to fill (_settle_families)
    if order.time_in_force == TimeInForce.DAY and _trading_day(order.submitted_at) < _trading_day(now):
        # A day order lives until its trading day ends; in a market that never
        # closes, that is New York midnight.
        _close(order, SimOrderStatus.EXPIRED, now)
        report.expired.append(broker_order_id)
        return True

    market_price = prices.get(order.symbol)
    triggered = False
    if order.type in STOP_TYPES and not order.stop_triggered and market_price is not None:
        triggered = order.stop_triggered = _stop_reached(order, market_price)
    fill_price = _fill_price(order, market_price) if market_price is not None else None
    remaining = order.remaining_qty
    fill_qty = ZERO
    if fill_price is not None:
        fill_qty = remaining if max_fill_qty is None else min(remaining, max_fill_qty)

    if order.time_in_force == TimeInForce.FOK and fill_qty < remaining:
        # Fill-or-kill: all of it at its first tick, or none of it.
        _close(order, SimOrderStatus.CANCELED, now)
        report.canceled.append(broker_order_id)
        return True

    changed = triggered
    if fill_qty > 0:
        assert fill_price is not None
        prior_notional = (order.filled_avg_price or ZERO) * order.filled_qty
        order.filled_qty += fill_qty
        order.filled_avg_price = ((prior_notional + fill_qty * fill_price) / order.filled_qty).quantize(
            AVERAGE_QUANTUM, rounding=ROUND_HALF_EVEN
        )
        order.updated_at = now
        if order.filled_qty == order.qty:
            order.status = SimOrderStatus.FILLED
            order.filled_at = now
        else:
            order.status = SimOrderStatus.PARTIALLY_FILLED
        book.apply_fill(symbol=order.symbol, side=Side(order.side), qty=fill_qty, price=fill_price)
        report.fills.append(
            SimFill(
                broker_order_id=broker_order_id,
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                side=Side(order.side),
                qty=fill_qty,
                price=fill_price,
            )
        )
        changed = True

    if order.time_in_force == TimeInForce.IOC and order.status != SimOrderStatus.FILLED:
        # Immediate-or-cancel: whatever its first tick did not fill is canceled
        # (Alpaca keeps the partial fill on a canceled order).
        _close(order, SimOrderStatus.CANCELED, now)
        report.canceled.append(broker_order_id)
        changed = True
    return changed


def tick() -> TickReport:
    """One step of the market: move every price, then fill what has become marketable.

    Ticks are serialised by the ``SimState`` row lock (``BEGIN IMMEDIATE`` on
    SQLite), and the working orders are read only after that lock is held, so
    two ticks at once run one after the other and never fill one order twice.
    """
    with transaction.atomic():
        state = _locked_state()
        # Read the clock after the lock: a tick that waited is the later tick.
        now = timezone.now()
        state.tick_count += 1
        account = _locked_account()
        # Before prices move: the day-start equity is what the account had
        # before the new day's first step.
        _capture_day_start_equity(account, now)

        price_rows = list(SimPrice.objects.select_for_update().order_by("symbol"))
        for row in price_rows:
            step = _walk_return(
                seed=state.seed, tick_number=state.tick_count, symbol=row.symbol, volatility=state.volatility
            )
            row.price = _round_to_increment(row.price * (1 + step))
            row.updated_at = now
        SimPrice.objects.bulk_update(price_rows, ["price", "updated_at"])
        prices = {row.symbol: row.price for row in price_rows}

        report = TickReport(tick_number=state.tick_count, at=now, prices=prices)
        book = _Book(account)
        working_orders = SimOrder.objects.select_for_update().filter(status__in=OPEN).order_by("submitted_at", "id")
        changed_orders = [
            order
            for order in working_orders
            if _work_order(
                order, prices=prices, max_fill_qty=state.max_fill_qty_per_tick, book=book, now=now, report=report
            )
        ]
        SimOrder.objects.bulk_update(
            changed_orders,
            ["status", "filled_qty", "filled_avg_price", "updated_at", "filled_at", "canceled_at", "stop_triggered"],
        )
        _settle_families(changed_orders, now)
        book.save()

        state.last_tick_at = now
        state.save(update_fields=["tick_count", "last_tick_at"])
    return report


def parse_price(price: Decimal | str | int) -> Decimal:
    """A price the venue accepts by hand: positive, finite, at most 4 decimal places. Raises ValueError."""
    try:
        value = Decimal(str(price))
    except InvalidOperation as exc:
        raise ValueError(f"price {price!r} is not a number") from exc
    if not value.is_finite() or value <= 0:
        raise ValueError(f"price {price!r} must be a positive finite number")
    if value >= MAX_PRICE:
        raise ValueError(f"price {price!r} is out of range (below {MAX_PRICE})")
    if value != value.quantize(SUB_PENNY):
        raise ValueError(f"price {price!r} has more than 4 decimal places")
    return value


def set_price(symbol: str, price: Decimal | str | int, *, at: dt.datetime | None = None) -> SimPrice:
    """Set ``symbol``'s last trade by hand, stamped now, or at ``at`` to make it stale for a test.

    The price stays as set until the next tick moves it (and restamps it).
    Raises ValueError for an unknown symbol or a price that is not positive and finite.
    """
    value = parse_price(price)
    if at is not None and timezone.is_naive(at):
        raise ValueError("at must be timezone-aware")
    with transaction.atomic():
        if not SimAsset.objects.filter(symbol=symbol).exists():
            raise ValueError(f"unknown symbol {symbol!r}")
        row, _ = SimPrice.objects.update_or_create(
            symbol=symbol, defaults={"price": value, "updated_at": at or timezone.now()}
        )
    return row


def reseed(seed: int) -> None:
    """Start the random walk over from tick 0 with ``seed``: same seed and prices, same path."""
    with transaction.atomic():
        state = _locked_state()
        state.seed = seed
        state.tick_count = 0
        state.save(update_fields=["seed", "tick_count"])


def set_volatility(volatility: Decimal) -> None:
    """The standard deviation of one tick's return (0.001 is 0.1%); 0 holds prices still."""
    if not volatility.is_finite() or volatility < 0:
        raise ValueError("volatility must be a finite number >= 0")
    with transaction.atomic():
        state = _locked_state()
        state.volatility = volatility
        state.save(update_fields=["volatility"])


def set_max_fill_qty_per_tick(max_qty: Decimal | None) -> None:
    """Cap how much of one order fills per tick (partial fills); None fills it all at once."""
    if max_qty is not None and (not max_qty.is_finite() or max_qty <= 0):
        raise ValueError("max fill quantity must be positive, or None for no cap")
    with transaction.atomic():
        state = _locked_state()
        state.max_fill_qty_per_tick = max_qty
        state.save(update_fields=["max_fill_qty_per_tick"])


# --- The BrokerClient ----------------------------------------------------------


def _settle_families(orders: Iterable[SimOrder], now: dt.datetime) -> None:
    """What an entry's or a leg's end means for the rest of its family (Alpaca's oto and bracket).

    An entry that filled puts its held legs to work; one cancelled or expired
    takes them with it, unless part of it filled, which they then protect. A
    bracket leg that filled or ended takes its sibling with it (one cancels the other).
    """
    for order in orders:
        if order.order_class not in ("oto", "bracket"):
            continue
        held = SimOrder.objects.filter(parent=order, status=SimOrderStatus.HELD)
        if order.parent_id is None and order.status == SimOrderStatus.FILLED:
            held.update(status=SimOrderStatus.NEW, updated_at=now)
        elif order.parent_id is None and order.status in CLOSED_STATUSES:
            if order.filled_qty > 0:
                held.update(status=SimOrderStatus.NEW, qty=order.filled_qty, updated_at=now)
            else:
                held.update(status=SimOrderStatus.CANCELED, updated_at=now, canceled_at=now)
        elif order.parent_id is not None and order.order_class == "bracket" and order.status in CLOSED_STATUSES:
            SimOrder.objects.filter(parent_id=order.parent_id, status__in=OPEN).exclude(pk=order.pk).update(
                status=SimOrderStatus.CANCELED, updated_at=now, canceled_at=now
            )


def _to_broker_order(order: SimOrder) -> BrokerOrder:
    legs = tuple(_to_broker_order(leg) for leg in order.legs.order_by("id")) if order.order_class and not (
        order.parent_id
    ) else ()
    return BrokerOrder(
        broker_order_id=str(order.broker_order_id),
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=Side(order.side),
        qty=order.qty,
        type=OrderType(order.type),
        time_in_force=TimeInForce(order.time_in_force),
        status=order.status,
        filled_qty=order.filled_qty,
        filled_avg_price=order.filled_avg_price,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        order_class=order.order_class,
        legs=legs,
        replaces=str(order.replaces.broker_order_id) if order.replaces is not None else None,
        submitted_at=order.submitted_at,
        updated_at=order.updated_at,
        filled_at=order.filled_at,
    )


def _unprocessable(message: str) -> BrokerRejected:
    return BrokerRejected(message, status=422)


def _find_order(broker_order_id: str, *, lock: bool = False) -> SimOrder:
    try:
        order_uuid = uuid.UUID(str(broker_order_id))
    except ValueError as exc:
        raise OrderNotFound(f"order not found: {broker_order_id}") from exc
    orders = SimOrder.objects.select_for_update() if lock else SimOrder.objects.all()
    try:
        return orders.get(broker_order_id=order_uuid)
    except SimOrder.DoesNotExist as exc:
        raise OrderNotFound(f"order not found: {broker_order_id}") from exc


def _cancel_open_orders(now: dt.datetime) -> list[SimOrder]:
    """Cancel every working order; the caller holds the transaction."""
    orders = list(SimOrder.objects.select_for_update().filter(status__in=OPEN).order_by("submitted_at", "id"))
    for order in orders:
        _close(order, SimOrderStatus.CANCELED, now)
    SimOrder.objects.bulk_update(orders, ["status", "updated_at", "canceled_at"])
    return orders


def _place_legs(entry: SimOrder, request: OrderRequest, now: dt.datetime) -> None:
    """An oto/bracket entry's legs: orders of their own on the closing side, held until the entry fills."""
    exit_side = Side.SELL if request.side == Side.BUY else Side.BUY
    for leg_type, limit_price, stop_price in (
        (OrderType.LIMIT, request.take_profit, None),
        (OrderType.STOP, None, request.stop_loss),
    ):
        if limit_price is None and stop_price is None:
            continue
        SimOrder.objects.create(
            client_order_id=str(uuid.uuid4()), symbol=request.symbol, side=exit_side, qty=request.qty,
            type=leg_type, time_in_force=request.time_in_force, limit_price=limit_price, stop_price=stop_price,
            status=SimOrderStatus.HELD, submitted_at=now, updated_at=now, order_class=entry.order_class,
            parent=entry,
        )


class SimulatedBroker(BrokerClient):
    """The paper venue in the database. Every public call counts as one broker round trip."""

    name = "simulated"
    mode = "paper"

    def submit_order(self, request: OrderRequest) -> BrokerOrder:
        self.counter.record("submit_order")
        if settings.SIM_SUBMIT_LATENCY_MS:
            # The broker's round trip, made visible (benchmarks): the venue answers this much later.
            time.sleep(settings.SIM_SUBMIT_LATENCY_MS / 1000)
        client_order_id = request.client_order_id
        if not client_order_id or len(client_order_id) > 128:
            raise _unprocessable("client_order_id must be between 1 and 128 characters")
        duplicate, tradable, has_market = self._submit_facts(request)
        if duplicate:
            # Checked first, as Alpaca does: a resend after an ambiguous submit
            # must learn "duplicate", whatever else has changed since.
            raise self._duplicate()
        self._validate(request, tradable=tradable, has_market=has_market)

        now = timezone.now()
        order = SimOrder(
            client_order_id=client_order_id,
            symbol=request.symbol,
            side=request.side,
            qty=request.qty,
            type=request.type,
            time_in_force=request.time_in_force,
            limit_price=request.limit_price if request.type in LIMIT_TYPES else None,
            stop_price=request.stop_price if request.type in STOP_TYPES else None,
            status=SimOrderStatus.NEW,
            submitted_at=now,
            updated_at=now,
            order_class="" if request.order_class == "simple" else request.order_class,
        )
        if request.side != Side.BUY and not order.order_class:
            # One statement, atomic by itself: no transaction or savepoint of its own.
            self._insert_unless_duplicate(order)
            return _to_broker_order(order)
        with transaction.atomic():
            if request.side == Side.BUY:
                # The account lock serialises buys, so two at once cannot both
                # spend the same buying power.
                account = _locked_account()
                # A stop buy reserves at its limit, else at its stop price, else (market) at the last trade.
                price = request.limit_price if request.limit_price is not None else request.stop_price
                if price is None:
                    price = SimPrice.objects.get(symbol=request.symbol).price
                if _money(request.qty * price) > _buying_power(account.cash):
                    raise BrokerRejected("insufficient buying power", status=403)
            self._insert_unless_duplicate(order)
            _place_legs(order, request, now)
        return _to_broker_order(order)

    @staticmethod
    def _submit_facts(request: OrderRequest) -> tuple[bool, bool | None, bool]:
        """(client_order_id taken, the asset's tradable flag or None if unknown, the symbol has a price): one query."""
        sql = (
            f"SELECT EXISTS (SELECT 1 FROM {SimOrder._meta.db_table} WHERE client_order_id = %s), "
            f"(SELECT tradable FROM {SimAsset._meta.db_table} WHERE symbol = %s), "
            f"EXISTS (SELECT 1 FROM {SimPrice._meta.db_table} WHERE symbol = %s)"
        )
        with prepared_cursor() as cursor:
            cursor.execute(sql, [request.client_order_id, request.symbol, request.symbol])
            duplicate, tradable, has_market = cursor.fetchone()
        return bool(duplicate), None if tradable is None else bool(tradable), bool(has_market)

    def _insert_unless_duplicate(self, order: SimOrder) -> None:
        """INSERT ... ON CONFLICT DO NOTHING: a concurrent submit of the same id is refused by the unique constraint.

        No savepoint needed (the caller may be inside transaction.atomic()):
        a conflict is an answer, not an error that would poison the transaction.
        """
        table, columns, values = insert_values(order)
        with prepared_cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES ({placeholders(values)}) ON CONFLICT DO NOTHING RETURNING id",
                values,
            )
            row = cursor.fetchone()
        if row is None:
            # Another process inserted the same client_order_id between our
            # check and our INSERT: the unique constraint decided.
            raise self._duplicate()
        order.pk = row[0]
        mark_saved(order)

    @staticmethod
    def _duplicate() -> BrokerRejected:
        return BrokerRejected(DUPLICATE_CLIENT_ORDER_ID_MESSAGE, status=422, code=DUPLICATE_CLIENT_ORDER_ID_CODE)

    @staticmethod
    def _validate(request: OrderRequest, *, tradable: bool | None, has_market: bool) -> None:
        """Alpaca's 422s for an order it cannot accept; nothing is stored (``tradable`` None: no such asset)."""
        if tradable is None:
            raise _unprocessable(f"asset {request.symbol} not found")
        if not tradable:
            raise _unprocessable(f"asset {request.symbol} is not tradable")
        if not has_market:
            raise _unprocessable(f"asset {request.symbol} has no market")
        qty = request.qty
        if not qty.is_finite() or qty <= 0:
            raise _unprocessable("qty must be > 0")
        if qty != qty.quantize(QTY_QUANTUM, rounding=ROUND_HALF_EVEN):
            raise _unprocessable("qty must have at most 8 decimal places")
        for name, price, needed in (
            ("limit_price", request.limit_price, request.type in LIMIT_TYPES),
            ("stop_price", request.stop_price, request.type in STOP_TYPES),
        ):
            if not needed:
                continue
            if price is None:
                raise _unprocessable(f"{request.type} orders require a {name}")
            if not price.is_finite() or price <= 0:
                raise _unprocessable(f"{name} must be > 0")
            if price != price.quantize(_price_increment(price)):
                raise _unprocessable(
                    f"invalid {name} {price}. sub-penny increment does not fulfill minimum pricing criteria"
                )
        if request.order_class != "simple":
            if request.time_in_force not in (TimeInForce.DAY, TimeInForce.GTC):
                raise _unprocessable(f"{request.order_class} orders must be day or gtc")
            for name, price in (("stop_loss.stop_price", request.stop_loss),
                                ("take_profit.limit_price", request.take_profit)):
                if price is not None and (not price.is_finite() or price <= 0):
                    raise _unprocessable(f"{name} must be > 0")
        if request.extended_hours and not (
            request.type == OrderType.LIMIT and request.time_in_force == TimeInForce.DAY
        ):
            raise _unprocessable("extended hours order must be DAY limit orders")

    def replace_order(self, broker_order_id: str, request: ReplaceRequest) -> BrokerOrder:
        """Alpaca's replace: a new order with the new values; the old one closes as ``replaced``."""
        self.counter.record("replace_order")
        if SimOrder.objects.filter(client_order_id=request.client_order_id).exists():
            raise self._duplicate()
        with transaction.atomic():
            old = _find_order(broker_order_id, lock=True)
            if old.status not in (SimOrderStatus.NEW, SimOrderStatus.HELD) or old.filled_qty:
                raise _unprocessable(f"order is {old.status}: it cannot be replaced")
            new = SimOrder(
                client_order_id=request.client_order_id, symbol=old.symbol, side=old.side,
                qty=request.qty if request.qty is not None else old.qty, type=old.type,
                time_in_force=old.time_in_force,
                limit_price=request.limit_price if request.limit_price is not None else old.limit_price,
                stop_price=request.stop_price if request.stop_price is not None else old.stop_price,
                status=old.status, submitted_at=old.submitted_at, updated_at=timezone.now(),
                order_class=old.order_class, parent=old.parent, replaces=old,
            )
            self._validate(OrderRequest(
                client_order_id=new.client_order_id, symbol=new.symbol, side=Side(new.side), qty=new.qty,
                type=OrderType(new.type), time_in_force=TimeInForce(new.time_in_force), limit_price=new.limit_price,
                stop_price=new.stop_price,
            ), tradable=True, has_market=True)  # the order it replaces was accepted in this symbol
            _close(old, SimOrderStatus.REPLACED, new.updated_at)
            old.save(update_fields=["status", "updated_at"])
            new.save()
            # An entry's held legs follow it to its replacement.
            SimOrder.objects.filter(parent=old).update(parent=new)
        return _to_broker_order(new)

    def get_order(self, broker_order_id: str) -> BrokerOrder:
        self.counter.record("get_order")
        return _to_broker_order(_find_order(broker_order_id))

    def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        self.counter.record("get_order_by_client_id")
        order = SimOrder.objects.filter(client_order_id=client_order_id).first()
        return _to_broker_order(order) if order is not None else None

    def iter_orders(
        self,
        *,
        status: str,
        after: dt.datetime | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[BrokerOrder]:
        # Validated here, not inside the generator, so a bad call fails at the
        # call site rather than at the first next().
        if status not in ("open", "closed"):
            raise _unprocessable(f"invalid status {status!r}: use open or closed")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise _unprocessable(f"limit must be between 1 and {MAX_PAGE_SIZE}")
        orders = SimOrder.objects.filter(status__in=OPEN if status == "open" else list(CLOSED_STATUSES))
        if after is not None:
            # "Changed since": the status poll passes its last run, and an order
            # that closed since then is what it must not miss (updated_at, not
            # submitted_at; Alpaca's own `after` on submission time would miss
            # an old order that has just filled).
            orders = orders.filter(updated_at__gt=after)
        return self._pages(orders.order_by("submitted_at", "id"), page_size)

    def _pages(self, orders: QuerySet[SimOrder], page_size: int) -> Iterator[BrokerOrder]:
        """Keyset pages on (submitted_at, id): an order that closes between two
        pages cannot shift the rest, so every order is seen at most once."""
        cursor: tuple[dt.datetime, int] | None = None
        while True:
            page_query = orders
            if cursor is not None:
                submitted_at, order_id = cursor
                page_query = orders.filter(
                    Q(submitted_at__gt=submitted_at) | Q(submitted_at=submitted_at, id__gt=order_id)
                )
            page = list(page_query[:page_size])
            self.counter.record("list_orders")
            yield from (_to_broker_order(order) for order in page)
            if len(page) < page_size:
                return
            cursor = (page[-1].submitted_at, page[-1].id)

    def cancel_order(self, broker_order_id: str) -> None:
        self.counter.record("cancel_order")
        with transaction.atomic():
            # Locked so that a tick filling this order and this cancel cannot both apply.
            order = _find_order(broker_order_id, lock=True)
            if not order.is_open:
                raise _unprocessable("order is not cancelable")
            now = timezone.now()
            _close(order, SimOrderStatus.CANCELED, now)
            order.save(update_fields=["status", "updated_at", "canceled_at"])
            _settle_families([order], now)

    def cancel_all_orders(self) -> list[CancelResult]:
        self.counter.record("cancel_all_orders")
        with transaction.atomic():
            canceled = _cancel_open_orders(timezone.now())
        # Alpaca answers 207 with a 200 for each order it canceled.
        return [CancelResult(broker_order_id=str(order.broker_order_id), status=200) for order in canceled]

    def list_positions(self) -> list[BrokerPosition]:
        self.counter.record("list_positions")
        positions = list(SimPosition.objects.order_by("symbol"))
        prices = _current_prices(position.symbol for position in positions)
        return [
            BrokerPosition(
                symbol=position.symbol,
                qty=position.qty,
                avg_entry_price=position.avg_entry_price,
                market_value=_money(position.qty * prices[position.symbol]) if position.symbol in prices else None,
                current_price=prices.get(position.symbol),
            )
            for position in positions
        ]

    def close_all_positions(self) -> None:
        """Cancel every working order, then send a market order that flattens each position.

        The closing orders fill at the next tick, like any market order. Holding
        the state lock waits out a running tick, so the positions read here are
        the ones it left behind.
        """
        self.counter.record("close_all_positions")
        with transaction.atomic():
            _locked_state()
            now = timezone.now()
            _cancel_open_orders(now)
            SimOrder.objects.bulk_create(
                [
                    SimOrder(
                        client_order_id=f"{CLOSE_ORDER_PREFIX}{uuid.uuid4().hex}",
                        symbol=position.symbol,
                        side=Side.SELL if position.qty > 0 else Side.BUY,
                        qty=abs(position.qty),
                        type=OrderType.MARKET,
                        time_in_force=TimeInForce.DAY,
                        status=SimOrderStatus.NEW,
                        submitted_at=now,
                        updated_at=now,
                    )
                    for position in SimPosition.objects.select_for_update().order_by("symbol")
                ]
            )

    def get_account(self) -> Account:
        self.counter.record("get_account")
        now = timezone.now()
        account = SimAccount.objects.filter(pk=1).first()
        if account is None or account.last_equity_day != _trading_day(now):
            # Only the first read of a new day writes (and takes the lock).
            with transaction.atomic():
                account = _locked_account()
                _capture_day_start_equity(account, now)
        return Account(
            equity=_equity(account.cash),
            last_equity=account.last_equity,
            cash=account.cash,
            buying_power=_buying_power(account.cash),
            status=account.status,
            trading_blocked=account.trading_blocked,
            account_blocked=account.account_blocked,
        )

    def get_clock(self) -> Clock:
        self.counter.record("get_clock")
        now = timezone.now()
        # The simulated market is open by default, so that the embedded default
        # can trade at any hour; SIM_MARKET_CLOCK=extended or closed shuts the
        # regular session (and, for closed, the extended one) to exercise the
        # market_closed check. Its trading day still ends at New York midnight
        # (day orders expire, day-start equity rolls), and the next begins at once.
        session = settings.SIM_MARKET_CLOCK
        boundary = _next_trading_day_start(now)
        return Clock(
            timestamp=now,
            is_open=session == "open",
            next_open=boundary,
            next_close=boundary,
            extended_is_open=session in {"open", "extended"},
        )

    def get_asset(self, symbol: str) -> Asset | None:
        self.counter.record("get_asset")
        asset = SimAsset.objects.filter(symbol=symbol).first()
        if asset is None:
            return None
        return Asset(
            symbol=asset.symbol,
            tradable=asset.tradable,
            name=asset.name,
            shortable=asset.shortable,
            easy_to_borrow=asset.easy_to_borrow,
        )


class SimulatedMarketData(MarketData):
    """Last trades from ``SimPrice``; a price's ``at`` is when it last moved."""

    def latest_trades(self, symbols: Iterable[str]) -> dict[str, LastTrade]:
        wanted = list(dict.fromkeys(symbols))
        if not wanted:
            return {}
        self.counter.record("latest_trades")
        rows: Iterable[tuple[str, Decimal, dt.datetime]]
        if connection.vendor == "postgresql":  # every order asks: one statement, prepared once (adr/0013)
            with prepared_cursor() as cursor:
                cursor.execute(
                    f"SELECT symbol, price, updated_at FROM {SimPrice._meta.db_table} WHERE symbol = ANY(%s)", [wanted]
                )
                rows = cursor.fetchall()
        else:
            rows = SimPrice.objects.filter(symbol__in=wanted).values_list("symbol", "price", "updated_at")
        return {symbol: LastTrade(symbol=symbol, price=price, at=at) for symbol, price, at in rows}
