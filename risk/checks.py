"""The pre-trade check: a pure function of a snapshot and an order intent.

No database, no broker, no clock: everything it needs is in the snapshot, so
it is fast, deterministic and testable on its own. It reports every violation,
not only the first, in the order of SPEC 4.3: kill switch (and the market-access
gates: account, market clock) -> circuit breaker -> strategy -> order limits
(restricted list, size, duplicates, stop side, short sale, risk, notional,
price) -> portfolio limits (capital, positions, symbol concentration, buying
power). Each market-access control is a named function ``check_<code>``.

One concern, kept in one module on purpose although it is long: the whole
rule set an order is judged by reads top to bottom in SPEC order, and the
cost benchmark measures it as one unit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

HUNDRED = Decimal(100)
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Violation:
    code: str
    message: str
    limit: Decimal | str | None
    actual: Decimal | str | None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "code": self.code,
            "message": self.message,
            "limit": None if self.limit is None else str(self.limit),
            "actual": None if self.actual is None else str(self.actual),
        }


@dataclass(frozen=True, slots=True)
class OrderIntent:
    strategy: str
    symbol: str
    side: str  # "buy" | "sell"
    qty: Decimal
    type: str  # "market" | "limit" | "stop" | "stop_limit"
    limit_price: Decimal | None = None
    stop_loss: Decimal | None = None
    extended_hours: bool = False
    stop_price: Decimal | None = None  # stop and stop_limit orders
    take_profit: Decimal | None = None  # with stop_loss: a bracket

    @property
    def signed_qty(self) -> Decimal:
        return self.qty if self.side == "buy" else -self.qty


@dataclass(frozen=True, slots=True)
class Limits:
    """Portfolio and order limits, percentages as percent."""

    max_daily_drawdown_pct: Decimal = Decimal("3")
    max_total_drawdown_pct: Decimal = Decimal("10")
    max_capital_deployed_pct: Decimal = Decimal("80")
    max_open_positions: int = 20
    max_risk_per_trade_pct: Decimal = Decimal("2")
    max_notional: Decimal = Decimal("25000")
    max_price_deviation_pct: Decimal = Decimal("5")
    min_stock_price: Decimal = Decimal("5.00")
    assumed_stop_distance_pct: Decimal = Decimal("5")
    # Market access (SEC 15c3-5, FIA).
    max_order_qty: Decimal = Decimal("10000")
    max_symbol_concentration_pct: Decimal = Decimal("30")
    duplicate_order_max: int = 5
    duplicate_order_window_s: int = 1
    allow_short_selling: bool = True
    market_closed_policy: str = "deny"  # "deny" | "allow" (let the broker queue it)


@dataclass(frozen=True, slots=True)
class AccountStatus:
    """The broker account as last read (Alpaca's account fields)."""

    status: str = "ACTIVE"
    trading_blocked: bool = False
    account_blocked: bool = False
    # None: not read yet (an equity reading from before these fields were stored); not checked.
    buying_power: Decimal | None = None

    @property
    def blocked(self) -> bool:
        return self.status != "ACTIVE" or self.trading_blocked or self.account_blocked


@dataclass(frozen=True, slots=True)
class MarketClock:
    """The broker's clock, as the cache last read it: the regular session, and the extended one (04:00-20:00 ET)."""

    is_open: bool = True
    extended_is_open: bool = True
    known: bool = True  # False: the broker could not be asked; a deny policy denies


@dataclass(frozen=True, slots=True)
class SymbolState:
    """The account (all strategies) in the order's symbol, and the broker's asset flags for it."""

    restricted: bool = False
    restriction_reason: str = ""
    # |market value| of every strategy's position in the symbol plus working orders there that add exposure.
    exposure: Decimal = ZERO
    # Net position of the account (the broker's view) and its working sells, for the short-sale check.
    net_position_qty: Decimal = ZERO
    working_sell_qty: Decimal = ZERO
    shortable: bool = True
    easy_to_borrow: bool = True


@dataclass(frozen=True, slots=True)
class StrategyState:
    slug: str
    paused: bool = False
    kill_switch_active: bool = False
    max_allocation_amount: Decimal | None = None
    max_allocation_pct: Decimal = Decimal("80")
    max_daily_loss_pct: Decimal = Decimal("3")
    max_orders_per_second: int = 5
    max_orders_per_minute: int = 120
    orders_last_second: int = 0
    orders_last_minute: int = 0
    # Exposure of this strategy: |market value| of its positions plus working orders that add exposure.
    exposure: Decimal = ZERO
    daily_pnl: Decimal = ZERO
    # This strategy's position in the order's symbol, and its working orders there (signed remaining qty).
    position_qty: Decimal = ZERO
    working_buy_qty: Decimal = ZERO
    working_sell_qty: Decimal = ZERO
    mode_allowed: bool = True
    mode: str = "PAPER"


@dataclass(frozen=True, slots=True)
class LastPrice:
    price: Decimal
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class RiskSnapshot:
    now: dt.datetime
    equity: Decimal
    day_start_equity: Decimal
    peak_equity: Decimal
    strategy: StrategyState
    limits: Limits = field(default_factory=Limits)
    global_kill_switch_active: bool = False
    breaker_state: str = "closed"
    last_price: LastPrice | None = None
    max_price_age: dt.timedelta = dt.timedelta(minutes=15)
    # Portfolio level: gross |market value| of all positions, notional of
    # working orders that add exposure, open positions, and whether the order's
    # symbol already has a position or an exposure-adding working order.
    gross_position_value: Decimal = ZERO
    working_add_notional: Decimal = ZERO
    open_positions: int = 0
    symbol_has_position: bool = False
    # After a circuit-breaker reset today: the equity the officer acknowledged,
    # from which the daily drawdown is measured for the rest of the day.
    drawdown_base_equity: Decimal | None = None
    symbol: SymbolState = field(default_factory=SymbolState)
    account: AccountStatus = field(default_factory=AccountStatus)
    clock: MarketClock = field(default_factory=MarketClock)
    # Working buys the broker's buying_power does not include yet (sent after the account was read).
    working_buy_notional: Decimal = ZERO
    # Orders of the strategy identical to this one (symbol, side, qty, type, limit) in the duplicate window.
    identical_recent_orders: int = 0
    # Symbols holding a position or an exposure-adding working order that have
    # no fresh last price (a working limit order is priced at its limit): their
    # exposure cannot be counted, so nothing that adds exposure may pass.
    unpriced_symbols: tuple[str, ...] = ()


def price_is_fresh(last: LastPrice | None, *, now: dt.datetime, max_age: dt.timedelta) -> bool:
    """The one freshness rule, for the order's own price and for every exposure mark."""
    return last is not None and now - last.at <= max_age


def _pct(part: Decimal, whole: Decimal) -> Decimal:
    """Unrounded: a limit is compared exactly; only the reported ``actual`` is rounded."""
    return part / whole * HUNDRED if whole else Decimal("Infinity")


def drawdown_pct(reference: Decimal | None, equity: Decimal) -> Decimal:
    """The one drawdown formula: how far ``equity`` is below ``reference``, in percent, never negative.

    ``reference`` is the day-start equity (daily drawdown) or the peak equity
    (total drawdown). Without a positive reference there is no drawdown (0).
    Unrounded: limits are compared exactly. Used by the pre-trade check, the
    circuit breaker, the risk picture (API, dashboard) and the admin.
    """
    if reference is None or reference <= 0:
        return ZERO
    return max(ZERO, (reference - equity) / reference) * HUNDRED


def reduces_position(intent: OrderIntent, strategy: StrategyState) -> bool:
    """True when the order moves the strategy's position toward zero without crossing it.

    Working orders count: the position the order reduces is the one that
    remains after every working order of the strategy in that symbol fills on
    its reducing side, so a string of small sells cannot flip a long short.
    """
    position = strategy.position_qty
    if position > 0 and intent.side == "sell":
        return intent.qty <= position - strategy.working_sell_qty
    if position < 0 and intent.side == "buy":
        return intent.qty <= -position - strategy.working_buy_qty
    return False


def order_price(intent: OrderIntent, snapshot: RiskSnapshot) -> Decimal | None:
    """The price the order is judged at: its limit, else its stop (it trades there or past it), else the last trade."""
    if intent.limit_price is not None:
        return intent.limit_price
    if intent.stop_price is not None:
        return intent.stop_price
    return snapshot.last_price.price if snapshot.last_price else None


# --- Market-access checks (SEC 15c3-5, FIA) -----------------------------------
# Each is a pure function of the intent and the snapshot, named for its code:
# None when the order passes it, its Violation when it does not.


def check_account_blocked(intent: OrderIntent, snapshot: RiskSnapshot) -> Violation | None:
    account = snapshot.account
    if not account.blocked:
        return None
    actual = ", ".join(
        flag
        for flag, on in (
            (f"status {account.status}", account.status != "ACTIVE"),
            ("trading_blocked", account.trading_blocked),
            ("account_blocked", account.account_blocked),
        )
        if on
    )
    return Violation("account_blocked", "The broker account may not trade.", "ACTIVE", actual)


def check_market_closed(intent: OrderIntent, snapshot: RiskSnapshot) -> Violation | None:
    if snapshot.limits.market_closed_policy != "deny":
        return None  # "allow": the broker queues the order for the next session
    clock = snapshot.clock
    if not clock.known:
        return Violation("market_closed", "The broker's market clock could not be read.", "open", "unknown")
    if clock.is_open or (intent.extended_hours and clock.extended_is_open):
        return None
    if intent.extended_hours:
        return Violation(
            "market_closed", "The market is closed, extended hours included.", "extended session open", "closed"
        )
    return Violation("market_closed", "The market is closed.", "open", "closed")


def check_restricted_symbol(intent: OrderIntent, snapshot: RiskSnapshot) -> Violation | None:
    if not snapshot.symbol.restricted:
        return None
    reason = f" ({snapshot.symbol.restriction_reason})" if snapshot.symbol.restriction_reason else ""
    return Violation(
        "restricted_symbol", f"{intent.symbol} is on the restricted list{reason}.", "not restricted", intent.symbol
    )


def check_max_order_qty(intent: OrderIntent, snapshot: RiskSnapshot) -> Violation | None:
    if intent.qty <= snapshot.limits.max_order_qty:
        return None
    return Violation(
        "max_order_qty", "The order's quantity is above the limit.", snapshot.limits.max_order_qty, intent.qty
    )


def check_duplicate_order(intent: OrderIntent, snapshot: RiskSnapshot) -> Violation | None:
    """More than duplicate_order_max identical orders in the window: a runaway loop, not a slicing strategy."""
    limits = snapshot.limits
    if snapshot.identical_recent_orders < limits.duplicate_order_max:
        return None
    return Violation(
        "duplicate_order",
        f"More than {limits.duplicate_order_max} identical orders (strategy, symbol, side, qty, type, limit price) "
        f"within {limits.duplicate_order_window_s}s.",
        Decimal(limits.duplicate_order_max),
        Decimal(snapshot.identical_recent_orders + 1),
    )


def check_stop_loss_wrong_side(intent: OrderIntent, price: Decimal | None) -> Violation | None:
    stop = intent.stop_loss
    if stop is None or price is None:
        return None
    if intent.side == "buy" and stop >= price:
        return Violation("stop_loss_wrong_side", "A buy's stop_loss must be below the order price.", price, stop)
    if intent.side == "sell" and stop <= price:
        return Violation("stop_loss_wrong_side", "A sell's stop_loss must be above the order price.", price, stop)
    return None


def check_take_profit_wrong_side(intent: OrderIntent, price: Decimal | None) -> Violation | None:
    """A take-profit at or through the entry price would close the trade at once, at no profit."""
    take = intent.take_profit
    if take is None or price is None:
        return None
    if intent.side == "buy" and take <= price:
        return Violation("take_profit_wrong_side", "A buy's take_profit must be above the order price.", price, take)
    if intent.side == "sell" and take >= price:
        return Violation("take_profit_wrong_side", "A sell's take_profit must be below the order price.", price, take)
    return None


def check_stop_price_wrong_side(intent: OrderIntent, snapshot: RiskSnapshot) -> Violation | None:
    """A buy stop below the last trade (a sell stop above it) would trigger at once: a market order in disguise."""
    stop, last = intent.stop_price, snapshot.last_price
    if stop is None or last is None:
        return None
    if intent.side == "buy" and stop <= last.price:
        return Violation(
            "stop_price_wrong_side", "A buy stop's stop_price must be above the last trade price.", last.price, stop
        )
    if intent.side == "sell" and stop >= last.price:
        return Violation(
            "stop_price_wrong_side", "A sell stop's stop_price must be below the last trade price.", last.price, stop
        )
    return None


def check_short_not_allowed(intent: OrderIntent, snapshot: RiskSnapshot) -> Violation | None:
    """A sell beyond the account's long position (less its working sells) opens or increases a short."""
    if intent.side != "sell":
        return None
    symbol = snapshot.symbol
    long_available = max(ZERO, symbol.net_position_qty - symbol.working_sell_qty)
    if intent.qty <= long_available:
        return None
    if not snapshot.limits.allow_short_selling:
        reason = "short selling is off for this deployment"
    elif not symbol.shortable:
        reason = f"the broker does not allow shorting {intent.symbol}"
    elif not symbol.easy_to_borrow:
        reason = f"{intent.symbol} is not easy to borrow"
    else:
        return None
    return Violation(
        "short_not_allowed",
        f"The sell would open or increase a short position, and {reason}.",
        long_available,
        intent.qty,
    )


def check_buying_power(intent: OrderIntent, snapshot: RiskSnapshot, notional: Decimal | None) -> Violation | None:
    buying_power = snapshot.account.buying_power
    if intent.side != "buy" or notional is None or buying_power is None:
        return None
    needed = notional + snapshot.working_buy_notional
    if needed <= buying_power:
        return None
    return Violation(
        "buying_power",
        "The buy's cost plus working buys exceeds the account's buying power.",
        buying_power,
        needed.quantize(Decimal("0.01")),
    )


def check_max_symbol_concentration(
    intent: OrderIntent, snapshot: RiskSnapshot, notional: Decimal | None, adds_exposure: bool
) -> Violation | None:
    if notional is None or not adds_exposure:
        return None
    concentration = _pct(snapshot.symbol.exposure + notional, snapshot.equity)
    if concentration <= snapshot.limits.max_symbol_concentration_pct:
        return None
    return Violation(
        "max_symbol_concentration",
        f"{intent.symbol}: position and working orders would exceed the share of equity one symbol may take.",
        snapshot.limits.max_symbol_concentration_pct,
        concentration.quantize(Decimal("0.01")),
    )


def risk_per_trade(
    intent: OrderIntent, price: Decimal, notional: Decimal, assumed_stop_distance_pct: Decimal
) -> Decimal:
    """What the trade can lose: to its stop when the stop is placed, else at the assumed stop distance.

    An entry's ``stop_loss`` is placed at the broker with it, as its leg (oto,
    or bracket with a take_profit): the broker accepts both or neither, so the
    order this is judged for is protected from the moment it fills, and its
    risk is qty x |price - stop_loss|. Without a stop it is notional x the
    assumed stop distance. A stop leg that ends while its entry's position
    is open is reported (orders.services.execution).
    """
    if intent.stop_loss is None:
        return notional * assumed_stop_distance_pct / HUNDRED
    return intent.qty * abs(price - intent.stop_loss)


def evaluate(intent: OrderIntent, snapshot: RiskSnapshot) -> list[Violation]:
    """Every violation of ``intent`` against ``snapshot``; empty means the order may go."""
    violations: list[Violation] = []
    limits = snapshot.limits
    strategy = snapshot.strategy
    reducing = reduces_position(intent, strategy)
    adds_exposure = not reducing

    # 1. Kill switches.
    if snapshot.global_kill_switch_active:
        violations.append(Violation("kill_switch_active", "The global kill switch is active.", "inactive", "active"))
    if strategy.kill_switch_active:
        violations.append(
            Violation(
                "kill_switch_active", f"The kill switch of strategy {strategy.slug} is active.", "inactive", "active"
            )
        )
    if not strategy.mode_allowed:
        violations.append(
            Violation(
                "strategy_mode",
                f"Strategy {strategy.slug} is {strategy.mode}, which this deployment does not trade.",
                None,
                strategy.mode,
            )
        )

    # Market access: the account may trade, the market takes the order.
    for gate in (check_account_blocked(intent, snapshot), check_market_closed(intent, snapshot)):
        if gate is not None:
            violations.append(gate)

    if snapshot.equity <= 0 or snapshot.day_start_equity <= 0:
        # Without equity no percentage limit means anything: deny, and say why.
        violations.append(
            Violation(
                "equity_unknown", "Account equity is unknown; no exposure limit can be checked.", None, snapshot.equity
            )
        )
        return violations

    # 2. Circuit breaker and drawdowns: past the daily limit only reducing orders pass.
    total_dd = drawdown_pct(snapshot.peak_equity, snapshot.equity)
    if total_dd >= limits.max_total_drawdown_pct:
        violations.append(
            Violation(
                "max_total_drawdown",
                "Total drawdown has reached its limit; trading is halted.",
                limits.max_total_drawdown_pct,
                total_dd.quantize(Decimal("0.01")),
            )
        )
    # From the day start, or from the equity an officer acknowledged by resetting the breaker today.
    daily_dd = drawdown_pct(snapshot.drawdown_base_equity or snapshot.day_start_equity, snapshot.equity)
    if adds_exposure and (snapshot.breaker_state == "tripped" or daily_dd >= limits.max_daily_drawdown_pct):
        violations.append(
            Violation(
                "reduce_only",
                "The circuit breaker is tripped: only orders that reduce a position are accepted.",
                limits.max_daily_drawdown_pct,
                daily_dd.quantize(Decimal("0.01")),
            )
        )

    # 3. Strategy.
    if strategy.paused:
        violations.append(Violation("strategy_paused", f"Strategy {strategy.slug} is paused.", "active", "paused"))
    if strategy.orders_last_second >= strategy.max_orders_per_second:
        violations.append(
            Violation(
                "rate_limited",
                f"Strategy {strategy.slug} may submit {strategy.max_orders_per_second} orders per second.",
                Decimal(strategy.max_orders_per_second),
                Decimal(strategy.orders_last_second + 1),
            )
        )
    if strategy.orders_last_minute >= strategy.max_orders_per_minute:
        violations.append(
            Violation(
                "rate_limited",
                f"Strategy {strategy.slug} may submit {strategy.max_orders_per_minute} orders per minute.",
                Decimal(strategy.max_orders_per_minute),
                Decimal(strategy.orders_last_minute + 1),
            )
        )

    price = order_price(intent, snapshot)
    last = snapshot.last_price
    fresh = price_is_fresh(last, now=snapshot.now, max_age=snapshot.max_price_age)
    if not fresh:
        age = "none" if last is None else f"{int((snapshot.now - last.at).total_seconds())}s"
        violations.append(
            Violation(
                "stale_price",
                f"No fresh last trade price for {intent.symbol}; the order is denied rather than priced by a guess.",
                f"{int(snapshot.max_price_age.total_seconds())}s",
                age,
            )
        )
    unpriced = [sym for sym in snapshot.unpriced_symbols if sym != intent.symbol]  # the order's own: reported above
    if adds_exposure and unpriced:
        violations.append(
            Violation(
                "stale_price",
                f"No fresh last trade price for {', '.join(unpriced)}, where positions or working orders are held: "
                "their exposure cannot be counted, so no order that adds exposure passes.",
                f"{int(snapshot.max_price_age.total_seconds())}s",
                ", ".join(unpriced),
            )
        )
    notional = intent.qty * price if price is not None else None

    if notional is not None and adds_exposure:
        allocation = (
            strategy.max_allocation_amount
            if strategy.max_allocation_amount is not None
            else snapshot.equity * strategy.max_allocation_pct / HUNDRED
        )
        exposure_after = strategy.exposure + notional
        if exposure_after > allocation:
            violations.append(
                Violation(
                    "max_allocation",
                    f"Strategy {strategy.slug} exposure would exceed its allocation.",
                    allocation.quantize(Decimal("0.01")),
                    exposure_after.quantize(Decimal("0.01")),
                )
            )
    max_daily_loss = snapshot.day_start_equity * strategy.max_daily_loss_pct / HUNDRED
    if adds_exposure and -strategy.daily_pnl >= max_daily_loss:
        violations.append(
            Violation(
                "daily_loss",
                f"Strategy {strategy.slug} has lost its daily limit; only reducing orders are accepted.",
                max_daily_loss.quantize(Decimal("0.01")),
                (-strategy.daily_pnl).quantize(Decimal("0.01")),
            )
        )

    # 4. Order limits.
    for order_check in (
        check_restricted_symbol(intent, snapshot),
        check_max_order_qty(intent, snapshot),
        check_duplicate_order(intent, snapshot),
        check_stop_loss_wrong_side(intent, price),
        check_take_profit_wrong_side(intent, price),
        check_stop_price_wrong_side(intent, snapshot),
        check_short_not_allowed(intent, snapshot),
    ):
        if order_check is not None:
            violations.append(order_check)
    if notional is not None and price is not None and adds_exposure:
        risk = risk_per_trade(intent, price, notional, limits.assumed_stop_distance_pct)
        risk_pct = _pct(risk, snapshot.equity)
        if risk_pct > limits.max_risk_per_trade_pct:
            violations.append(
                Violation(
                    "max_risk_per_trade",
                    "The order risks more of equity than one trade may.",
                    limits.max_risk_per_trade_pct,
                    risk_pct.quantize(Decimal("0.01")),
                )
            )
    if notional is not None and notional > limits.max_notional:
        violations.append(
            Violation(
                "max_notional",
                "The order's notional (qty x price) is above the limit.",
                limits.max_notional,
                notional.quantize(Decimal("0.01")),
            )
        )
    # The price collar holds for every price the order names: its limit and its stop.
    for name, named_price in (("limit", intent.limit_price), ("stop", intent.stop_price)):
        if named_price is None or last is None or not fresh:
            continue
        deviation = _pct(abs(named_price - last.price), last.price)
        if deviation > limits.max_price_deviation_pct:
            violations.append(
                Violation(
                    "price_deviation",
                    f"The {name} price is too far from the last trade price {last.price}.",
                    limits.max_price_deviation_pct,
                    deviation.quantize(Decimal("0.01")),
                )
            )
    if price is not None and adds_exposure and price < limits.min_stock_price:
        violations.append(
            Violation("min_price", "The stock price is below the minimum.", limits.min_stock_price, price)
        )

    # 5. Portfolio limits: working orders count toward exposure (FIA).
    if notional is not None and adds_exposure:
        deployed = snapshot.gross_position_value + snapshot.working_add_notional + notional
        deployed_pct = _pct(deployed, snapshot.equity)
        if deployed_pct > limits.max_capital_deployed_pct:
            violations.append(
                Violation(
                    "max_capital_deployed",
                    "Positions and working orders would deploy more capital than allowed.",
                    limits.max_capital_deployed_pct,
                    deployed_pct.quantize(Decimal("0.01")),
                )
            )
    if adds_exposure and not snapshot.symbol_has_position and snapshot.open_positions >= limits.max_open_positions:
        violations.append(
            Violation(
                "max_open_positions",
                "The order would open a position beyond the maximum number of open positions.",
                Decimal(limits.max_open_positions),
                Decimal(snapshot.open_positions + 1),
            )
        )
    for portfolio_check in (
        check_max_symbol_concentration(intent, snapshot, notional, adds_exposure),
        check_buying_power(intent, snapshot, notional),
    ):
        if portfolio_check is not None:
            violations.append(portfolio_check)
    return violations
