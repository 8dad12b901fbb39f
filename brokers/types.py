"""The project's own broker-facing values.

Adapters translate SDK objects and JSON into these, so nothing above ``brokers``
ever sees an SDK type, a float of money or a naive datetime.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(StrEnum):
    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What we ask the broker to do. ``client_order_id`` is the idempotency key."""

    client_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    type: OrderType
    time_in_force: TimeInForce = TimeInForce.DAY
    limit_price: Decimal | None = None
    extended_hours: bool = False
    stop_price: Decimal | None = None
    # Protective legs sent with the entry (Alpaca order_class oto, or bracket with both): the broker
    # holds them until the entry fills, then works them; a filled leg cancels the other (bracket).
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None

    @property
    def order_class(self) -> str:
        if self.stop_loss is not None and self.take_profit is not None:
            return "bracket"
        if self.stop_loss is not None or self.take_profit is not None:
            return "oto"
        return "simple"


@dataclass(frozen=True, slots=True)
class ReplaceRequest:
    """New values for a working order (None: unchanged); ``client_order_id`` names the replacement."""

    client_order_id: str
    qty: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    """The broker's view of one order.

    ``status`` is the broker's own status word (Alpaca's vocabulary; the
    simulated broker speaks the same one). ``filled_qty`` and
    ``filled_avg_price`` are cumulative, as Alpaca reports them.
    """

    broker_order_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    type: OrderType
    time_in_force: TimeInForce
    status: str
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    limit_price: Decimal | None
    submitted_at: dt.datetime | None
    updated_at: dt.datetime | None
    filled_at: dt.datetime | None = None
    stop_price: Decimal | None = None
    # "simple" (or ""), "oto", "bracket"; an entry's legs as the broker reported them (nested).
    order_class: str = ""
    legs: tuple[BrokerOrder, ...] = ()
    # Set on an order that replaced another (Alpaca's PATCH): the broker id of the one it replaced.
    replaces: str | None = None


@dataclass(frozen=True, slots=True)
class BrokerPosition:
    symbol: str
    qty: Decimal  # signed: negative is short
    avg_entry_price: Decimal
    market_value: Decimal | None = None
    current_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Account:
    equity: Decimal
    last_equity: Decimal  # equity at the previous close: the day-start equity
    cash: Decimal
    buying_power: Decimal
    status: str = "ACTIVE"
    trading_blocked: bool = False
    account_blocked: bool = False


@dataclass(frozen=True, slots=True)
class Clock:
    timestamp: dt.datetime
    is_open: bool
    next_open: dt.datetime
    next_close: dt.datetime
    # The extended session (pre-market and after-hours, 04:00-20:00 New York), which takes extended_hours orders.
    extended_is_open: bool = False


@dataclass(frozen=True, slots=True)
class Asset:
    symbol: str
    tradable: bool
    name: str = ""
    shortable: bool = False
    easy_to_borrow: bool = False


@dataclass(frozen=True, slots=True)
class LastTrade:
    symbol: str
    price: Decimal
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class CancelResult:
    """One order named in a cancel-all answer (Alpaca answers 207 per order)."""

    broker_order_id: str
    status: int


@dataclass(slots=True)
class CallCounter:
    """Counts broker round trips, so tests and benchmarks can prove call budgets."""

    calls: int = 0
    by_operation: dict[str, int] = field(default_factory=dict)

    def record(self, operation: str) -> None:
        self.calls += 1
        self.by_operation[operation] = self.by_operation.get(operation, 0) + 1
