"""The interfaces every broker adapter implements.

Everything here speaks the project's own types (``brokers.types``): Decimal
money, aware UTC datetimes. Adapters raise only ``brokers.exceptions``.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Iterable, Iterator

from brokers.types import (
    Account,
    Asset,
    BrokerOrder,
    BrokerPosition,
    CallCounter,
    CancelResult,
    Clock,
    LastTrade,
    OrderRequest,
    ReplaceRequest,
)

# Alpaca's largest page for GET /v2/orders.
MAX_PAGE_SIZE = 500


class BrokerClient(abc.ABC):
    """A trading venue: Alpaca (paper or live) or the simulated broker."""

    name: str
    mode: str  # "paper" or "live"

    def __init__(self) -> None:
        self.counter = CallCounter()

    @abc.abstractmethod
    def submit_order(self, request: OrderRequest) -> BrokerOrder:
        """Send one order. Raises BrokerRejected / BrokerOutcomeUnknown / BrokerRateLimited."""

    @abc.abstractmethod
    def replace_order(self, broker_order_id: str, request: ReplaceRequest) -> BrokerOrder:
        """Replace a working order (Alpaca's PATCH): the new order, named ``request.client_order_id``.

        Never retried: an ambiguous outcome raises BrokerOutcomeUnknown and is
        resolved by looking the replacement's client_order_id up, like a send.
        """

    @abc.abstractmethod
    def get_order(self, broker_order_id: str) -> BrokerOrder:
        """Raises OrderNotFound when the broker has no such order."""

    @abc.abstractmethod
    def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        """None when the broker has never seen this client_order_id."""

    @abc.abstractmethod
    def iter_orders(
        self,
        *,
        status: str,
        after: dt.datetime | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[BrokerOrder]:
        """Every order with ``status`` "open" or "closed" (closed: updated after ``after``).

        Pages through the broker ``page_size`` at a time, so the number of
        broker calls grows with pages, never with orders.
        """

    @abc.abstractmethod
    def cancel_order(self, broker_order_id: str) -> None:
        """Ask the broker to cancel. Raises BrokerRejected if it is no longer cancelable."""

    @abc.abstractmethod
    def cancel_all_orders(self) -> list[CancelResult]:
        """One call that cancels every open order."""

    @abc.abstractmethod
    def list_positions(self) -> list[BrokerPosition]: ...

    @abc.abstractmethod
    def close_all_positions(self) -> None:
        """Flatten: market-close every position (and cancel open orders first)."""

    @abc.abstractmethod
    def get_account(self) -> Account: ...

    @abc.abstractmethod
    def get_clock(self) -> Clock: ...

    @abc.abstractmethod
    def get_asset(self, symbol: str) -> Asset | None:
        """None when the broker does not know the symbol."""


class MarketData(abc.ABC):
    """Latest trade prices with their timestamps."""

    def __init__(self) -> None:
        self.counter = CallCounter()

    @abc.abstractmethod
    def latest_trades(self, symbols: Iterable[str]) -> dict[str, LastTrade]:
        """One call for many symbols; symbols without a trade are absent."""

    def latest_trade(self, symbol: str) -> LastTrade | None:
        return self.latest_trades([symbol]).get(symbol)
