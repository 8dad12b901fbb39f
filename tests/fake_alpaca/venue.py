"""The trading venue behind the fake Alpaca server: no HTTP here, only state.

Orders have Alpaca's lifecycle (new -> partially_filled -> filled, pending_cancel
-> canceled, expired), fills move positions and cash, prices are set by tests.
Everything is guarded by one re-entrant lock because the HTTP server answers
each connection on its own thread.

Errors are raised as :class:`AlpacaError`, which carries the HTTP status and the
``{"code", "message"}`` body Alpaca would send, so the server only serialises.

The timestamp helpers here deliberately do not reuse ``brokers.alpaca``: a test
double that shared the adapter's parser would let one bug hide on both sides.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")

# Alpaca's own split of its status words between status=open and status=closed.
OPEN_STATUSES = frozenset(
    {
        "new",
        "partially_filled",
        "accepted",
        "pending_new",
        "accepted_for_bidding",
        "pending_cancel",
        "pending_replace",
        "held",
        "done_for_day",
        "stopped",
        "suspended",
        "calculated",
    }
)
CLOSED_STATUSES = frozenset({"filled", "canceled", "expired", "rejected", "replaced"})

FILL_MODES = ("immediate", "manual")
CANCEL_MODES = ("immediate", "pending")

# Alpaca's error codes as they appear in its answers.
CODE_INVALID_REQUEST = 40010001
CODE_UNAUTHORIZED = 40110000
CODE_FORBIDDEN = 40310000
CODE_NOT_FOUND = 40410000
CODE_UNPROCESSABLE = 42210000
CODE_RATE_LIMITED = 42910000
CODE_INTERNAL = 50010000

DEFAULT_CASH = Decimal("100000")
AVG_PRICE_PLACES = Decimal("0.000000001")  # Alpaca: "up to 9 decimal points"

# symbol -> (name, exchange, tradable, starting price)
DEFAULT_ASSETS: Mapping[str, tuple[str, str, bool, str]] = {
    "AAPL": ("Apple Inc. Common Stock", "NASDAQ", True, "190.00"),
    "MSFT": ("Microsoft Corporation Common Stock", "NASDAQ", True, "410.00"),
    "AMZN": ("Amazon.com, Inc. Common Stock", "NASDAQ", True, "180.00"),
    "NVDA": ("NVIDIA Corporation Common Stock", "NASDAQ", True, "900.00"),
    "TSLA": ("Tesla, Inc. Common Stock", "NASDAQ", True, "250.00"),
    "SPY": ("SPDR S&P 500 ETF Trust", "ARCA", True, "520.00"),
    "PENNY": ("Penny Stock Test Corp", "NASDAQ", True, "2.50"),
    # Known to the broker but not tradable, like Alpaca's tradable=false assets.
    "NOTRD": ("Untradable Test Corp", "OTC", False, "10.00"),
}


class AlpacaError(Exception):
    """An answer Alpaca gives instead of the resource: HTTP status and error body."""

    def __init__(self, status: int, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"code": code, "message": message, **extra}


class VenueError(Exception):
    """A control call that makes no sense (fill a closed order); the fake's own error."""


# --- time -----------------------------------------------------------------

_RFC3339 = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})(?:[Tt ](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,9}))?"
    r"(?P<zone>[Zz]|[+-]\d{2}:\d{2}))?$"
)


def parse_timestamp_ns(text: str) -> int:
    """RFC 3339 (nanoseconds allowed) or a bare date, as Alpaca accepts in ``after``."""
    match = _RFC3339.match(text.strip())
    if not match:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    if match["time"] is None:
        whole = dt.datetime.fromisoformat(match["date"]).replace(tzinfo=dt.UTC)
        return int(whole.timestamp()) * 1_000_000_000
    zone = "+00:00" if match["zone"] in ("Z", "z") else match["zone"]
    whole = dt.datetime.fromisoformat(f"{match['date']}T{match['time']}{zone}")
    fraction = int((match["fraction"] or "0").ljust(9, "0"))
    return int(whole.timestamp()) * 1_000_000_000 + fraction


