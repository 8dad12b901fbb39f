"""Alpaca (paper or live) behind the project's broker interface, built on alpaca-py.

What this module adds to alpaca-py, and why:

* **A timeout.** alpaca-py 0.44.0's ``RESTClient`` sends every request without
  one, so a stalled connection would hold an order entry (or a Celery worker)
  forever. Every request here carries ``timeout_s`` (``ALPACA_TIMEOUT_S``).
* **Its own retry policy.** alpaca-py retries any 429 or 504, POSTs included,
  three times with ``time.sleep(3)``: a submit could be sent four times and the
  caller blocked for nine seconds. ``retry_attempts=0`` does not switch that
  off (the SDK tests ``if retry_attempts and ...``). Here a submit is sent
  exactly once; an ambiguous outcome is reported as such and resolved by
  looking the ``client_order_id`` up (SPEC 3.2). Only reads (GET) are retried,
  a bounded number of times (see :class:`RetryPolicy`).
* **No floats, no SDK objects.** Clients are built with ``raw_data=True`` and
  the JSON is parsed here into ``brokers.types`` with ``Decimal(str(value))``
  and aware UTC datetimes. The order submit and the order list bypass the SDK's
  request models (``OrderRequest.qty`` is a float; ``GetOrdersRequest.after``
  is a datetime, which cannot carry Alpaca's nanoseconds) and go through the
  SDK's own ``post``/``get``, so authentication, URLs and error handling stay
  alpaca-py's.
* **The project's exceptions only**, mapped by whether Alpaca may have acted
  (see ``brokers.exceptions``), and never carrying the API key or secret.

Past 500 lines on purpose: it is one concern, the Alpaca adapter (the
``BrokerClient`` interface over one venue's REST API, its parsing and its
error mapping). Splitting it would spread one venue's quirks over modules
that only make sense together.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import requests
from alpaca.common.exceptions import APIError
from alpaca.common.rest import RESTClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockLatestTradeRequest
from alpaca.trading.client import TradingClient
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from brokers.base import MAX_PAGE_SIZE, BrokerClient, MarketData
from brokers.exceptions import (
    BrokerError,
    BrokerOutcomeUnknown,
    BrokerRateLimited,
    BrokerRejected,
    BrokerUnavailable,
    OrderNotFound,
)
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
    OrderType,
    ReplaceRequest,
    Side,
    TimeInForce,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The alpaca-py release whose private RESTClient attributes (_session, _retry,
# _retry_codes) this module replaces. tests/brokers/test_alpaca_adapter.py pins
# it, so an upgrade fails a test until someone re-reads alpaca/common/rest.py.
VERIFIED_ALPACA_PY_VERSION = "0.44.0"

REDACTED = "[redacted]"
_NANOS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How reads (GET) are retried; writes are never retried.

    A GET is retried after a 5xx, a 429 or a connection failure, at most
    ``get_attempts`` times in all, waiting ``backoff_s`` doubled each time (never
    more than ``max_wait_s``). After a 429 it waits until ``X-Ratelimit-Reset``
    instead, but only when that is within ``max_wait_s``: otherwise it raises
    ``BrokerRateLimited`` at once rather than stall the caller. A read timeout
    is not retried: a broker that did not answer in ``timeout_s`` rarely answers
    the next one faster, and retrying would multiply the caller's wait.
    """

    get_attempts: int = 3
    backoff_s: float = 0.25
    max_wait_s: float = 2.0


