"""When the broker fails, the API answers with a documented status, never a 5xx of its own making.

SPEC §5: "never a 500". SPEC §5.1: an ambiguous failure of the send itself
still answers 201 with the order `unknown`. Everything else the API asks the
broker (is the symbol tradable, the last price, the account, the clock) can
fail too; the fake Alpaca fails each of those calls in each way.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from brokers import registry
from orders.models import Order
from tests.conftest import order_body, token_client
from tests.fake_alpaca import DEFAULT_API_KEY, DEFAULT_SECRET_KEY, FakeAlpacaServer

pytestmark = pytest.mark.django_db

BROKER_CALLS = ["/v2/assets/*", "/v2/stocks/trades/latest", "/v2/account", "/v2/orders", "/v2/orders/*", "/v2/clock"]
FAULTS = ["http_500", "http_429", "drop_connection"]


@pytest.fixture
def alpaca(settings) -> Iterator[FakeAlpacaServer]:
    with FakeAlpacaServer(seed=11, api_key=DEFAULT_API_KEY, secret_key=DEFAULT_SECRET_KEY) as fake:
        settings.BROKER = "alpaca"
        settings.ALPACA_API_KEY, settings.ALPACA_SECRET_KEY = DEFAULT_API_KEY, DEFAULT_SECRET_KEY
        settings.ALPACA_BASE_URL = settings.ALPACA_DATA_URL = fake.base_url
        settings.ALPACA_TIMEOUT_S = 0.5
        fake.configure(market_open=True)  # whatever the hour: this test is about failures, not the clock
        registry.reset()
        for symbol, price in (("AAPL", "100.00"), ("MSFT", "400.00")):
            fake.set_price(symbol, price)
        yield fake
        registry.reset()


def _tour(api, working_order_id) -> dict[str, int]:
    """Each endpoint's status; a documented 503 (problem+json with Retry-After, nothing stored) counts as handled."""
    responses = {
        "POST /v1/orders": api.post("/v1/orders", order_body(symbol="MSFT"), format="json"),
        "GET /v1/health": api.get("/v1/health"),
        "GET /v1/risk": api.get("/v1/risk"),
        "GET /v1/positions": api.get("/v1/positions"),
        "DELETE /v1/orders/{id}": api.delete(f"/v1/orders/{working_order_id}"),
    }

    def handled(response) -> bool:
        return (response.status_code == 503 and response.has_header("Retry-After")
                and response["Content-Type"] == "application/problem+json")

    return {name: (0 if handled(r) else r.status_code) for name, r in responses.items()}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("call", BROKER_CALLS)
def test_a_failing_broker_call_never_becomes_a_server_error(alpaca, alice, fault, call) -> None:
    api = token_client(alice)
    api.raise_request_exception = False
    working = api.post("/v1/orders", order_body(type="limit", limit_price="97"), format="json")
    assert working.status_code == 201, working.content
    alpaca.set_fault(fault, path=call, count=1000)

    answers = _tour(api, working.json()["id"])

    assert {name: code for name, code in answers.items() if code >= 500} == {}


def test_credentials_the_broker_refuses_never_become_a_server_error(settings, alpaca, alice) -> None:
    api = token_client(alice)
    api.raise_request_exception = False
    working = api.post("/v1/orders", order_body(type="limit", limit_price="97"), format="json")
    orders_before = Order.objects.count()
    settings.ALPACA_API_KEY, settings.ALPACA_SECRET_KEY = "PKREVOKED00000000000", "revoked-secret"
    registry.reset()

    answers = _tour(api, working.json()["id"])

    assert {name: code for name, code in answers.items() if code >= 500} == {}
    assert Order.objects.count() <= orders_before + 1
