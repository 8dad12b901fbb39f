"""AlpacaBroker and AlpacaMarketData: the real alpaca-py, over real HTTP, against the fake Alpaca.

Nothing here mocks the SDK or requests: every fault is something the fake's
socket does, and every assertion is on what the adapter raised or returned and
on what the fake saw arrive.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import logging
import socket
import time
import traceback
import uuid
from decimal import Decimal

import pytest
from django.test import override_settings

from brokers.alpaca import VERIFIED_ALPACA_PY_VERSION, AlpacaBroker, AlpacaMarketData, RetryPolicy
from brokers.exceptions import (
    BrokerError,
    BrokerOutcomeUnknown,
    BrokerRateLimited,
    BrokerRejected,
    BrokerUnavailable,
    OrderNotFound,
)
from brokers.types import OrderRequest, OrderType, Side, TimeInForce
from tests.fake_alpaca import DEFAULT_API_KEY, DEFAULT_SECRET_KEY, FakeAlpacaServer

TIMEOUT_S = 0.5
FAST_RETRIES = RetryPolicy(get_attempts=3, backoff_s=0.01, max_wait_s=1.5)
# Loose upper bounds that still tell "answered at once" from "the SDK slept 3 s".
PROMPT_S = 2.5

pytest_plugins = ["tests.fake_alpaca.fixtures"]


@pytest.fixture
def broker(fake_alpaca: FakeAlpacaServer) -> AlpacaBroker:
    return AlpacaBroker(
        api_key=DEFAULT_API_KEY,
        secret_key=DEFAULT_SECRET_KEY,
        base_url=fake_alpaca.base_url,
        timeout_s=TIMEOUT_S,
        retry_policy=FAST_RETRIES,
    )


@pytest.fixture
def market_data(fake_alpaca: FakeAlpacaServer) -> AlpacaMarketData:
    return AlpacaMarketData(
        api_key=DEFAULT_API_KEY,
        secret_key=DEFAULT_SECRET_KEY,
        data_url=fake_alpaca.base_url,
        timeout_s=TIMEOUT_S,
        retry_policy=FAST_RETRIES,
    )


def market_buy(client_order_id: str, *, symbol: str = "AAPL", qty: str = "10") -> OrderRequest:
    return OrderRequest(client_order_id, symbol, Side.BUY, Decimal(qty), OrderType.MARKET)


def limit_order(client_order_id: str, *, side: Side = Side.BUY, qty: str = "5", price: str = "100") -> OrderRequest:
    return OrderRequest(
        client_order_id, "AAPL", side, Decimal(qty), OrderType.LIMIT, TimeInForce.GTC, limit_price=Decimal(price)
    )


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the SDK is the one we verified ------------------------------------------


def test_installed_alpaca_py_is_the_version_whose_internals_the_adapter_replaces() -> None:
    # brokers/alpaca.py swaps RESTClient._session and zeroes _retry/_retry_codes.
    # An upgrade must re-read alpaca/common/rest.py before changing this pin.
    assert importlib.metadata.version("alpaca-py") == VERIFIED_ALPACA_PY_VERSION


# --- submit: the happy paths -------------------------------------------------------


def test_submit_market_order_when_accepted_then_returns_filled_order_in_decimals(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> None:
    order = broker.submit_order(market_buy("entry-1", qty="1.5"))

    assert order.client_order_id == "entry-1"
    assert order.status == "filled"
    assert order.qty == Decimal("1.5") and isinstance(order.qty, Decimal)
    assert order.filled_qty == Decimal("1.5")
    assert order.filled_avg_price == Decimal("190")
    assert order.submitted_at is not None and order.submitted_at.tzinfo == dt.UTC
    at_broker = fake_alpaca.order(order.broker_order_id)
    assert at_broker is not None and at_broker["client_order_id"] == "entry-1"


def test_submit_limit_order_sends_quantity_and_price_as_exact_strings(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> None:
    order = broker.submit_order(limit_order("limit-1", qty="0.123456789", price="100.0001"))

    assert order.status == "new"  # 100.0001 is below AAPL's 190: it rests
    assert order.qty == Decimal("0.123456789")
    assert order.limit_price == Decimal("100.0001")
    assert order.filled_avg_price is None
    assert order.type is OrderType.LIMIT and order.time_in_force is TimeInForce.GTC


# --- submit: every way the answer can go missing -------------------------------------


def test_submit_when_response_lost_after_accept_then_outcome_unknown_and_order_found_by_client_id(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> None:
    fake_alpaca.set_fault("lose_response", method="POST", path="/v2/orders")

    with pytest.raises(BrokerOutcomeUnknown) as raised:
        broker.submit_order(market_buy("lost-1"))

    assert not isinstance(raised.value, BrokerRateLimited)
    assert fake_alpaca.submissions == {"lost-1": 1}
    found = broker.get_order_by_client_id("lost-1")
    assert found is not None and found.status == "filled"


def test_submit_when_server_errors_before_acting_then_outcome_unknown_and_nothing_created(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> None:
    fake_alpaca.set_fault("http_500", method="POST", path="/v2/orders")

    with pytest.raises(BrokerOutcomeUnknown) as raised:
        broker.submit_order(market_buy("e500-1"))

    assert raised.value.status == 500
    assert "internal server error" in raised.value.message
    assert len(fake_alpaca.requests_to("POST", "/v2/orders")) == 1
    assert broker.get_order_by_client_id("e500-1") is None


def test_submit_when_server_errors_after_acting_then_outcome_unknown_and_order_exists(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> None:
    fake_alpaca.set_fault("http_500", method="POST", path="/v2/orders", apply=True)

    with pytest.raises(BrokerOutcomeUnknown):
        broker.submit_order(market_buy("e500-2"))

    assert broker.get_order_by_client_id("e500-2") is not None


@pytest.mark.parametrize("created", [False, True], ids=["not-created", "created-anyway"])
def test_submit_when_gateway_answers_html_504_then_outcome_unknown_without_crash_and_sent_once(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer, created: bool
) -> None:
    fake_alpaca.set_fault("http_504", method="POST", path="/v2/orders", apply=created)
    started = time.monotonic()

    with pytest.raises(BrokerOutcomeUnknown) as raised:
        broker.submit_order(market_buy("gw-1"))

    assert raised.value.status == 504
    assert "<html" not in raised.value.message
    # alpaca-py would have resent this POST three times, sleeping 3 s each time.
    assert len(fake_alpaca.requests_to("POST", "/v2/orders")) == 1
    assert time.monotonic() - started < PROMPT_S
    assert (broker.get_order_by_client_id("gw-1") is not None) is created


def test_submit_when_rate_limited_then_rate_limited_with_reset_time_and_sent_exactly_once(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> None:
    reset = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    fake_alpaca.set_fault("http_429", method="POST", path="/v2/orders", reset_at=int(reset.timestamp()))
    started = time.monotonic()

    with pytest.raises(BrokerRateLimited) as raised:
        broker.submit_order(market_buy("rl-1"))

    assert raised.value.reset_at == reset
    assert raised.value.status == 429
    assert isinstance(raised.value, BrokerOutcomeUnknown)  # the pipeline treats it as unknown (SPEC 3.2)
    assert fake_alpaca.submissions == {"rl-1": 1}  # alpaca-py's own 429 retry would have made it 4
    assert time.monotonic() - started < PROMPT_S  # ... after sleeping 3 s between them
    assert fake_alpaca.orders == []


def test_submit_when_broker_answers_after_the_timeout_then_outcome_unknown_after_about_the_timeout(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> None:
    fake_alpaca.set_fault("slow", method="POST", path="/v2/orders", seconds=5)
    started = time.monotonic()

    with pytest.raises(BrokerOutcomeUnknown) as raised:
        broker.submit_order(market_buy("slow-1"))

    elapsed = time.monotonic() - started
    assert TIMEOUT_S * 0.9 <= elapsed < 5  # gave up on its own timeout, not the fake's 5 s
    assert "no answer within 0.5s" in raised.value.message
    assert fake_alpaca.submissions == {"slow-1": 1}
    assert broker.get_order_by_client_id("slow-1") is not None  # the slow broker did act


def test_submit_when_connection_dropped_before_processing_then_outcome_unknown_and_nothing_created(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> None:
    # From the client's side this is indistinguishable from lose_response: the
    # request left and the connection closed without an answer. So it must be
    # "unknown" (look it up), never "unavailable" (safe to resend blindly).
    fake_alpaca.set_fault("drop_connection", method="POST", path="/v2/orders")

    with pytest.raises(BrokerOutcomeUnknown):
        broker.submit_order(market_buy("drop-1"))

    assert fake_alpaca.submissions == {"drop-1": 1}
    assert broker.get_order_by_client_id("drop-1") is None


def test_submit_when_nothing_listens_then_unavailable() -> None:
    broker = AlpacaBroker(
        api_key=DEFAULT_API_KEY,
        secret_key=DEFAULT_SECRET_KEY,
        base_url=f"http://127.0.0.1:{unused_port()}",
        timeout_s=TIMEOUT_S,
        retry_policy=FAST_RETRIES,
    )

    with pytest.raises(BrokerUnavailable):
        broker.submit_order(market_buy("nobody-1"))

    assert broker.counter.by_operation == {"submit_order": 1}  # a write is never retried


# --- submit: the broker says no ----------------------------------------------------------


def test_submit_when_client_order_id_reused_then_rejected_with_alpacas_duplicate_code(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> None:
    broker.submit_order(market_buy("dup-1"))

    with pytest.raises(BrokerRejected) as raised:
        broker.submit_order(market_buy("dup-1"))

    assert (raised.value.status, raised.value.code) == (422, 40010001)
    assert raised.value.message == "client_order_id must be unique"
    assert len(fake_alpaca.orders) == 1


@pytest.mark.parametrize(
    ("request_", "status", "code", "message"),
    [
        (market_buy("r-1", symbol="NOPE"), 422, 42210000, 'asset "NOPE" not found'),
        (market_buy("r-2", symbol="NOTRD"), 422, 42210000, "asset NOTRD is not tradable"),
        (market_buy("r-3", qty="0"), 422, 40010001, "qty must be > 0"),
        (market_buy("r-4", qty="-1"), 422, 40010001, "qty must be > 0"),
        (
            OrderRequest("r-5", "AAPL", Side.BUY, Decimal("1"), OrderType.LIMIT),
            422,
            40010001,
            "limit_price is required for limit orders",
        ),
        (market_buy("r-6", qty="1000"), 403, 40310000, "insufficient buying power"),  # 190k > 100k cash
    ],
    ids=["unknown-symbol", "untradable", "zero-qty", "negative-qty", "limit-without-price", "buying-power"],
)
def test_submit_when_broker_refuses_then_rejected_with_its_status_code_and_message(
    broker: AlpacaBroker,
    fake_alpaca: FakeAlpacaServer,
    request_: OrderRequest,
    status: int,
    code: int,
    message: str,
) -> None:
    with pytest.raises(BrokerRejected) as raised:
        broker.submit_order(request_)

    assert (raised.value.status, raised.value.code, raised.value.message) == (status, code, message)
    assert fake_alpaca.orders == []


def test_any_call_with_wrong_credentials_then_rejected_403(fake_alpaca: FakeAlpacaServer) -> None:
    broker = AlpacaBroker(
        api_key=DEFAULT_API_KEY, secret_key="not-the-secret", base_url=fake_alpaca.base_url, timeout_s=TIMEOUT_S
    )

    with pytest.raises(BrokerRejected) as raised:
        broker.get_account()

    assert raised.value.status == 403
    assert broker.counter.by_operation == {"get_account": 1}  # a refusal is not retried


# --- reads: bounded retries -----------------------------------------------------------------


def test_get_when_server_errors_twice_then_retried_and_succeeds(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> None:
    fake_alpaca.set_fault("http_500", method="GET", path="/v2/account", count=2)

    account = broker.get_account()

    assert account.equity == Decimal("100000")
    assert len(fake_alpaca.requests_to("GET", "/v2/account")) == 3
    assert broker.counter.by_operation == {"get_account": 3}


def test_get_when_server_keeps_failing_then_outcome_unknown_after_bounded_attempts(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> None:
    fake_alpaca.set_fault("http_504", method="GET", path="/v2/positions", count=100)

    with pytest.raises(BrokerOutcomeUnknown):
        broker.list_positions()

    assert len(fake_alpaca.requests_to("GET", "/v2/positions")) == FAST_RETRIES.get_attempts


def test_get_when_connection_lost_then_retried_and_succeeds(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> None:
    fake_alpaca.set_fault("lose_response", method="GET", path="/v2/clock")
    fake_alpaca.set_fault("drop_connection", method="GET", path="/v2/clock")

    clock = broker.get_clock()

    assert clock.timestamp.tzinfo == dt.UTC
    assert len(fake_alpaca.requests_to("GET", "/v2/clock")) == 3


def test_get_when_rate_limited_briefly_then_waits_for_the_reset_before_retrying(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> None:
    reset_at = int(time.time()) + 1
    fake_alpaca.set_fault("http_429", method="GET", path="/v2/account", reset_at=reset_at)

    broker.get_account()

    first, second = fake_alpaca.requests_to("GET", "/v2/account")
    assert (first.status, second.status) == (429, 200)
    assert second.at >= reset_at - 0.01  # not resent before X-Ratelimit-Reset


def test_get_when_rate_limited_for_longer_than_the_policy_waits_then_rate_limited_at_once(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> None:
    fake_alpaca.set_fault("http_429", method="GET", path="/v2/account", reset_in_s=60)
    started = time.monotonic()

    with pytest.raises(BrokerRateLimited) as raised:
        broker.get_account()

    assert time.monotonic() - started < PROMPT_S
    assert raised.value.reset_at is not None
    assert raised.value.reset_at > dt.datetime.now(dt.UTC) + dt.timedelta(seconds=50)
    assert len(fake_alpaca.requests_to("GET", "/v2/account")) == 1


def test_get_when_too_slow_then_outcome_unknown_without_retrying(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> None:
    fake_alpaca.set_fault("slow", method="GET", path="/v2/account", seconds=3)

    with pytest.raises(BrokerOutcomeUnknown):
        broker.get_account()

    assert len(fake_alpaca.requests_to("GET", "/v2/account")) == 1


def test_get_when_nothing_listens_then_unavailable_after_bounded_attempts() -> None:
    broker = AlpacaBroker(
        api_key=DEFAULT_API_KEY,
        secret_key=DEFAULT_SECRET_KEY,
        base_url=f"http://127.0.0.1:{unused_port()}",
        timeout_s=TIMEOUT_S,
        retry_policy=FAST_RETRIES,
    )

    with pytest.raises(BrokerUnavailable):
        broker.get_clock()

    assert broker.counter.by_operation == {"get_clock": FAST_RETRIES.get_attempts}


# --- single orders ---------------------------------------------------------------------------


def test_get_order_returns_the_brokers_view(broker: AlpacaBroker) -> None:
    submitted = broker.submit_order(limit_order("one-1"))

    assert broker.get_order(submitted.broker_order_id) == submitted


@pytest.mark.parametrize("order_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_get_order_when_broker_has_no_such_order_then_order_not_found(broker: AlpacaBroker, order_id: str) -> None:
    with pytest.raises(OrderNotFound):
        broker.get_order(order_id)


def test_get_order_by_client_id_when_never_seen_then_none(broker: AlpacaBroker) -> None:
    assert broker.get_order_by_client_id("never-sent") is None


# --- listing orders ------------------------------------------------------------------------------


def test_iter_orders_with_more_than_a_page_then_every_order_once_in_three_calls(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> None:
    fake_alpaca.configure(cash="1000000000")
    for n in range(1203):
        fake_alpaca.place_order(symbol="AAPL", qty="1", type="limit", limit_price="1", client_order_id=f"open-{n}")

    orders = list(broker.iter_orders(status="open"))

    assert [o.client_order_id for o in orders] == [f"open-{n}" for n in range(1203)]
    assert broker.counter.by_operation == {"list_orders": 3}
    lists = fake_alpaca.requests_to("GET", "/v2/orders")
    assert len(lists) == 3
    assert {(r.query["limit"], r.query["direction"], r.query["status"]) for r in lists} == {("500", "asc", "open")}


def test_iter_orders_when_orders_share_timestamps_across_a_page_boundary_then_none_skipped(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> None:
    # Groups of three orders submitted in the same nanosecond: with page size 10
    # every page boundary cuts a group, which a plain "after = last timestamp"
    # cursor would skip the rest of.
    start_ns = time.time_ns()
    for n in range(31):
        fake_alpaca.configure(frozen_ns=start_ns + (n // 3) * 1000)
        fake_alpaca.place_order(symbol="AAPL", qty="1", type="limit", limit_price="1", client_order_id=f"tie-{n}")

    orders = list(broker.iter_orders(status="open", page_size=10))

    assert sorted(o.client_order_id for o in orders) == sorted(f"tie-{n}" for n in range(31))
    assert len(orders) == 31


def test_iter_orders_when_more_orders_than_a_page_share_one_timestamp_then_stops_and_logs(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer, caplog: pytest.LogCaptureFixture
) -> None:
    fake_alpaca.configure(frozen_ns=time.time_ns())
    for n in range(7):
        fake_alpaca.place_order(symbol="AAPL", qty="1", type="limit", limit_price="1", client_order_id=f"same-{n}")

    with caplog.at_level(logging.ERROR, logger="brokers.alpaca"):
        orders = list(broker.iter_orders(status="open", page_size=5))

    assert len({o.broker_order_id for o in orders}) == len(orders) == 5
    assert "share submitted_at" in caplog.text


def test_iter_orders_closed_after_a_time_lists_only_orders_submitted_after_it(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> None:
    early = broker.submit_order(market_buy("early-1", qty="1"))
    assert early.submitted_at is not None
    cutoff = early.submitted_at + dt.timedelta(microseconds=1)
    later = broker.submit_order(market_buy("later-1", qty="1"))
    broker.submit_order(limit_order("resting-1"))

    closed = list(broker.iter_orders(status="closed", after=cutoff))

    assert [o.client_order_id for o in closed] == [later.client_order_id]


def test_iter_orders_refuses_pages_larger_than_alpaca_serves(broker: AlpacaBroker) -> None:
    with pytest.raises(ValueError):
        list(broker.iter_orders(status="open", page_size=501))
    with pytest.raises(ValueError):
        list(broker.iter_orders(status="all"))


def test_iter_orders_skips_orders_this_system_cannot_have_sent(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> None:
    ours = fake_alpaca.place_order(symbol="AAPL", qty="1", type="limit", limit_price="1", client_order_id="ours")
    foreign = fake_alpaca.place_order(symbol="AAPL", qty="1", type="limit", limit_price="1", client_order_id="ui")
    with fake_alpaca.venue.lock:  # as if placed in Alpaca's dashboard: a trailing stop
        fake_alpaca.venue.orders[foreign["id"]].type = "trailing_stop"

    orders = list(broker.iter_orders(status="open"))

    assert [o.broker_order_id for o in orders] == [ours["id"]]
    with pytest.raises(BrokerError, match="trailing_stop") as raised:
        broker.get_order(foreign["id"])
    assert not isinstance(raised.value, BrokerOutcomeUnknown)


# --- cancelling ------------------------------------------------------------------------------------


def test_cancel_order_when_working_then_canceled_at_the_broker(broker: AlpacaBroker) -> None:
    working = broker.submit_order(limit_order("cx-1"))

    broker.cancel_order(working.broker_order_id)

    assert broker.get_order(working.broker_order_id).status == "canceled"


def test_cancel_order_when_already_filled_then_rejected_422(broker: AlpacaBroker) -> None:
    filled = broker.submit_order(market_buy("cx-2", qty="1"))

    with pytest.raises(BrokerRejected) as raised:
        broker.cancel_order(filled.broker_order_id)

    assert raised.value.status == 422
    assert "filled" in raised.value.message


def test_cancel_order_when_broker_has_no_such_order_then_order_not_found(broker: AlpacaBroker) -> None:
    with pytest.raises(OrderNotFound):
        broker.cancel_order(str(uuid.uuid4()))


def test_cancel_order_when_answer_lost_then_outcome_unknown_and_not_resent(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> None:
    working = broker.submit_order(limit_order("cx-3"))
    fake_alpaca.set_fault("lose_response", method="DELETE", path="/v2/orders/*")

    with pytest.raises(BrokerOutcomeUnknown):
        broker.cancel_order(working.broker_order_id)

    assert len(fake_alpaca.requests_to("DELETE", f"/v2/orders/{working.broker_order_id}")) == 1
    assert broker.get_order(working.broker_order_id).status == "canceled"


def test_cancel_all_orders_cancels_every_working_order_in_one_call(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> None:
    working = [broker.submit_order(limit_order(f"ca-{n}")) for n in range(3)]
    broker.submit_order(market_buy("ca-filled", qty="1"))

    results = broker.cancel_all_orders()

    assert sorted((r.broker_order_id, r.status) for r in results) == sorted((o.broker_order_id, 200) for o in working)
    assert broker.counter.by_operation["cancel_all_orders"] == 1
    assert list(broker.iter_orders(status="open")) == []


# --- positions and account ---------------------------------------------------------------------


def test_list_positions_follow_partial_fills_with_signed_decimal_quantities(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> None:
    fake_alpaca.configure(fill_mode="manual")
    buy = broker.submit_order(market_buy("pos-1", qty="10"))
    fake_alpaca.fill(buy.broker_order_id, qty="4", price="100")
    fake_alpaca.fill(buy.broker_order_id, qty="6", price="110")
    short = broker.submit_order(OrderRequest("pos-2", "MSFT", Side.SELL, Decimal("3"), OrderType.MARKET))
    fake_alpaca.step()

    positions = {p.symbol: p for p in broker.list_positions()}
    buy_now = broker.get_order(buy.broker_order_id)

    assert (buy_now.status, buy_now.filled_qty, buy_now.filled_avg_price) == ("filled", Decimal("10"), Decimal("106"))
    assert positions["AAPL"].qty == Decimal("10")
    assert positions["AAPL"].avg_entry_price == Decimal("106")
    assert positions["AAPL"].market_value == Decimal("1900")
    assert positions["MSFT"].qty == Decimal("-3")
    assert broker.get_order(short.broker_order_id).status == "filled"


def test_close_all_positions_cancels_orders_and_flattens_in_one_call(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> None:
    broker.submit_order(market_buy("flat-1", qty="2"))
    broker.submit_order(OrderRequest("flat-2", "MSFT", Side.SELL, Decimal("1"), OrderType.MARKET))
    broker.submit_order(limit_order("flat-3"))

    broker.close_all_positions()

    assert broker.counter.by_operation["close_all_positions"] == 1
    assert len(fake_alpaca.requests_to("DELETE", "/v2/positions")) == 1
    assert broker.list_positions() == []
    assert list(broker.iter_orders(status="open")) == []


def test_close_all_positions_when_one_cannot_be_closed_then_rejected_naming_it(
    broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer
) -> None:
    broker.submit_order(market_buy("halt-1", symbol="TSLA", qty="1"))
    broker.submit_order(market_buy("halt-2", symbol="AAPL", qty="1"))
    fake_alpaca.add_asset("TSLA", tradable=False)  # halted after we bought it

    with pytest.raises(BrokerRejected) as raised:
        broker.close_all_positions()

    assert "TSLA" in raised.value.message and "AAPL" not in raised.value.message
    assert [p.symbol for p in broker.list_positions()] == ["TSLA"]


def test_get_account_returns_money_as_decimals(broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer) -> None:
    fake_alpaca.configure(cash="12345.67", last_equity="12000.01")

    account = broker.get_account()

    assert account.cash == Decimal("12345.67")
    assert account.equity == Decimal("12345.67")
    assert account.last_equity == Decimal("12000.01")
    assert account.buying_power == Decimal("12345.67")
    assert account.status == "ACTIVE"
    assert all(isinstance(v, Decimal) for v in (account.cash, account.equity, account.last_equity))


def test_get_clock_converts_eastern_times_to_aware_utc(broker: AlpacaBroker, fake_alpaca: FakeAlpacaServer) -> None:
    # Wednesday 2025-06-25 14:15 New York (EDT, UTC-4).
    fake_alpaca.configure(frozen_ns=int(dt.datetime(2025, 6, 25, 18, 15, tzinfo=dt.UTC).timestamp()) * 10**9)

    clock = broker.get_clock()

    assert clock.is_open is True
    assert clock.timestamp == dt.datetime(2025, 6, 25, 18, 15, tzinfo=dt.UTC)
    assert clock.next_close == dt.datetime(2025, 6, 25, 20, 0, tzinfo=dt.UTC)
    assert clock.next_open == dt.datetime(2025, 6, 26, 13, 30, tzinfo=dt.UTC)


def test_get_asset_tells_tradable_untradable_and_unknown_apart(broker: AlpacaBroker) -> None:
    aapl = broker.get_asset("AAPL")

    assert aapl is not None and aapl.tradable and aapl.name == "Apple Inc. Common Stock"
    notrd = broker.get_asset("NOTRD")
    assert notrd is not None and notrd.tradable is False
    assert broker.get_asset("NOSUCH") is None
    assert broker.get_asset("../account") is None  # never pasted into a URL path


# --- market data ---------------------------------------------------------------------------------


def test_latest_trades_returns_exact_prices_with_times_in_one_call(
    market_data: AlpacaMarketData, fake_alpaca: FakeAlpacaServer
) -> None:
    traded_at = dt.datetime(2025, 6, 25, 18, 15, 1, 123456, tzinfo=dt.UTC)
    fake_alpaca.set_price("AAPL", "123.45", at_ns=int(traded_at.timestamp()) * 10**9 + 123456789)

    trades = market_data.latest_trades(["AAPL", "MSFT", "UNKNOWN"])

    assert set(trades) == {"AAPL", "MSFT"}
    assert trades["AAPL"].price == Decimal("123.45")
    assert trades["AAPL"].at == traded_at
    assert market_data.latest_trade("UNKNOWN") is None
    assert market_data.counter.by_operation == {"latest_trades": 2}
    assert fake_alpaca.requests_to("GET", "/v2/stocks/trades/latest")[0].query["symbols"] == "AAPL,MSFT,UNKNOWN"


def test_latest_trades_for_no_symbols_makes_no_call(market_data: AlpacaMarketData) -> None:
    assert market_data.latest_trades([]) == {}
    assert market_data.counter.calls == 0


def test_latest_trades_when_server_errors_once_then_retried(
    market_data: AlpacaMarketData, fake_alpaca: FakeAlpacaServer
) -> None:
    fake_alpaca.set_fault("http_500", method="GET", path="/v2/stocks/trades/latest")

    assert market_data.latest_trade("AAPL") is not None
    assert market_data.counter.by_operation == {"latest_trades": 2}


# --- secrets and settings -----------------------------------------------------------------------


def test_secrets_never_appear_in_any_failure(fake_alpaca: FakeAlpacaServer) -> None:
    broker = AlpacaBroker(
        api_key=DEFAULT_API_KEY,
        secret_key=DEFAULT_SECRET_KEY,
        base_url=fake_alpaca.base_url,
        timeout_s=TIMEOUT_S,
        retry_policy=RetryPolicy(get_attempts=1),
    )
    wrong_secret = AlpacaBroker(
        api_key=DEFAULT_API_KEY, secret_key="wrong-" + DEFAULT_SECRET_KEY, base_url=fake_alpaca.base_url
    )
    nobody = AlpacaBroker(
        api_key=DEFAULT_API_KEY, secret_key=DEFAULT_SECRET_KEY, base_url=f"http://127.0.0.1:{unused_port()}"
    )
    failures: list[BrokerError] = []
    for kind in ("lose_response", "http_500", "http_504", "http_429", "slow", "drop_connection"):
        fake_alpaca.set_fault(kind, method="POST", path="/v2/orders", seconds=2)
        with pytest.raises(BrokerError) as raised:
            broker.submit_order(market_buy(f"s-{kind}"))
        failures.append(raised.value)
    for call in (
        lambda: broker.submit_order(market_buy("s-lose_response")),
        wrong_secret.get_account,
        nobody.get_clock,
    ):
        with pytest.raises(BrokerError) as raised:
            call()
        failures.append(raised.value)

    assert len(failures) == 9
    for failure in failures:
        told = str(failure) + repr(failure) + "".join(traceback.format_exception(failure))
        assert DEFAULT_API_KEY not in told
        assert DEFAULT_SECRET_KEY not in told


def test_from_settings_builds_clients_from_the_alpaca_settings(fake_alpaca: FakeAlpacaServer) -> None:
    with override_settings(
        ALPACA_API_KEY=DEFAULT_API_KEY,
        ALPACA_SECRET_KEY=DEFAULT_SECRET_KEY,
        ALPACA_BASE_URL=fake_alpaca.base_url,
        ALPACA_DATA_URL=fake_alpaca.base_url,
        ALPACA_TIMEOUT_S=0.75,
        TRADING_MODE="paper",
    ):
        broker = AlpacaBroker.from_settings()
        market_data = AlpacaMarketData.from_settings()

    assert (broker.name, broker.mode) == ("alpaca", "paper")
    assert market_data.latest_trade("AAPL") is not None
    fake_alpaca.set_fault("slow", method="GET", path="/v2/clock", seconds=3)
    started = time.monotonic()
    with pytest.raises(BrokerOutcomeUnknown, match=r"no answer within 0\.75s"):
        broker.get_clock()
    assert time.monotonic() - started < 3
