"""Stop and stop-limit orders (issue 17, part 1): validated, checked at their stop/limit price, worked at the broker.

Broker-facing scenarios run against the fake Alpaca through alpaca-py (manual fills: an
order works until the price crosses and the venue steps); the simulated broker is
checked on its own at the end.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from brokers import simulated
from brokers.models import SimOrder
from orders import services
from orders.models import Order, Position
from risk.services import killswitch_activate
from tests.admin.conftest import logged_in
from tests.conftest import order_body
from tests.fake_alpaca.server import FakeAlpacaServer
from tests.intent import alpaca, broker_status, sync_cycles  # noqa: F401  (alpaca: fixture)

pytestmark = pytest.mark.django_db


def place(api, client_order_id: str, **fields) -> dict:
    response = api.post("/v1/orders", order_body(client_order_id=client_order_id, **fields), format="json")
    assert response.status_code == 201, response.content
    return response.json()


def long_aapl(api, fake: FakeAlpacaServer, qty: str = "10") -> None:
    """A filled buy: alpha holds ``qty`` AAPL at $100 in the ledger and at the broker."""
    place(api, "entry", qty=qty)
    fake.fill(client_order_id="entry", price="100")
    services.orders_sync()
    assert Position.objects.get(symbol="AAPL").qty == Decimal(qty)


def trade_at(fake: FakeAlpacaServer, price: str) -> None:
    """The market trades at ``price``, the fake venue works its orders, and a status sync reads them back."""
    fake.set_price("AAPL", price)
    fake.step()
    services.orders_sync()


def test_a_sell_stop_works_at_the_broker_until_the_price_falls_through_it_then_closes_the_position(
    alpaca: FakeAlpacaServer, alice_api  # noqa: F811
):
    long_aapl(alice_api, alpaca)

    order = place(alice_api, "protect", side="sell", type="stop", stop_price="95")

    assert (order["status"], order["type"], order["stop_price"]) == ("submitted", "stop", "95.00000000")
    at_broker = alpaca.order(client_order_id="protect")
    assert (at_broker["type"], at_broker["stop_price"], at_broker["status"]) == ("stop", "95", "new")
    trade_at(alpaca, "95.50")
    assert Order.objects.get(client_order_id="protect").status == "submitted"

    trade_at(alpaca, "94.80")

    stop = Order.objects.get(client_order_id="protect")
    assert (stop.status, stop.filled_qty, stop.filled_avg_price) == ("filled", Decimal("10"), Decimal("94.8"))
    assert Position.objects.get(symbol="AAPL").qty == 0


def test_a_buy_stop_limit_triggers_at_its_stop_and_fills_only_within_its_limit(
    alpaca: FakeAlpacaServer, alice_api  # noqa: F811
):
    place(alice_api, "breakout", type="stop_limit", stop_price="102", limit_price="103")

    trade_at(alpaca, "104")  # through the stop, above the limit: triggered, not filled
    assert Order.objects.get(client_order_id="breakout").status == "submitted"

    trade_at(alpaca, "102.50")
    order = Order.objects.get(client_order_id="breakout")
    assert (order.status, order.filled_avg_price) == ("filled", Decimal("102.5"))
    assert Position.objects.get(symbol="AAPL").qty == Decimal("10")


def test_a_stop_is_checked_at_its_stop_price_not_the_last_trade(alpaca: FakeAlpacaServer, alice_api):  # noqa: F811
    # 240 shares: $24,000 at the last trade ($100), but $25,080 at the $104.50 stop: above the $25,000 cap.
    response = alice_api.post(
        "/v1/orders", order_body(type="stop", stop_price="104.50", qty="240"), format="json"
    )

    assert response.status_code == 400
    assert {v["code"] for v in response.json()["violations"]} >= {"max_notional"}
    assert not alpaca.orders


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"type": "stop", "stop_price": "120"}, "price_deviation"),  # 20 % from the last trade
        ({"type": "stop_limit", "stop_price": "101", "limit_price": "130"}, "price_deviation"),
        ({"type": "stop", "stop_price": "99"}, "stop_price_wrong_side"),  # a buy stop below the price
        ({"type": "stop", "stop_price": "101", "side": "sell"}, "stop_price_wrong_side"),
    ],
    ids=["stop outside the collar", "limit outside the collar", "buy stop below", "sell stop above"],
)
def test_a_stop_outside_the_collar_or_on_the_wrong_side_is_denied_and_never_sent(
    alpaca: FakeAlpacaServer, alice_api, fields, code  # noqa: F811
):
    response = alice_api.post("/v1/orders", order_body(**fields), format="json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert code in {v["code"] for v in response.json()["violations"]}
    assert not alpaca.orders


def test_a_working_stop_is_cancelled_at_the_broker(alpaca: FakeAlpacaServer, alice_api):  # noqa: F811
    order = place(alice_api, "stop-cancel", type="stop", stop_price="104")

    answer = alice_api.delete(f"/v1/orders/{order['id']}")

    assert answer.status_code == 202
    sync_cycles(1)
    assert broker_status(alpaca, "stop-cancel") == "canceled"
    assert Order.objects.get(client_order_id="stop-cancel").status == "cancelled"


@pytest.mark.django_db(transaction=True)  # the activation's cancels run after a real commit
def test_the_global_kill_switch_leaves_no_stop_working(alpaca: FakeAlpacaServer, alice_api, officer):  # noqa: F811
    place(alice_api, "stop-ks", type="stop", stop_price="104")
    place(alice_api, "stop-limit-ks", type="stop_limit", stop_price="104", limit_price="104.5")

    killswitch_activate(acting_user=officer, reason="desk says stop")
    sync_cycles(2)

    assert {broker_status(alpaca, c) for c in ("stop-ks", "stop-limit-ks")} == {"canceled"}
    assert set(Order.objects.values_list("status", flat=True)) == {"cancelled"}


def test_a_replayed_stop_order_is_the_same_order_and_another_stop_price_is_a_conflict(
    alpaca: FakeAlpacaServer, alice_api  # noqa: F811
):
    first = place(alice_api, "stop-replay", type="stop", stop_price="104")
    again = alice_api.post(
        "/v1/orders", order_body(client_order_id="stop-replay", type="stop", stop_price="104.000"), format="json"
    )
    other = alice_api.post(
        "/v1/orders", order_body(client_order_id="stop-replay", type="stop", stop_price="104.5"), format="json"
    )

    assert (again.status_code, again.json()["id"]) == (200, first["id"])
    assert other.status_code == 409
    assert alpaca.submissions == {"stop-replay": 1}


def test_the_schema_documents_the_stop_types_and_stop_price(alice_api):
    schema = alice_api.get("/v1/schema").json()
    components = schema["components"]["schemas"]
    body = schema["paths"]["/v1/orders"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    order_in = components[body["$ref"].rsplit("/", 1)[-1]]["properties"]

    assert "stop_price" in order_in
    assert "stop_price" in components["OrderOut"]["properties"]
    type_enum = components[order_in["type"]["$ref"].rsplit("/", 1)[-1]]["enum"]
    assert {"stop", "stop_limit"} <= set(type_enum)


def test_the_admin_shows_a_stops_prices(alpaca: FakeAlpacaServer, alice_api, officer):  # noqa: F811
    officer_client = logged_in(officer)
    order = place(alice_api, "stop-admin", type="stop_limit", stop_price="104", limit_price="104.5")

    listing = officer_client.get("/admin/orders/order/").content.decode()
    detail = officer_client.get(f"/admin/orders/order/{order['id']}/change/").content.decode()

    assert "Stop limit stop 104 limit 104.5" in listing
    assert "Stop price" in detail and "104" in detail


def test_the_simulated_broker_fills_a_stop_only_once_a_tick_reaches_it(alice_api, market):
    market.set_volatility(Decimal("0"))  # ticks leave prices where the test puts them
    place(alice_api, "sim-stop", type="stop", stop_price="102")

    market.tick()
    services.orders_sync()
    assert Order.objects.get(client_order_id="sim-stop").status == "submitted"

    market.set_price("AAPL", Decimal("102.40"))
    market.tick()
    services.orders_sync()

    order = Order.objects.get(client_order_id="sim-stop")
    assert (order.status, order.filled_avg_price) == ("filled", Decimal("102.4"))
    assert SimOrder.objects.get(client_order_id="sim-stop").stop_price == Decimal("102")


def test_the_simulated_broker_refuses_a_stop_without_its_stop_price():
    from brokers import types as bt
    from brokers.exceptions import BrokerRejected

    with pytest.raises(BrokerRejected, match="stop_price"):
        simulated.SimulatedBroker().submit_order(
            bt.OrderRequest(client_order_id="x", symbol="AAPL", side=bt.Side.BUY, qty=Decimal("1"),
                            type=bt.OrderType.STOP)
        )