def format_timestamp_ns(ns: int, tz: dt.tzinfo = dt.UTC) -> str:
    """Alpaca's style: nine fractional digits, ``Z`` for UTC, an offset otherwise."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    moment = dt.datetime.fromtimestamp(seconds, tz)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:09d}"
    if tz is dt.UTC:
        return text + "Z"
    offset = moment.strftime("%z")
    return f"{text}{offset[:3]}:{offset[3:]}"


def wire_decimal(value: Decimal) -> str:
    """Decimals as Alpaca writes them: plain notation, no trailing zeros ("2", "150.25")."""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text


# --- records --------------------------------------------------------------


@dataclass
class Asset:
    symbol: str
    name: str
    exchange: str
    tradable: bool
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "class": "us_equity",
            "exchange": self.exchange,
            "symbol": self.symbol,
            "name": self.name,
            "status": "active",
            "tradable": self.tradable,
            "marginable": self.tradable,
            "shortable": self.tradable,
            "easy_to_borrow": self.tradable,
            "fractionable": self.tradable,
            "maintenance_margin_requirement": 30,
            "margin_requirement_long": "30",
            "margin_requirement_short": "100",
            "attributes": [],
        }


@dataclass
class Price:
    value: Decimal
    at_ns: int


@dataclass
class Order:
    id: str
    client_order_id: str
    seq: int
    symbol: str
    asset_id: str
    side: str
    qty: Decimal
    type: str
    time_in_force: str
    limit_price: Decimal | None
    extended_hours: bool
    status: str
    created_ns: int
    submitted_ns: int
    updated_ns: int
    filled_qty: Decimal = Decimal("0")
    filled_avg_price: Decimal | None = None
    filled_ns: int | None = None
    canceled_ns: int | None = None
    expired_ns: int | None = None
    stop_price: Decimal | None = None
    # A stop (stop_limit) works as a market (limit) order once a trade reached its stop price.
    triggered: bool = False
    # "" (simple), "oto" or "bracket". An entry's legs are held until it fills; a leg knows its entry.
    order_class: str = ""
    legs: list[Order] = field(default_factory=list, repr=False, compare=False)
    parent: Order | None = field(default=None, repr=False, compare=False)
    # PATCH /v2/orders/{id}: the replaced order names its replacement, and the replacement the replaced.
    replaced_ns: int | None = None
    replaced_by: str | None = None
    replaces: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled_qty

    def to_json(self, *, nested: bool = True) -> dict[str, Any]:
        """Alpaca's order; ``nested``: an entry's legs under ``legs`` (else null, and listed on their own)."""

        def ts(ns: int | None) -> str | None:
            return None if ns is None else format_timestamp_ns(ns)

        opening = "buy_to_open" if self.side == "buy" else "sell_to_close"
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": ts(self.created_ns),
            "updated_at": ts(self.updated_ns),
            "submitted_at": ts(self.submitted_ns),
            "filled_at": ts(self.filled_ns),
            "expired_at": ts(self.expired_ns),
            "canceled_at": ts(self.canceled_ns),
            "failed_at": None,
            "replaced_at": ts(self.replaced_ns),
            "replaced_by": self.replaced_by,
            "replaces": self.replaces,
            "asset_id": self.asset_id,
            "symbol": self.symbol,
            "asset_class": "us_equity",
            "notional": None,
            "qty": wire_decimal(self.qty),
            "filled_qty": wire_decimal(self.filled_qty),
            "filled_avg_price": None if self.filled_avg_price is None else wire_decimal(self.filled_avg_price),
            "order_class": self.order_class,
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "position_intent": opening,
            "time_in_force": self.time_in_force,
            "limit_price": None if self.limit_price is None else wire_decimal(self.limit_price),
            "stop_price": None if self.stop_price is None else wire_decimal(self.stop_price),
            "status": self.status,
            "extended_hours": self.extended_hours,
            "legs": [leg.to_json() for leg in self.legs] if nested and self.legs else None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "subtag": None,
            "source": None,
            "expires_at": None,
        }


@dataclass
class Position:
    symbol: str
    asset_id: str
    exchange: str
    qty: Decimal  # signed: negative is short
    avg_entry_price: Decimal


# --- the venue ------------------------------------------------------------


class Venue:
    """Orders, fills, positions and cash of one Alpaca account."""

    def __init__(
        self,
        *,
        cash: Decimal = DEFAULT_CASH,
        fill_mode: str = "immediate",
        cancel_mode: str = "immediate",
    ) -> None:
        self.lock = threading.RLock()
        self._seq = itertools.count(1)
        self.account_id = str(uuid.uuid4())
        self.configure(fill_mode=fill_mode, cancel_mode=cancel_mode)
        self.reset(cash=cash)

    # -- configuration ------------------------------------------------------

    def reset(self, *, cash: Decimal = DEFAULT_CASH) -> None:
        with self.lock:
            self.orders: dict[str, Order] = {}
            self.orders_by_client_id: dict[str, Order] = {}
            self.positions: dict[str, Position] = {}
            self.cash = cash
            self.last_equity = cash
            self.frozen_ns: int | None = None
            self.market_open: bool | None = None  # None: follow the New York clock
            self.assets: dict[str, Asset] = {}
            self.prices: dict[str, Price] = {}
            now = self.now_ns()
            for symbol, (name, exchange, tradable, price) in DEFAULT_ASSETS.items():
                self.assets[symbol] = Asset(symbol, name, exchange, tradable)
                self.prices[symbol] = Price(Decimal(price), now)

    def configure(
        self,
        *,
        fill_mode: str | None = None,
        cancel_mode: str | None = None,
        cash: Decimal | None = None,
        last_equity: Decimal | None = None,
        market_open: bool | str | None = "unchanged",
        frozen_ns: int | str | None = "unchanged",
    ) -> None:
        """Change how the venue behaves; "unchanged" keeps a nullable setting as it is."""
        with self.lock:
            if fill_mode is not None:
                if fill_mode not in FILL_MODES:
                    raise VenueError(f"fill_mode must be one of {FILL_MODES}")
                self.fill_mode = fill_mode
            if cancel_mode is not None:
                if cancel_mode not in CANCEL_MODES:
                    raise VenueError(f"cancel_mode must be one of {CANCEL_MODES}")
                self.cancel_mode = cancel_mode
            if cash is not None:
                self.cash = cash
            if last_equity is not None:
                self.last_equity = last_equity
            if market_open != "unchanged":
                self.market_open = market_open  # type: ignore[assignment]
            if frozen_ns != "unchanged":
                self.frozen_ns = frozen_ns  # type: ignore[assignment]

    def now_ns(self) -> int:
        frozen = getattr(self, "frozen_ns", None)
        return frozen if frozen is not None else time.time_ns()

    def add_asset(self, symbol: str, *, tradable: bool = True, name: str = "", exchange: str = "NASDAQ") -> Asset:
        with self.lock:
            asset = self.assets.get(symbol)
            if asset is None:
                asset = Asset(symbol, name or f"{symbol} Test Corp", exchange, tradable)
                self.assets[symbol] = asset
            else:
                asset.tradable = tradable
                asset.name = name or asset.name
            return asset

    def set_price(self, symbol: str, price: Decimal, *, at_ns: int | None = None) -> None:
        """A new last trade; in immediate fill mode, working orders it crosses fill at once."""
        if price <= 0:
            raise VenueError("a price must be positive")
        with self.lock:
            if symbol not in self.assets:
                self.add_asset(symbol)
            self.prices[symbol] = Price(price, self.now_ns() if at_ns is None else at_ns)
            if self.fill_mode == "immediate":
                for order in self._working_orders():
                    if order.symbol == symbol:
                        self._fill_if_marketable(order)

    # -- orders -------------------------------------------------------------

    def submit(self, body: Mapping[str, Any]) -> Order:
        """POST /v2/orders: validate like Alpaca, create, and fill when the mode says so."""
        with self.lock:
            client_order_id = body.get("client_order_id") or str(uuid.uuid4())
            if not isinstance(client_order_id, str) or len(client_order_id) > 128:
                raise AlpacaError(422, CODE_INVALID_REQUEST, "client_order_id must be no more than 128 characters")
            if client_order_id in self.orders_by_client_id:
                raise AlpacaError(422, CODE_INVALID_REQUEST, "client_order_id must be unique")
            if body.get("notional") is not None:
                raise AlpacaError(422, CODE_INVALID_REQUEST, "the fake accepts qty orders only, not notional")
            symbol = body.get("symbol")
            if not isinstance(symbol, str) or not symbol:
                raise AlpacaError(422, CODE_INVALID_REQUEST, "symbol is required")
            asset = self.assets.get(symbol)
            if asset is None:
                raise AlpacaError(422, CODE_UNPROCESSABLE, f'asset "{symbol}" not found')
            if not asset.tradable:
                raise AlpacaError(422, CODE_UNPROCESSABLE, f"asset {symbol} is not tradable")
            qty = _positive_decimal(body.get("qty"), "qty")
            side = body.get("side")
            if side not in ("buy", "sell"):
                raise AlpacaError(422, CODE_INVALID_REQUEST, "side must be buy or sell")
            order_type = body.get("type")
            if order_type not in ("market", "limit", "stop", "stop_limit"):
                raise AlpacaError(422, CODE_INVALID_REQUEST, f"order type {order_type!r} is not supported")
            time_in_force = body.get("time_in_force")
            if time_in_force not in ("day", "gtc", "ioc", "fok", "opg", "cls"):
                raise AlpacaError(422, CODE_INVALID_REQUEST, "invalid time_in_force")
            limit_price = _price_for(body, "limit_price", needed=order_type in ("limit", "stop_limit"))
            stop_price = _price_for(body, "stop_price", needed=order_type in ("stop", "stop_limit"))
            order_class, legs = _legs_of(body, side=side, time_in_force=time_in_force)
            if side == "buy":
                reference = limit_price or stop_price or self._price_of(symbol)
                cost = qty * (reference or Decimal("0"))
                buying_power = self.buying_power()
                if cost > buying_power:
                    raise AlpacaError(
                        403,
                        CODE_FORBIDDEN,
                        "insufficient buying power",
                        buying_power=wire_decimal(buying_power),
                        cost_basis=wire_decimal(cost),
                    )
            now = self.now_ns()
            order = Order(
                id=str(uuid.uuid4()),
                client_order_id=client_order_id,
                seq=next(self._seq),
                symbol=symbol,
                asset_id=asset.id,
                side=side,
                qty=qty,
                type=order_type,
                time_in_force=time_in_force,
                limit_price=limit_price,
                stop_price=stop_price,
                extended_hours=bool(body.get("extended_hours", False)),
                status="new",
                created_ns=now,
                submitted_ns=now,
                updated_ns=now,
                order_class=order_class,
            )
            self.orders[order.id] = order
            self.orders_by_client_id[client_order_id] = order
            for leg_type, leg_limit, leg_stop in legs:
                # Alpaca names the legs itself; they wait ("held") until the entry has filled.
                leg = Order(
                    id=str(uuid.uuid4()), client_order_id=str(uuid.uuid4()), seq=next(self._seq), symbol=symbol,
                    asset_id=asset.id, side="sell" if side == "buy" else "buy", qty=qty, type=leg_type,
                    time_in_force=time_in_force, limit_price=leg_limit, stop_price=leg_stop, extended_hours=False,
                    status="held", created_ns=now, submitted_ns=now, updated_ns=now, order_class=order_class,
                    parent=order,
                )
                order.legs.append(leg)
                self.orders[leg.id] = leg
                self.orders_by_client_id[leg.client_order_id] = leg
            if self.fill_mode == "immediate":
                self._fill_if_marketable(order)
            return order

    def replace(self, order_id: str, body: Mapping[str, Any]) -> Order:
        """PATCH /v2/orders/{id}: a new order with the new values; the old one becomes ``replaced``.

        Alpaca refuses an order that is not working, or is being cancelled or replaced. The fake
        also refuses one with fills (the project never amends one; Alpaca's rules there are
        subtler). A leg's replacement is a leg of the same entry, listed under it with the
        replaced one; an entry's legs follow it to its replacement.
        """
        with self.lock:
            old = self.get(order_id)
            if not old.is_open or old.status in ("pending_cancel", "pending_replace", "accepted", "pending_new"):
                raise AlpacaError(422, CODE_UNPROCESSABLE, f'order is in "{old.status}" state: it cannot be replaced')
            if old.filled_qty > 0:
                raise AlpacaError(422, CODE_UNPROCESSABLE, "order with fills cannot be replaced by the fake")
            client_order_id = body.get("client_order_id") or str(uuid.uuid4())
            if not isinstance(client_order_id, str) or len(client_order_id) > 128:
                raise AlpacaError(422, CODE_INVALID_REQUEST, "client_order_id must be no more than 128 characters")
            if client_order_id in self.orders_by_client_id:
                raise AlpacaError(422, CODE_INVALID_REQUEST, "client_order_id must be unique")
            qty = _positive_decimal(body["qty"], "qty") if body.get("qty") not in (None, "") else old.qty
            prices: dict[str, Decimal | None] = {"limit_price": old.limit_price, "stop_price": old.stop_price}
            for name in prices:
                if body.get(name) in (None, ""):
                    continue
                if prices[name] is None:
                    raise AlpacaError(422, CODE_INVALID_REQUEST, f"{name} is not allowed for {old.type} orders")
                prices[name] = _positive_decimal(body[name], name)
            now = self.now_ns()
            new = Order(
                id=str(uuid.uuid4()), client_order_id=client_order_id, seq=next(self._seq), symbol=old.symbol,
                asset_id=old.asset_id, side=old.side, qty=qty, type=old.type, time_in_force=old.time_in_force,
                limit_price=prices["limit_price"], stop_price=prices["stop_price"],
                extended_hours=old.extended_hours, status="held" if old.status == "held" else "new",
                created_ns=now, submitted_ns=now, updated_ns=now, order_class=old.order_class,
                legs=old.legs, parent=old.parent, replaces=old.id,
            )
            for leg in new.legs:
                leg.parent = new
            if old.parent is not None:
                # The replaced leg stays listed under its entry (closed), next to its replacement.
                old.parent.legs.append(new)
            old.legs = []
            old.status, old.replaced_ns, old.replaced_by, old.updated_ns = "replaced", now, new.id, now
            self.orders[new.id] = new
            self.orders_by_client_id[client_order_id] = new
            if self.fill_mode == "immediate":
                self._fill_if_marketable(new)
            return new

    def get(self, order_id: str) -> Order:
        with self.lock:
            order = self.orders.get(order_id)
            if order is None:
                raise AlpacaError(404, CODE_NOT_FOUND, "order not found")
            return order

    def get_by_client_id(self, client_order_id: str) -> Order:
        with self.lock:
            order = self.orders_by_client_id.get(client_order_id)
            if order is None:
                raise AlpacaError(404, CODE_NOT_FOUND, "order not found")
            return order

    def find(self, *, order_id: str | None = None, client_order_id: str | None = None) -> Order:
        """For control calls that name an order either way."""
        if order_id:
            return self.get(order_id)
        if client_order_id:
            return self.get_by_client_id(client_order_id)
        raise VenueError("name the order with order_id or client_order_id")

    def list_orders(
        self,
        *,
        status: str = "open",
        limit: int = 50,
        after_ns: int | None = None,
        until_ns: int | None = None,
        direction: str = "desc",
        symbols: Iterable[str] | None = None,
        side: str | None = None,
        nested: bool = False,
    ) -> list[Order]:
        """GET /v2/orders: Alpaca filters after/until on submission time, both exclusive.

        ``nested``: legs are not listed on their own but under their entry, which is listed
        when it or one of its legs has the status asked for (a filled entry whose stop is
        working is in the open listing).
        """
        wanted = set(symbols) if symbols else None

        def status_matches(order: Order) -> bool:
            family = [order, *order.legs] if nested else [order]
            return status == "all" or any((o.is_open if status == "open" else not o.is_open) for o in family)

        with self.lock:
            selected = [
                order
                for order in self.orders.values()
                if not (nested and order.parent is not None)
                and status_matches(order)
                and (after_ns is None or order.submitted_ns > after_ns)
                and (until_ns is None or order.submitted_ns < until_ns)
                and (wanted is None or order.symbol in wanted)
                and (side is None or order.side == side)
            ]
        selected.sort(key=lambda o: (o.submitted_ns, o.seq), reverse=direction == "desc")
        return selected[:limit]

    def cancel(self, order_id: str) -> Order:
        with self.lock:
            order = self.get(order_id)
            if not order.is_open or order.status == "pending_cancel":
                raise AlpacaError(422, CODE_UNPROCESSABLE, f'order is already in "{order.status}" state')
            now = self.now_ns()
            if self.cancel_mode == "pending" and order.status != "held":
                order.status = "pending_cancel"
            else:
                order.status, order.canceled_ns = "canceled", now
                self._closed(order)
            order.updated_ns = now
            return order

    def cancel_all(self) -> list[tuple[str, int]]:
        """DELETE /v2/orders: one (id, HTTP status) per working order."""
        results: list[tuple[str, int]] = []
        with self.lock:
            for order in self._working_orders():
                if not order.is_open or order.status == "pending_cancel":
                    continue  # a leg its entry's cancel has just cancelled
                try:
                    self.cancel(order.id)
                    results.append((order.id, 200))
                except AlpacaError as refusal:
                    results.append((order.id, refusal.status if refusal.status >= 500 else 500))
        return results

    def close_all(self, *, cancel_orders: bool) -> list[dict[str, Any]]:
        """DELETE /v2/positions: one market order per position, answered per symbol."""
        with self.lock:
            if cancel_orders:
                self.cancel_all()
            results: list[dict[str, Any]] = []
            for position in sorted(self.positions.values(), key=lambda p: p.symbol):
                try:
                    order = self.submit(
                        {
                            "symbol": position.symbol,
                            "qty": wire_decimal(abs(position.qty)),
                            "side": "sell" if position.qty > 0 else "buy",
                            "type": "market",
                            "time_in_force": "day",
                        }
                    )
                except AlpacaError as refusal:
                    results.append({"symbol": position.symbol, "status": refusal.status, "body": refusal.body})
                else:
                    results.append({"symbol": position.symbol, "status": 200, "body": order.to_json()})
            return results

    def fill(self, order: Order, *, qty: Decimal | None = None, price: Decimal | None = None) -> Order:
        """Fill part or all of what remains; cumulative filled_qty and average move like Alpaca's."""
        with self.lock:
            if not order.is_open:
                raise VenueError(f"order {order.id} is {order.status}; it cannot fill")
            qty = order.remaining if qty is None else qty
            if qty <= 0 or qty > order.remaining:
                raise VenueError(f"fill qty must be in (0, {order.remaining}]")
            price = price if price is not None else self._price_of(order.symbol) or order.limit_price
            if price is None:
                raise VenueError(f"no price for {order.symbol}: set one or pass price")
            self._apply_fill(order, qty, price)
            return order

    def expire(self, order: Order) -> Order:
        with self.lock:
            if not order.is_open:
                raise VenueError(f"order {order.id} is {order.status}; it cannot expire")
            order.status = "expired"
            order.expired_ns = order.updated_ns = self.now_ns()
            self._closed(order)
            return order

    def step(self) -> int:
        """Manual mode's clock tick: finish pending cancels, fill what the prices cross."""
        changed = 0
        with self.lock:
            for order in self._working_orders():
                if order.status == "pending_cancel":
                    order.status = "canceled"
                    order.canceled_ns = order.updated_ns = self.now_ns()
                    self._closed(order)
                    changed += 1
                elif self._fill_if_marketable(order):
                    changed += 1
        return changed

    # -- account ------------------------------------------------------------

    def buying_power(self) -> Decimal:
        """Cash less what open buy orders have reserved (a cash account, multiplier 1)."""
        with self.lock:
            reserved = sum(
                (
                    order.remaining * (order.limit_price or self._price_of(order.symbol) or Decimal("0"))
                    for order in self._working_orders()
                    if order.side == "buy"
                ),
                Decimal("0"),
            )
            return max(Decimal("0"), self.cash - reserved)

    def equity(self) -> Decimal:
        with self.lock:
            return self.cash + sum((self._market_value(p) for p in self.positions.values()), Decimal("0"))

    def account_json(self) -> dict[str, Any]:
        with self.lock:
            long_value = sum((self._market_value(p) for p in self.positions.values() if p.qty > 0), Decimal("0"))
            short_value = sum((self._market_value(p) for p in self.positions.values() if p.qty < 0), Decimal("0"))
            equity = self.equity()
            buying_power = self.buying_power()
            return {
                "id": self.account_id,
                "account_number": "PA3FAKE00001",
                "status": "ACTIVE",
                "crypto_status": "ACTIVE",
                "currency": "USD",
                "buying_power": wire_decimal(buying_power),
                "regt_buying_power": wire_decimal(buying_power),
                "daytrading_buying_power": "0",
                "non_marginable_buying_power": wire_decimal(buying_power),
                "options_buying_power": "0",
                "cash": wire_decimal(self.cash),
                "accrued_fees": "0",
                "pending_transfer_in": "0",
                "portfolio_value": wire_decimal(equity),
                "pattern_day_trader": False,
                "trading_blocked": False,
                "transfers_blocked": False,
                "account_blocked": False,
                "created_at": "2024-01-02T15:04:05.123456Z",
                "trade_suspended_by_user": False,
                "multiplier": "1",
                "shorting_enabled": True,
                "equity": wire_decimal(equity),
                "last_equity": wire_decimal(self.last_equity),
                "long_market_value": wire_decimal(long_value),
                "short_market_value": wire_decimal(short_value),
                "initial_margin": "0",
                "maintenance_margin": "0",
                "last_maintenance_margin": "0",
                "sma": "0",
                "daytrade_count": 0,
                "balance_asof": dt.datetime.fromtimestamp(self.now_ns() / 1e9, NEW_YORK).date().isoformat(),
                "options_approved_level": 0,
                "options_trading_level": 0,
                "intraday_adjustments": "0",
                "pending_reg_taf_fees": "0",
            }

    def position_json(self, position: Position) -> dict[str, Any]:
        with self.lock:
            price = self._price_of(position.symbol) or position.avg_entry_price
            cost_basis = position.qty * position.avg_entry_price
            market_value = position.qty * price
            unrealized = market_value - cost_basis
            plpc = (unrealized / abs(cost_basis)).quantize(AVG_PRICE_PLACES) if cost_basis else Decimal("0")
            return {
                "asset_id": position.asset_id,
                "symbol": position.symbol,
                "exchange": position.exchange,
                "asset_class": "us_equity",
                "asset_marginable": True,
                "avg_entry_price": wire_decimal(position.avg_entry_price),
                "qty": wire_decimal(position.qty),
                "qty_available": wire_decimal(position.qty),
                "side": "long" if position.qty > 0 else "short",
                "market_value": wire_decimal(market_value),
                "cost_basis": wire_decimal(cost_basis),
                "unrealized_pl": wire_decimal(unrealized),
                "unrealized_plpc": wire_decimal(plpc),
                "unrealized_intraday_pl": wire_decimal(unrealized),
                "unrealized_intraday_plpc": wire_decimal(plpc),
                "current_price": wire_decimal(price),
                "lastday_price": wire_decimal(price),
                "change_today": "0",
            }

    def clock_json(self) -> dict[str, Any]:
        """GET /v2/clock: regular hours on weekdays (holidays ignored), Eastern offsets like Alpaca."""
        now_ns = self.now_ns()
        now = dt.datetime.fromtimestamp(now_ns / 1e9, NEW_YORK)
        in_hours = now.weekday() < 5 and dt.time(9, 30) <= now.time() < dt.time(16, 0)
        is_open = in_hours if self.market_open is None else self.market_open
        next_open = _next_session_edge(now, dt.time(9, 30), strictly_after=now.time() >= dt.time(9, 30))
        next_close = _next_session_edge(now, dt.time(16, 0), strictly_after=now.time() >= dt.time(16, 0))
        return {
            "timestamp": format_timestamp_ns(now_ns, NEW_YORK),
            "is_open": is_open,
            "next_open": next_open.isoformat(),
            "next_close": next_close.isoformat(),
        }

    # -- internals ----------------------------------------------------------

    def _working_orders(self) -> list[Order]:
        return sorted((o for o in self.orders.values() if o.is_open), key=lambda o: (o.submitted_ns, o.seq))

    def _price_of(self, symbol: str) -> Decimal | None:
        price = self.prices.get(symbol)
        return price.value if price else None

    def _market_value(self, position: Position) -> Decimal:
        return position.qty * (self._price_of(position.symbol) or position.avg_entry_price)

    def _closed(self, order: Order) -> None:
        """An entry or a leg ended without filling: what happens to the rest of its family.

        An entry cancelled or expired before any fill takes its held legs with it; one that
        filled in part leaves them protecting what did fill. A bracket leg that ends takes
        its sibling with it (one cancels the other).
        """
        now = self.now_ns()
        for leg in order.legs:
            if leg.status != "held":
                continue
            if order.filled_qty > 0:
                leg.qty, leg.status = order.filled_qty, "new"
            else:
                leg.status, leg.canceled_ns = "canceled", now
            leg.updated_ns = now
        if order.parent is not None and order.parent.order_class == "bracket":
            for sibling in order.parent.legs:
                if sibling is not order and sibling.is_open:
                    sibling.status, sibling.canceled_ns, sibling.updated_ns = "canceled", now, now

    def _fill_if_marketable(self, order: Order) -> bool:
        if order.status in ("pending_cancel", "held"):
            return False
        price = self._price_of(order.symbol)
        if price is None:
            return False
        if order.stop_price is not None and not order.triggered:
            # Alpaca's stop: a buy triggers at or above its stop price, a sell at or below.
            reached = price >= order.stop_price if order.side == "buy" else price <= order.stop_price
            if not reached:
                return False
            order.triggered = True
        if order.limit_price is not None:
            crosses = price <= order.limit_price if order.side == "buy" else price >= order.limit_price
            if not crosses:
                return False
        self._apply_fill(order, order.remaining, price)
        return True

    def _apply_fill(self, order: Order, qty: Decimal, price: Decimal) -> None:
        previous_qty = order.filled_qty
        previous_avg = order.filled_avg_price or Decimal("0")
        order.filled_qty = previous_qty + qty
        order.filled_avg_price = (
            ((previous_avg * previous_qty + price * qty) / order.filled_qty).quantize(AVG_PRICE_PLACES).normalize()
        )
        now = self.now_ns()
        order.updated_ns = now
        if order.filled_qty == order.qty:
            order.status, order.filled_ns = "filled", now
            for leg in order.legs:  # the entry has filled: its legs go to work
                if leg.status == "held":
                    leg.status, leg.updated_ns = "new", now
            if order.parent is not None:
                self._closed(order)  # a bracket leg filled: the other is cancelled
        elif order.status != "pending_cancel":
            # A fill can land after a cancel request: the order stays pending_cancel.
            order.status = "partially_filled"
        signed = qty if order.side == "buy" else -qty
        self.cash -= signed * price
        self._move_position(order.symbol, signed, price)

    def _move_position(self, symbol: str, signed_qty: Decimal, price: Decimal) -> None:
        position = self.positions.get(symbol)
        if position is None:
            asset = self.assets[symbol]
            self.positions[symbol] = Position(symbol, asset.id, asset.exchange, signed_qty, price)
            return
        new_qty = position.qty + signed_qty
        if new_qty == 0:
            del self.positions[symbol]
        elif position.qty * signed_qty > 0:  # adding to the position: average cost moves
            position.avg_entry_price = (
                ((abs(position.qty) * position.avg_entry_price + abs(signed_qty) * price) / abs(new_qty))
                .quantize(AVG_PRICE_PLACES)
                .normalize()
            )
            position.qty = new_qty
        elif position.qty * new_qty < 0:  # crossed through zero: the remainder opened at this price
            position.qty, position.avg_entry_price = new_qty, price
        else:  # reducing: the average cost of what is left does not change
            position.qty = new_qty