class _TimeoutSession(requests.Session):
    """A Session whose every request has a (connect, read) timeout unless one is given."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        # alpaca-py passes everything but method and url by keyword; "timeout" is
        # the 9th parameter of Session.request, so 7 positional extras would set it.
        if "timeout" not in kwargs and len(args) < 7:
            kwargs["timeout"] = (self.timeout_s, self.timeout_s)
        return super().request(method, url, *args, **kwargs)


def _take_over_transport(client: RESTClient, timeout_s: float) -> None:
    """Give an alpaca-py client our timeout and switch its retry loop off (alpaca-py 0.44.0).

    These are private attributes of ``alpaca.common.rest.RESTClient``, touched
    because the SDK offers no public way to do either: ``_session`` is the only
    place a timeout can be attached, and ``_retry = 0`` with no retry codes
    makes ``_one_request`` raise ``APIError`` on the first 429/504 instead of
    sleeping and resending. If a future SDK renames them, fail loudly here
    rather than silently retrying POSTs again.
    """
    for attribute in ("_session", "_retry", "_retry_codes"):
        if not hasattr(client, attribute):
            raise RuntimeError(
                f"alpaca-py's RESTClient has no {attribute} any more: re-check brokers/alpaca.py against "
                f"the installed alpaca-py (verified with {VERIFIED_ALPACA_PY_VERSION}) before using it"
            )
    client._session.close()
    client._session = _TimeoutSession(timeout_s)
    client._retry = 0
    client._retry_codes = []


@dataclass(frozen=True, slots=True)
class _Failure:
    """A translated failure, and whether a read may be tried again (and when)."""

    error: BrokerError
    retryable: bool
    wait_s: float | None = None  # None: use the policy's backoff


class _AlpacaCalls:
    """The one place where a broker round trip is made, counted, retried and translated."""

    counter: CallCounter  # set by BrokerClient / MarketData.__init__
    _secrets: tuple[str, ...]
    _retry_policy: RetryPolicy
    _timeout_s: float

    def _call(self, operation: str, send: Callable[[], T], *, retry: bool) -> T:
        attempt = 0
        while True:
            attempt += 1
            self.counter.record(operation)
            try:
                return send()
            except APIError as exc:
                failure = self._translate_answer(operation, exc)
                cause: BaseException = exc
            except requests.RequestException as exc:
                failure = self._translate_transport(operation, exc)
                cause = exc
            except ValueError as exc:
                # alpaca-py's own parsing of an answer it did not expect (a market
                # data body without "trades"): an answer came, but not one we can read.
                error = BrokerOutcomeUnknown(f"alpaca {operation}: unreadable answer ({type(exc).__name__})")
                failure, cause = _Failure(error, retryable=False), exc
            wait_s = failure.wait_s if failure.wait_s is not None else self._backoff(attempt)
            if not (retry and failure.retryable and attempt < self._retry_policy.get_attempts):
                raise failure.error from cause
            if wait_s > self._retry_policy.max_wait_s:
                # The broker asked us to come back later than we are willing to wait.
                raise failure.error from cause
            logger.info("alpaca %s failed (%s); retry %d in %.2fs", operation, failure.error, attempt, wait_s)
            time.sleep(wait_s)

    def _backoff(self, attempt: int) -> float:
        return min(self._retry_policy.max_wait_s, self._retry_policy.backoff_s * 2.0 ** (attempt - 1))

    def _translate_answer(self, operation: str, exc: APIError) -> _Failure:
        """An HTTP answer with an error status. Alpaca acted only if it says so (it never does on 4xx)."""
        response = exc.response
        status = exc.status_code or 0
        # Not exc.code / exc.message: they json.loads the body and raise on an HTML gateway page.
        code, message = _error_body(response)
        detail = self._redact(message) if message else f"HTTP {status} without an Alpaca error body"
        if status == 429:
            reset_at = _rate_limit_reset(response)
            wait_s = None
            if reset_at is not None:
                wait_s = max(0.0, (reset_at - dt.datetime.now(dt.UTC)).total_seconds())
            limited = BrokerRateLimited(f"alpaca {operation}: rate limited ({detail})", reset_at=reset_at)
            return _Failure(limited, retryable=True, wait_s=wait_s)
        if 400 <= status < 500:
            # Alpaca refused and said why; the message is what an operator reads as reject_reason.
            return _Failure(BrokerRejected(detail, status=status, code=code), retryable=False)
        # 5xx (and, defensively, anything else raise_for_status raised for): the
        # request reached Alpaca and we cannot tell what it did.
        error = BrokerOutcomeUnknown(f"alpaca {operation}: HTTP {status} ({detail})", status=status or None)
        return _Failure(error, retryable=status >= 500)

    def _translate_transport(self, operation: str, exc: requests.RequestException) -> _Failure:
        """No usable answer: tell "never sent" (safe) from "sent, fate unknown"."""
        if isinstance(exc, requests.ConnectionError) and _never_sent(exc):
            error: BrokerError = BrokerUnavailable(f"alpaca {operation}: cannot connect ({type(exc).__name__})")
            return _Failure(error, retryable=True)
        if isinstance(exc, requests.Timeout):
            error = BrokerOutcomeUnknown(f"alpaca {operation}: no answer within {self._timeout_s:g}s")
            return _Failure(error, retryable=False)
        if isinstance(exc, requests.ConnectionError):
            # The request left and the connection died before an answer (reset,
            # closed): Alpaca may have acted on it.
            error = BrokerOutcomeUnknown(f"alpaca {operation}: connection lost before an answer")
            return _Failure(error, retryable=True)
        if isinstance(exc, requests.JSONDecodeError):
            # A 2xx whose body is not JSON (a proxy page): the broker may have acted.
            error = BrokerOutcomeUnknown(f"alpaca {operation}: the answer was not JSON")
            return _Failure(error, retryable=True)
        error = BrokerOutcomeUnknown(f"alpaca {operation}: {type(exc).__name__}")
        return _Failure(error, retryable=False)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def _parsed(self, operation: str, parse: Callable[[Any], T], raw: Any) -> T:
        """Parse an answer; one we cannot read means Alpaca acted in a way we cannot see."""
        try:
            return parse(raw)
        except _UnrepresentableOrderError as exc:
            # Alpaca answered clearly; the project's types just cannot say it (a
            # dashboard trailing stop). Not "unknown": nothing ambiguous happened.
            raise BrokerError(f"alpaca {operation}: {exc}") from None
        except (KeyError, TypeError, ValueError, InvalidOperation, AttributeError) as exc:
            raise BrokerOutcomeUnknown(
                f"alpaca {operation}: unreadable answer ({type(exc).__name__}: {self._redact(str(exc))})"
            ) from None


class AlpacaBroker(_AlpacaCalls, BrokerClient):
    """Alpaca's Trading API v2 through alpaca-py's TradingClient."""

    name = "alpaca"

    def __init__(
        self,
        *,
        api_key: str,
        secret_key: str,
        base_url: str,
        mode: str = "paper",
        timeout_s: float = 10.0,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__()
        self.mode = mode
        self._timeout_s = timeout_s
        self._retry_policy = retry_policy or RetryPolicy()
        self._secrets = tuple(s for s in (api_key, secret_key) if s)
        self._trading = TradingClient(api_key=api_key, secret_key=secret_key, raw_data=True, url_override=base_url)
        _take_over_transport(self._trading, timeout_s)

    @classmethod
    def from_settings(cls) -> AlpacaBroker:
        from django.conf import settings

        return cls(
            api_key=settings.ALPACA_API_KEY,
            secret_key=settings.ALPACA_SECRET_KEY,
            base_url=settings.ALPACA_BASE_URL,
            mode=settings.TRADING_MODE,
            timeout_s=float(settings.ALPACA_TIMEOUT_S),
        )

    # -- orders ---------------------------------------------------------------

    def submit_order(self, request: OrderRequest) -> BrokerOrder:
        body: dict[str, Any] = {
            "client_order_id": request.client_order_id,
            "symbol": request.symbol,
            "qty": _wire_decimal(request.qty),
            "side": request.side.value,
            "type": request.type.value,
            "time_in_force": request.time_in_force.value,
            "extended_hours": request.extended_hours,
        }
        if request.limit_price is not None:
            body["limit_price"] = _wire_decimal(request.limit_price)
        if request.stop_price is not None:
            body["stop_price"] = _wire_decimal(request.stop_price)
        if request.order_class != "simple":
            body["order_class"] = request.order_class
            if request.stop_loss is not None:
                body["stop_loss"] = {"stop_price": _wire_decimal(request.stop_loss)}
            if request.take_profit is not None:
                body["take_profit"] = {"limit_price": _wire_decimal(request.take_profit)}
        # Never retried, whatever happens: a second POST could create a second
        # order. An ambiguous failure surfaces as BrokerOutcomeUnknown and the
        # pipeline resolves it with get_order_by_client_id.
        raw = self._call("submit_order", lambda: self._trading.post("/orders", body), retry=False)
        return self._parsed("submit_order", _order, raw)

    def replace_order(self, broker_order_id: str, request: ReplaceRequest) -> BrokerOrder:
        if not _is_uuid(broker_order_id):
            raise OrderNotFound(f"alpaca has no order {broker_order_id!r}")
        body: dict[str, Any] = {"client_order_id": request.client_order_id}
        for name in ("qty", "limit_price", "stop_price"):
            value = getattr(request, name)
            if value is not None:
                body[name] = _wire_decimal(value)
        try:
            # Never retried, like a submit: a second PATCH could replace the replacement.
            raw = self._call(
                "replace_order", lambda: self._trading.patch(f"/orders/{broker_order_id}", body), retry=False
            )
        except BrokerRejected as exc:
            if exc.status == 404:
                raise OrderNotFound(f"alpaca has no order {broker_order_id}") from None
            raise
        return self._parsed("replace_order", _order, raw)

    def get_order(self, broker_order_id: str) -> BrokerOrder:
        if not _is_uuid(broker_order_id):
            # Alpaca's order ids are UUIDs (the SDK refuses anything else): no such order.
            raise OrderNotFound(f"alpaca has no order {broker_order_id!r}")
        try:
            # nested: an entry comes with its legs (orders.services.execution records them).
            raw = self._call(
                "get_order",
                functools.partial(self._trading.get, f"/orders/{broker_order_id}", {"nested": "true"}),
                retry=True,
            )
        except BrokerRejected as exc:
            if exc.status == 404:
                raise OrderNotFound(f"alpaca has no order {broker_order_id}") from None
            raise
        return self._parsed("get_order", _order, raw)

    def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        try:
            raw = self._call(
                "get_order_by_client_id", lambda: self._trading.get_order_by_client_id(client_order_id), retry=True
            )
        except BrokerRejected as exc:
            if exc.status == 404:
                return None
            raise
        return self._parsed("get_order_by_client_id", _order, raw)

    def iter_orders(
        self,
        *,
        status: str,
        after: dt.datetime | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[BrokerOrder]:
        """Page through GET /v2/orders oldest first; ``after`` filters on *submission* time.

        Alpaca has no cursor for this list, only ``after`` (exclusive, on
        ``submitted_at``) and ``direction``. Each next page starts one
        nanosecond before the last order seen, so orders that share its
        timestamp are not skipped; the ones already yielded are dropped by id.
        A short page is the last one.
        """
        if status not in ("open", "closed"):
            raise ValueError(f"status must be 'open' or 'closed', not {status!r}")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        floor_ns = None if after is None else _datetime_ns(after)
        cursor_ns = floor_ns
        seen: set[str] = set()
        while True:
            params: dict[str, Any] = {"status": status, "limit": page_size, "direction": "asc", "nested": "true"}
            if cursor_ns is not None:
                params["after"] = _format_ns(cursor_ns)
            page = self._call("list_orders", functools.partial(self._trading.get, "/orders", params), retry=True)
            if not isinstance(page, list):
                raise BrokerOutcomeUnknown(f"alpaca list_orders: expected a list, got {type(page).__name__}")
            if not all(isinstance(raw, Mapping) for raw in page):
                raise BrokerOutcomeUnknown("alpaca list_orders: expected a list of orders")
            fresh = 0
            for raw in page:
                order_id = str(raw.get("id"))
                if order_id in seen:
                    continue
                seen.add(order_id)
                fresh += 1
                order = self._listed_order(raw)
                if order is not None:
                    yield order
            if len(page) < page_size:
                return
            last_ns = self._parsed("list_orders", lambda r: _timestamp_ns(r[-1]["submitted_at"]), page)
            if fresh == 0:
                # A whole page of orders already seen: more than page_size orders
                # share one submitted_at, and "after" cannot get inside the tie.
                # Step past it rather than loop for ever, and say so loudly.
                logger.error(
                    "alpaca list_orders: more than %d orders share submitted_at %s; orders in that tie "
                    "beyond the first page cannot be listed by time",
                    page_size,
                    _format_ns(last_ns),
                )
                cursor_ns = last_ns
            else:
                cursor_ns = last_ns - 1
            # Only orders in the tie at the cursor can come back on the next page:
            # remember those, so memory stays one page however long the listing.
            seen = self._parsed("list_orders", functools.partial(_ids_at_or_after, tie_ns=last_ns), page)
            if floor_ns is not None:
                cursor_ns = max(cursor_ns, floor_ns)  # never below the caller's (exclusive) bound

    def _listed_order(self, raw: Mapping[str, Any]) -> BrokerOrder | None:
        """An order from a list; ones this system cannot have sent (trailing stop, notional...) are skipped."""
        try:
            return _order(raw)
        except _UnrepresentableOrderError as exc:
            logger.warning("alpaca list_orders: skipping %s", exc)
            return None
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise BrokerOutcomeUnknown(
                f"alpaca list_orders: unreadable order {raw.get('id')} ({type(exc).__name__})"
            ) from None

    def cancel_order(self, broker_order_id: str) -> None:
        if not _is_uuid(broker_order_id):
            raise OrderNotFound(f"alpaca has no order {broker_order_id!r}")
        try:
            # Not retried: after a lost answer the cancel may have happened, and
            # the caller learns the order's state from the next status poll.
            self._call("cancel_order", lambda: self._trading.cancel_order_by_id(broker_order_id), retry=False)
        except BrokerRejected as exc:
            if exc.status == 404:
                raise OrderNotFound(f"alpaca has no order {broker_order_id}") from None
            raise

    def cancel_all_orders(self) -> list[CancelResult]:
        raw = self._call("cancel_all_orders", self._trading.cancel_orders, retry=False)
        return self._parsed(
            "cancel_all_orders",
            lambda items: [CancelResult(broker_order_id=str(i["id"]), status=int(i["status"])) for i in items or []],
            raw,
        )

    # -- positions and account --------------------------------------------------

    def list_positions(self) -> list[BrokerPosition]:
        raw = self._call("list_positions", self._trading.get_all_positions, retry=True)
        return self._parsed("list_positions", lambda items: [_position(item) for item in items], raw)

    def close_all_positions(self) -> None:
        """One DELETE /v2/positions?cancel_orders=true; never retried (it places orders)."""
        raw = self._call(
            "close_all_positions", lambda: self._trading.close_all_positions(cancel_orders=True), retry=False
        )
        failures = self._parsed("close_all_positions", _close_failures, raw)
        if failures:
            symbols = ", ".join(
                f"{symbol} (HTTP {status}: {self._redact(message)})" for symbol, status, message, _ in failures
            )
            _, status, _, code = failures[0]
            raise BrokerRejected(f"alpaca could not close every position: {symbols}", status=status, code=code)

    def get_account(self) -> Account:
        raw = self._call("get_account", self._trading.get_account, retry=True)
        return self._parsed("get_account", _account, raw)

    def get_clock(self) -> Clock:
        raw = self._call("get_clock", self._trading.get_clock, retry=True)
        return self._parsed("get_clock", _clock, raw)

    def get_asset(self, symbol: str) -> Asset | None:
        if not re.fullmatch(r"[A-Za-z0-9.\-]{1,32}", symbol):
            return None  # cannot be an Alpaca equity symbol, and must not be pasted into a URL path
        try:
            raw = self._call("get_asset", lambda: self._trading.get_asset(symbol), retry=True)
        except BrokerRejected as exc:
            if exc.status == 404:
                return None
            raise
        return self._parsed("get_asset", _asset, raw)


class AlpacaMarketData(_AlpacaCalls, MarketData):
    """Latest trades from Alpaca's market data API v2 through StockHistoricalDataClient."""

    def __init__(
        self,
        *,
        api_key: str,
        secret_key: str,
        data_url: str,
        timeout_s: float = 10.0,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__()
        self._timeout_s = timeout_s
        self._retry_policy = retry_policy or RetryPolicy()
        self._secrets = tuple(s for s in (api_key, secret_key) if s)
        self._data = StockHistoricalDataClient(
            api_key=api_key, secret_key=secret_key, raw_data=True, url_override=data_url
        )
        _take_over_transport(self._data, timeout_s)

    @classmethod
    def from_settings(cls) -> AlpacaMarketData:
        from django.conf import settings

        return cls(
            api_key=settings.ALPACA_API_KEY,
            secret_key=settings.ALPACA_SECRET_KEY,
            data_url=settings.ALPACA_DATA_URL,
            timeout_s=float(settings.ALPACA_TIMEOUT_S),
        )

    def latest_trades(self, symbols: Iterable[str]) -> dict[str, LastTrade]:
        wanted = list(dict.fromkeys(s for s in symbols if s))
        if not wanted:
            return {}
        request = StockLatestTradeRequest(symbol_or_symbols=wanted)
        raw = self._call("latest_trades", lambda: self._data.get_stock_latest_trade(request), retry=True)

        def parse(trades: Mapping[str, Any]) -> dict[str, LastTrade]:
            return {
                symbol: LastTrade(symbol=symbol, price=_decimal(trade["p"]), at=_timestamp(trade["t"]))
                for symbol, trade in trades.items()
                if symbol in wanted and trade
            }

        return self._parsed("latest_trades", parse, raw)


# --- parsing ----------------------------------------------------------------------


class _UnrepresentableOrderError(ValueError):
    """An Alpaca order the project's types cannot express (and this system never sends)."""


def _order(raw: Mapping[str, Any]) -> BrokerOrder:
    try:
        side = Side(raw["side"])
        order_type = OrderType(raw.get("type") or raw["order_type"])
        time_in_force = TimeInForce(raw["time_in_force"])
    except ValueError as exc:
        raise _UnrepresentableOrderError(f"order {raw.get('id')} cannot be represented: {exc}") from None
    if raw.get("qty") is None:
        raise _UnrepresentableOrderError(f"order {raw.get('id')} is a notional order without qty")
    return BrokerOrder(
        broker_order_id=str(raw["id"]),
        client_order_id=str(raw["client_order_id"]),
        symbol=str(raw["symbol"]),
        side=side,
        qty=_decimal(raw["qty"]),
        type=order_type,
        time_in_force=time_in_force,
        status=str(raw["status"]),
        filled_qty=_decimal(raw.get("filled_qty") or "0"),
        filled_avg_price=_optional_decimal(raw.get("filled_avg_price")),
        limit_price=_optional_decimal(raw.get("limit_price")),
        stop_price=_optional_decimal(raw.get("stop_price")),
        submitted_at=_optional_timestamp(raw.get("submitted_at")),
        updated_at=_optional_timestamp(raw.get("updated_at")),
        filled_at=_optional_timestamp(raw.get("filled_at")),
        order_class=str(raw.get("order_class") or ""),
        replaces=str(raw["replaces"]) if raw.get("replaces") else None,
        legs=tuple(_order(leg) for leg in raw.get("legs") or ()),
    )


def _position(raw: Mapping[str, Any]) -> BrokerPosition:
    qty = _decimal(raw["qty"])
    # Alpaca signs short quantities, but say so from "side" too in case it does not.
    if raw.get("side") == "short" and qty > 0:
        qty = -qty
    return BrokerPosition(
        symbol=str(raw["symbol"]),
        qty=qty,
        avg_entry_price=_decimal(raw["avg_entry_price"]),
        market_value=_optional_decimal(raw.get("market_value")),
        current_price=_optional_decimal(raw.get("current_price")),
    )


def _account(raw: Mapping[str, Any]) -> Account:
    return Account(
        equity=_decimal(raw["equity"]),
        last_equity=_decimal(raw["last_equity"]),
        cash=_decimal(raw["cash"]),
        buying_power=_decimal(raw["buying_power"]),
        status=str(raw.get("status") or "ACTIVE"),
        # Absent means not blocked; anything but a plain false is read as blocked (fail closed).
        trading_blocked=raw.get("trading_blocked", False) is not False,
        account_blocked=raw.get("account_blocked", False) is not False,
    )


NEW_YORK = ZoneInfo("America/New_York")
EXTENDED_OPEN, REGULAR_OPEN, REGULAR_CLOSE, EXTENDED_CLOSE = (
    dt.time(4, 0), dt.time(9, 30), dt.time(16, 0), dt.time(20, 0)
)


def extended_session_open(*, timestamp: dt.datetime, is_open: bool, next_open: dt.datetime) -> bool:
    """Whether Alpaca takes extended_hours orders now: pre-market 04:00-09:30, after-hours 16:00-20:00 New York.

    Alpaca's clock names only the regular session. Pre-market is the four
    hours before a ``next_open`` that falls today; after-hours is read from
    the weekday (the clock cannot tell an exchange holiday's evening from a
    trading day's, and on one the broker refuses the order itself).
    """
    if is_open:
        return True
    local = timestamp.astimezone(NEW_YORK)
    if local.weekday() >= 5:
        return False
    if EXTENDED_OPEN <= local.time() < REGULAR_OPEN:
        return next_open.astimezone(NEW_YORK).date() == local.date()
    return REGULAR_CLOSE <= local.time() < EXTENDED_CLOSE


def _clock(raw: Mapping[str, Any]) -> Clock:
    timestamp = _timestamp(raw["timestamp"])
    is_open = bool(raw["is_open"])
    next_open = _timestamp(raw["next_open"])
    return Clock(
        timestamp=timestamp,
        is_open=is_open,
        next_open=next_open,
        next_close=_timestamp(raw["next_close"]),
        extended_is_open=extended_session_open(timestamp=timestamp, is_open=is_open, next_open=next_open),
    )


def _asset(raw: Mapping[str, Any]) -> Asset:
    # An inactive asset cannot be traded whatever its tradable flag says.
    tradable = raw.get("tradable") is True and raw.get("status", "active") == "active"
    return Asset(
        symbol=str(raw["symbol"]),
        tradable=tradable,
        name=str(raw.get("name") or ""),
        shortable=raw.get("shortable") is True,
        easy_to_borrow=raw.get("easy_to_borrow") is True,
    )


def _close_failures(items: Any) -> list[tuple[str, int, str, int | None]]:
    """(symbol, status, message, code) for every position Alpaca could not start closing."""
    failures = []
    for item in items or []:
        status = int(item["status"])
        if status >= 300:
            body = item.get("body") if isinstance(item.get("body"), Mapping) else {}
            code = body.get("code")
            failures.append(
                (str(item["symbol"]), status, str(body.get("message") or ""), code if isinstance(code, int) else None)
            )
    return failures


def _error_body(response: requests.Response | None) -> tuple[int | None, str | None]:
    """Alpaca's {"code", "message"}, or (None, None) when the body is not that (an HTML page)."""
    if response is None:
        return None, None
    try:
        body = json.loads(response.text)
    except ValueError:
        return None, None
    if not isinstance(body, Mapping):
        return None, None
    code = body.get("code")
    message = body.get("message")
    return (code if isinstance(code, int) else None), (str(message) if message else None)


def _rate_limit_reset(response: requests.Response | None) -> dt.datetime | None:
    if response is None:
        return None
    raw = response.headers.get("X-Ratelimit-Reset")
    try:
        return dt.datetime.fromtimestamp(int(raw), dt.UTC) if raw else None
    except (ValueError, OverflowError, OSError):
        return None


def _never_sent(exc: requests.ConnectionError) -> bool:
    """True when the request provably never reached Alpaca (refused, DNS, connect timeout, TLS)."""
    if isinstance(exc, (requests.ConnectTimeout, requests.exceptions.SSLError)):
        return True
    reason: object = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    # NewConnectionError covers refused connections and NameResolutionError.
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _decimal(value: Any) -> Decimal:
    # str() first: Alpaca's trading API sends strings, market data sends JSON
    # numbers, which arrive as floats; str(float) is their shortest exact spelling.
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a number: {value!r}")
    number = Decimal(str(value))
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return number


def _optional_decimal(value: Any) -> Decimal | None:
    return None if value is None or value == "" else _decimal(value)


def _wire_decimal(value: Decimal) -> str:
    """A Decimal as Alpaca's JSON strings want it: plain notation, never an exponent."""
    return format(value, "f")


_RFC3339 = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,9}))?"
    r"(?P<zone>[Zz]|[+-]\d{2}:\d{2})$"
)


