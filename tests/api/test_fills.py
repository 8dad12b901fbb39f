"""GET /v1/fills: the caller's fills, newest first, cursor pages, filters."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders import services
from orders.models import Fill, Order
from tests.conftest import order_body, token_client

pytestmark = pytest.mark.django_db


def _filled(api, market, **fields) -> str:
    response = api.post("/v1/orders", order_body(**fields), format="json")
    assert response.status_code == 201, response.content
    market.tick()
    services.orders_sync()
    return response.json()["id"]


@pytest.fixture
def book(alice_api, bob_api, market):
    """Alice: AAPL then MSFT fills in alpha; Bob: one AAPL fill in beta."""
    market.set_volatility(Decimal("0"))
    aapl = _filled(alice_api, market, client_order_id="a-aapl", qty="5")
    msft = _filled(alice_api, market, client_order_id="a-msft", symbol="MSFT", qty="2")
    _filled(bob_api, market, strategy="beta", client_order_id="b-aapl", qty="7")
    return {"aapl": aapl, "msft": msft}


def test_a_client_lists_its_own_fills_newest_first_with_every_field(alice_api, book):
    response = alice_api.get("/v1/fills")

    assert response.status_code == 200
    results = response.json()["results"]
    assert [f["client_order_id"] for f in results] == ["a-msft", "a-aapl"]
    newest = results[0]
    fill = Fill.objects.get(order__client_order_id="a-msft")
    assert newest == {
        "id": fill.pk,
        "order_id": book["msft"],
        "client_order_id": "a-msft",
        "strategy": "alpha",
        "symbol": "MSFT",
        "side": "buy",
        "qty": "2.00000000",
        "price": f"{fill.price:.8f}",
        "at": newest["at"],
    }


def test_a_client_never_sees_another_clients_fills_even_by_filtering_for_them(alice_api, book):
    assert alice_api.get("/v1/fills", {"strategy": "beta"}).json()["results"] == []
    assert {f["strategy"] for f in alice_api.get("/v1/fills").json()["results"]} == {"alpha"}


def test_an_officer_sees_every_strategys_fills(officer, book):
    api = token_client(officer)

    assert {f["strategy"] for f in api.get("/v1/fills").json()["results"]} == {"alpha", "beta"}


def test_fills_filter_by_symbol_order_and_time(alice_api, book):
    by_symbol = alice_api.get("/v1/fills", {"symbol": "AAPL"}).json()["results"]
    by_order = alice_api.get("/v1/fills", {"order": book["msft"]}).json()["results"]
    msft_at = Fill.objects.get(order__client_order_id="a-msft").at.isoformat()
    after = alice_api.get("/v1/fills", {"after": msft_at}).json()["results"]
    before = alice_api.get("/v1/fills", {"before": msft_at}).json()["results"]

    assert [f["client_order_id"] for f in by_symbol] == ["a-aapl"]
    assert [f["client_order_id"] for f in by_order] == ["a-msft"]
    assert after == []
    assert [f["client_order_id"] for f in before] == ["a-aapl"]


def test_following_next_links_yields_every_fill_once(alice_api, market):
    market.set_volatility(Decimal("0"))
    for n in range(5):
        _filled(alice_api, market, client_order_id=f"p-{n}", qty="1")
    seen: list[str] = []
    url: str | None = "/v1/fills?limit=2"
    pages = 0
    while url:
        body = alice_api.get(url).json()
        seen += [f["client_order_id"] for f in body["results"]]
        url = body["next"]
        pages += 1

    assert seen == [f"p-{n}" for n in reversed(range(5))]
    assert pages == 3


def test_a_partially_filled_order_lists_one_fill_per_increase(alice_api, market):
    market.set_volatility(Decimal("0"))
    market.set_max_fill_qty_per_tick(Decimal("4"))
    order_id = alice_api.post("/v1/orders", order_body(client_order_id="part", qty="10"), format="json").json()["id"]
    for _ in range(3):
        market.tick()
        services.orders_sync()

    fills = alice_api.get("/v1/fills", {"order": order_id}).json()["results"]

    assert [f["qty"] for f in fills] == ["2.00000000", "4.00000000", "4.00000000"]
    assert Order.objects.get(pk=order_id).status == "filled"


@pytest.mark.parametrize(
    "query",
    [{"order": "not-a-uuid"}, {"after": "yesterday"}, {"symbol": "aapl;drop"}, {"cursor": "garbage"}, {"limit": "0"},
     {"colour": "red"}],
)
def test_a_bad_filter_or_cursor_is_a_400_problem(alice_api, query):
    response = alice_api.get("/v1/fills", query)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"


def test_anonymous_gets_401(client, db):
    response = client.get("/v1/fills")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