def _legs_of(
    body: Mapping[str, Any], *, side: str, time_in_force: str
) -> tuple[str, list[tuple[str, Decimal | None, Decimal | None]]]:
    """order_class with its stop_loss / take_profit: the class, and each leg's (type, limit, stop)."""
    order_class = body.get("order_class") or ""
    if order_class in ("", "simple"):
        if body.get("stop_loss") or body.get("take_profit"):
            raise AlpacaError(422, CODE_INVALID_REQUEST, "stop_loss and take_profit need order_class oto or bracket")
        return "", []
    if order_class not in ("oto", "bracket"):
        raise AlpacaError(422, CODE_INVALID_REQUEST, f"order_class {order_class!r} is not supported")
    if time_in_force not in ("day", "gtc"):
        raise AlpacaError(422, CODE_INVALID_REQUEST, f"{order_class} orders must be day or gtc")
    if body.get("extended_hours"):
        raise AlpacaError(422, CODE_INVALID_REQUEST, "extended hours are not supported for advanced orders")
    stop_loss, take_profit = body.get("stop_loss"), body.get("take_profit")
    if order_class == "bracket" and not (stop_loss and take_profit):
        raise AlpacaError(422, CODE_INVALID_REQUEST, "bracket orders require take_profit and stop_loss")
    if order_class == "oto" and bool(stop_loss) == bool(take_profit):
        raise AlpacaError(422, CODE_INVALID_REQUEST, "oto orders require either take_profit or stop_loss")
    legs: list[tuple[str, Decimal | None, Decimal | None]] = []
    if take_profit:
        legs.append(("limit", _positive_decimal(take_profit.get("limit_price"), "take_profit.limit_price"), None))
    if stop_loss:
        stop = _positive_decimal(stop_loss.get("stop_price"), "stop_loss.stop_price")
        limit = stop_loss.get("limit_price")
        legs.append(("stop_limit", _positive_decimal(limit, "stop_loss.limit_price"), stop) if limit
                    else ("stop", None, stop))
    if take_profit and stop_loss:
        take, stop = legs[0][1], legs[1][2]
        assert take is not None and stop is not None
        if (side == "buy" and take <= stop) or (side == "sell" and take >= stop):
            raise AlpacaError(
                422, CODE_INVALID_REQUEST, "take_profit.limit_price must be beyond stop_loss.stop_price"
            )
    return order_class, legs


def _price_for(body: Mapping[str, Any], name: str, *, needed: bool) -> Decimal | None:
    """limit_price / stop_price: required by the order types that use it, refused by the others."""
    given = body.get(name) not in (None, "")
    if needed and not given:
        raise AlpacaError(422, CODE_INVALID_REQUEST, f"{name} is required for {body.get('type')} orders")
    if not needed and given:
        raise AlpacaError(422, CODE_INVALID_REQUEST, f"{name} is not allowed for {body.get('type')} orders")
    return _positive_decimal(body.get(name), name) if needed else None


def _positive_decimal(value: Any, name: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise AlpacaError(422, CODE_INVALID_REQUEST, f"invalid {name}") from None
    if not number.is_finite() or number <= 0:
        raise AlpacaError(422, CODE_INVALID_REQUEST, f"{name} must be > 0")
    return number


def _next_session_edge(now: dt.datetime, edge: dt.time, *, strictly_after: bool) -> dt.datetime:
    day = now.date() + dt.timedelta(days=1 if strictly_after else 0)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, edge, NEW_YORK)