def _ids_at_or_after(rows: list[dict[str, Any]], *, tie_ns: int) -> set[str]:
    """Ids of the listed orders submitted at or after ``tie_ns``: the tie at a paging cursor."""
    return {str(row.get("id")) for row in rows if _timestamp_ns(row["submitted_at"]) >= tie_ns}


def _timestamp_ns(text: str) -> int:
    """Nanoseconds since the epoch from Alpaca's RFC 3339 (which carries up to 9 fractional digits)."""
    match = _RFC3339.match(text)
    if not match:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    zone = "+00:00" if match["zone"] in ("Z", "z") else match["zone"]
    whole = dt.datetime.fromisoformat(f"{match['date']}T{match['time']}{zone}")
    return int(whole.timestamp()) * _NANOS + int((match["fraction"] or "0").ljust(9, "0"))


def _timestamp(text: str) -> dt.datetime:
    """An aware UTC datetime (microseconds: Python's limit; the nanoseconds are dropped)."""
    ns = _timestamp_ns(text)
    seconds, nanos = divmod(ns, _NANOS)
    return dt.datetime.fromtimestamp(seconds, dt.UTC).replace(microsecond=nanos // 1000)


def _optional_timestamp(text: str | None) -> dt.datetime | None:
    return None if not text else _timestamp(text)


def _datetime_ns(moment: dt.datetime) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("after must be an aware datetime (UTC)")
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    delta = moment - epoch
    return (delta.days * 86_400 + delta.seconds) * _NANOS + delta.microseconds * 1000


def _format_ns(ns: int) -> str:
    seconds, nanos = divmod(ns, _NANOS)
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"
