"""Exposure counts at a price, never at $0 (issue #10 item 4, SPEC 4.2/4.3).

Working market orders in symbols the account does not hold used to be valued
at nothing by the pre-trade check. The snapshot now prices every symbol with a
working order or a position in one market-data call, and a symbol without a
fresh price denies ``stale_price`` for anything that adds exposure.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from brokers.registry import get_market_data
from orders import services
from orders.models import Order
from risk.models import Strategy
from tests.conftest import order_body, utcnow

pytestmark = pytest.mark.django_db

FOUR_SYMBOLS = ("AAPL", "MSFT", "SPY", "NVDA")


@pytest.fixture
def hundred_dollar_market(market):
    """Four symbols at $100: 230 shares is a $23,000 order, under the $25,000 notional cap."""
    for symbol in FOUR_SYMBOLS:
        market.set_price(symbol, Decimal("100.00"))
    return market


def codes(response) -> list[str]:
    return [v["code"] for v in response.json().get("violations", [])]


def test_four_23k_market_buys_in_unheld_symbols_the_fourth_is_denied_max_capital_deployed(
    alice_api, hundred_dollar_market
):
    # $100,000 equity, 80 % capital limit: three $23k orders ($69k) fit, a fourth ($92k) does not.
    answers = [
        alice_api.post("/v1/orders", order_body(symbol=symbol, qty="230", client_order_id=f"big-{symbol}"),
                       format="json")
        for symbol in FOUR_SYMBOLS
    ]

    assert [a.status_code for a in answers] == [201, 201, 201, 400]
    assert [a.json()["status"] for a in answers[:3]] == ["submitted"] * 3  # working: nothing filled yet
    assert "max_capital_deployed" in codes(answers[3])
    deployed = next(v for v in answers[3].json()["violations"] if v["code"] == "max_capital_deployed")
    assert Decimal(deployed["actual"]) == Decimal("92.00")  # the working market orders at their last price


def test_one_market_data_call_prices_the_order_and_every_working_and_held_symbol(alice_api, hundred_dollar_market):
    for symbol in FOUR_SYMBOLS[:3]:
        alice_api.post("/v1/orders", order_body(symbol=symbol, qty="1"), format="json")
    market_data = get_market_data()
    calls_before = market_data.counter.calls

    alice_api.post("/v1/orders", order_body(symbol="NVDA", qty="1"), format="json")

    assert market_data.counter.calls - calls_before == 1


def test_a_working_market_order_without_a_fresh_price_denies_new_exposure_stale_price(
    alice_api, hundred_dollar_market
):
    assert alice_api.post("/v1/orders", order_body(symbol="MSFT", qty="10"), format="json").status_code == 201
    hundred_dollar_market.set_price("MSFT", Decimal("100.00"), at=utcnow() - dt.timedelta(hours=1))

    response = alice_api.post("/v1/orders", order_body(symbol="AAPL", qty="10", client_order_id="blind"),
                              format="json")

    assert response.status_code == 400
    stale = [v for v in response.json()["violations"] if v["code"] == "stale_price"]
    assert [v["actual"] for v in stale] == ["MSFT"]
    assert Order.objects.get(client_order_id="blind").status == "denied"


def test_a_reducing_order_passes_while_another_symbol_has_no_fresh_price(alice_api, hundred_dollar_market):
    alice_api.post("/v1/orders", order_body(symbol="AAPL", qty="10"), format="json")
    hundred_dollar_market.tick()
    services.orders_sync()
    hundred_dollar_market.set_price("AAPL", Decimal("100.00"))  # the tick moved it; fresh again
    alice_api.post("/v1/orders", order_body(symbol="MSFT", qty="10"), format="json")
    hundred_dollar_market.set_price("MSFT", Decimal("100.00"), at=utcnow() - dt.timedelta(hours=1))

    response = alice_api.post("/v1/orders", order_body(symbol="AAPL", side="sell", qty="5"), format="json")

    assert response.status_code == 201, response.content


def test_a_working_limit_order_without_a_fresh_price_counts_at_its_limit(alice_api, hundred_dollar_market):
    strategy = Strategy.objects.get(slug="alpha")
    Strategy.objects.filter(pk=strategy.pk).update(max_allocation_pct=Decimal("100"))
    limit = order_body(symbol="MSFT", qty="230", type="limit", limit_price="100.00")
    assert alice_api.post("/v1/orders", limit, format="json").status_code == 201
    hundred_dollar_market.set_price("MSFT", Decimal("100.00"), at=utcnow() - dt.timedelta(hours=1))

    response = alice_api.post("/v1/orders", order_body(symbol="AAPL", qty="230"), format="json")

    assert response.status_code == 201, response.content  # priced at its limit: $46k of $80k, no guess needed


def test_the_risk_picture_names_the_symbols_without_a_fresh_price(alice_api, officer, hundred_dollar_market):
    from tests.conftest import token_client

    alice_api.post("/v1/orders", order_body(symbol="MSFT", qty="10"), format="json")
    hundred_dollar_market.set_price("MSFT", Decimal("100.00"), at=utcnow() - dt.timedelta(hours=1))

    picture = token_client(officer).get("/v1/risk").json()

    assert picture["unpriced_symbols"] == ["MSFT"]
