"""Broker lookups caused by client input are answered from the shared cache, "not tradable" included.

A client repeating an untradable or unknown symbol must not spend the
account's broker rate limit (which the kill switch's cancels need): the
asset is looked up at the broker once, through the real Alpaca adapter
against the fake Alpaca, whatever the number of orders naming it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from brokers import registry
from orders.models import Order
from tests.conftest import order_body, set_throttle_rates
from tests.fake_alpaca import DEFAULT_API_KEY, DEFAULT_SECRET_KEY, FakeAlpacaServer

pytestmark = [pytest.mark.django_db, pytest.mark.redis]


@pytest.fixture
def alpaca(settings) -> Iterator[FakeAlpacaServer]:
    with FakeAlpacaServer(seed=12, api_key=DEFAULT_API_KEY, secret_key=DEFAULT_SECRET_KEY) as fake:
        settings.BROKER = "alpaca"
        settings.ALPACA_API_KEY, settings.ALPACA_SECRET_KEY = DEFAULT_API_KEY, DEFAULT_SECRET_KEY
        settings.ALPACA_BASE_URL = settings.ALPACA_DATA_URL = fake.base_url
        registry.reset()
        fake.set_price("AAPL", "100.00")
        fake.configure(market_open=True)  # whatever the hour: market_closed is not under test
        yield fake
        registry.reset()


@pytest.mark.parametrize("symbol", ["NOTRD", "NOSUCH"], ids=["untradable", "unknown"])
def test_repeating_a_symbol_the_broker_refuses_costs_one_lookup(alpaca, alice_api, bob_api, symbol):
    answers = [alice_api.post("/v1/orders", order_body(symbol=symbol), format="json") for _ in range(5)]
    answers.append(bob_api.post("/v1/orders", order_body(strategy="beta", symbol=symbol), format="json"))

    assert [a.status_code for a in answers] == [400] * 6
    assert all("not a tradable asset" in a.json()["detail"] for a in answers)
    assert len(alpaca.requests_to("GET", f"/v2/assets/{symbol}")) == 1
    assert Order.objects.count() == 0


def test_a_tradable_symbol_is_looked_up_once_too(alpaca, alice_api):
    for n in range(3):
        alice_api.post("/v1/orders", order_body(client_order_id=f"aapl-{n}", type="limit", limit_price="90"),
                       format="json")

    assert len(alpaca.requests_to("GET", "/v2/assets/AAPL")) == 1


def test_a_client_inventing_symbols_spends_its_own_lookup_budget_not_the_accounts(
    settings, alpaca, alice_api, bob_api
):
    set_throttle_rates(settings, client_asset_lookups="3/min")
    alice_api.post("/v1/orders", order_body(client_order_id="known", type="limit", limit_price="90"), format="json")

    invented = [alice_api.post("/v1/orders", order_body(symbol=f"ZZ{n}"), format="json") for n in range(6)]

    # "known" (AAPL) spent one lookup; two more new symbols are asked about, the rest refused unasked.
    assert [a.status_code for a in invented] == [400, 400, 429, 429, 429, 429]
    refused = invented[-1]
    assert refused["Content-Type"] == "application/problem+json" and int(refused["Retry-After"]) >= 1
    assert sum(len(alpaca.requests_to("GET", f"/v2/assets/ZZ{n}")) for n in range(6)) == 2
    assert Order.objects.count() == 1
    # A symbol already looked up still reaches the pre-trade check (and is stored); no new lookup.
    again = alice_api.post("/v1/orders", order_body(client_order_id="again", type="limit", limit_price="90"),
                           format="json")
    assert again.status_code in {201, 400} and Order.objects.count() == 2, again.content
    assert len(alpaca.requests_to("GET", "/v2/assets/AAPL")) == 1
    # Another client's budget is its own.
    bobs = bob_api.post("/v1/orders", order_body(strategy="beta", symbol="ZZ9"), format="json")
    assert bobs.status_code == 400 and "not a tradable asset" in bobs.json()["detail"]
