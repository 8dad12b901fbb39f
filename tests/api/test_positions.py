"""GET /v1/positions: each position valued at the last price; flat ones only on request."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.models import Position
from risk.models import Strategy
from risk.services import equity_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def book(alice, bob, market):
    """Equity $100,000; alpha long 10 AAPL @ 90 (last 100), short 2 MSFT @ 410 (last 400), flat SPY; beta 1 NVDA."""
    equity_record(equity=Decimal("100000"), day_start_equity=Decimal("100000"), job="test")
    alpha, beta = Strategy.objects.get(slug="alpha"), Strategy.objects.get(slug="beta")
    Position.objects.create(strategy=alpha, symbol="AAPL", qty=Decimal("10"), avg_price=Decimal("90"))
    Position.objects.create(strategy=alpha, symbol="MSFT", qty=Decimal("-2"), avg_price=Decimal("410"))
    Position.objects.create(
        strategy=alpha, symbol="SPY", qty=Decimal("0"), avg_price=Decimal("0"), realized_pnl=Decimal("12.50")
    )
    Position.objects.create(strategy=beta, symbol="NVDA", qty=Decimal("1"), avg_price=Decimal("100"))


def _by_symbol(response) -> dict[str, dict]:
    assert response.status_code == 200, response.content
    return {p["symbol"]: p for p in response.json()["results"]}


def test_each_open_position_carries_last_price_market_value_unrealised_pnl_and_share_of_equity(alice_api, book):
    positions = _by_symbol(alice_api.get("/v1/positions"))

    assert set(positions) == {"AAPL", "MSFT"}  # flat SPY left out, beta's NVDA not alice's
    aapl, msft = positions["AAPL"], positions["MSFT"]
    assert (aapl["last_price"], aapl["market_value"], aapl["unrealized_pnl"], aapl["pct_of_equity"]) == (
        "100.00000000", "1000.00", "100.00", "1.0000"
    )
    # Short: the value is negative, and the price falling below the entry is a gain.
    assert (msft["last_price"], msft["market_value"], msft["unrealized_pnl"], msft["pct_of_equity"]) == (
        "400.00000000", "-800.00", "20.00", "-0.8000"
    )


def test_flat_positions_are_listed_with_include_flat(alice_api, book):
    positions = _by_symbol(alice_api.get("/v1/positions", {"include_flat": "true"}))

    assert set(positions) == {"AAPL", "MSFT", "SPY"}
    assert positions["SPY"]["realized_pnl"] == "12.50"
    assert positions["SPY"]["market_value"] == "0.00"


def test_a_position_without_a_price_is_listed_with_null_values(alice_api, book, monkeypatch):
    from brokers.exceptions import BrokerError
    from brokers.registry import get_market_data

    def unavailable(symbols):
        raise BrokerError("market data down")

    monkeypatch.setattr(get_market_data(), "latest_trades", unavailable)

    aapl = _by_symbol(alice_api.get("/v1/positions"))["AAPL"]

    assert aapl["qty"] == "10.00000000"
    assert (aapl["last_price"], aapl["market_value"], aapl["unrealized_pnl"], aapl["pct_of_equity"]) == (
        None, None, None, None
    )


@pytest.mark.parametrize("query", [{"include_flat": "maybe"}, {"flat": "true"}])
def test_a_bad_parameter_is_a_400_problem(alice_api, book, query):
    response = alice_api.get("/v1/positions", query)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
