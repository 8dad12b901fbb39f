"""A stop_loss that protects (issue 17, part 2): the entry goes to the broker as oto (bracket with a take_profit),
its legs are orders of ours, moved by the sync, cancelled by the kill switch, and cancelled before a flatten.

The broker is the fake Alpaca through alpaca-py (manual fills: an order works until the venue steps
or a test fills it); the simulated broker's legs are checked at the end.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders import services
from orders.models import Order, Position
from risk.models import Alert
from risk.services import killswitch_activate
from tests.conftest import order_body
from tests.fake_alpaca.server import FakeAlpacaServer
from tests.intent import (
    alpaca,  # noqa: F401  (fixture)
    broker_status,
    killed_right_after_the_commit,
    open_at_broker,
    sync_cycles,
)

pytestmark = pytest.mark.django_db

SEND = "/v2/orders"


def protected_buy(api, client_order_id: str = "entry", **fields) -> dict:
    body = order_body(client_order_id=client_order_id, stop_loss="95", **fields)
    response = api.post("/v1/orders", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def legs_of(api, order_id: str) -> list[dict]:
    return api.get(f"/v1/orders/{order_id}").json()["legs"]


def test_an_entry_with_a_stop_loss_fills_and_its_stop_works_at_the_broker_then_closes_the_position(
    alpaca: FakeAlpacaServer, alice_api  # noqa: F811
):
    entry = protected_buy(alice_api)

    sent = [r for r in alpaca.requests if r.method == "POST" and r.path == SEND]
    assert len(sent) == 1
    at_broker = alpaca.order(client_order_id="entry")
    assert at_broker["order_class"] == "oto"
    (leg,) = legs_of(alice_api, entry["id"])
    assert (leg["type"], leg["side"], leg["qty"], leg["stop_price"], leg["status"]) == (
        "stop", "sell", "10.00000000", "95.00000000", "submitted"
    )
    assert leg["parent"] == entry["id"] and leg["origin"] == "leg"
    assert leg["broker_order_id"] == at_broker["legs"][0]["id"]
    assert leg["client_order_id"] == at_broker["legs"][0]["client_order_id"]

    alpaca.fill(client_order_id="entry", price="100")
    services.orders_sync()
    assert broker_status(alpaca, leg["client_order_id"]) == "new"  # held until the entry filled, working now
    assert Position.objects.get(symbol="AAPL").qty == Decimal("10")

    alpaca.set_price("AAPL", "94.90")
    alpaca.step()
    services.orders_sync()

    (leg,) = legs_of(alice_api, entry["id"])
    assert (leg["status"], leg["filled_avg_price"]) == ("filled", "94.90000000")
    assert Position.objects.get(symbol="AAPL").qty == 0
    stop = Order.objects.get(pk=leg["id"])
    assert [(t.from_status, t.to_status) for t in stop.transitions.all()] == [
        ("", "pending"), ("pending", "submitted"), ("submitted", "filled")
    ]
    assert "stop-loss leg of entry (oto)" in stop.transitions.first().reason


def test_a_bracket_takes_profit_and_its_stop_is_cancelled_by_the_broker(
    alpaca: FakeAlpacaServer, alice_api  # noqa: F811
):
    entry = protected_buy(alice_api, take_profit="104")
    assert alpaca.order(client_order_id="entry")["order_class"] == "bracket"
    alpaca.fill(client_order_id="entry", price="100")

    alpaca.set_price("AAPL", "104.20")
    alpaca.step()
    services.orders_sync()

    legs = {leg["type"]: leg for leg in legs_of(alice_api, entry["id"])}
    assert (legs["limit"]["status"], legs["limit"]["limit_price"]) == ("filled", "104.00000000")
    assert legs["stop"]["status"] == "cancelled"
    assert Position.objects.get(symbol="AAPL").qty == 0
    assert not Alert.objects.filter(kind="stop_not_placed").exists()  # a cancelled sibling is no lost stop


def test_a_take_profit_without_a_stop_loss_or_an_ioc_entry_with_legs_is_a_400(alpaca, alice_api):  # noqa: F811
    for body in (order_body(take_profit="110"), order_body(stop_loss="95", time_in_force="ioc")):
        response = alice_api.post("/v1/orders", body, format="json")
        assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    assert not alpaca.orders


@pytest.mark.django_db(transaction=True)  # the activation's cancels run after a real commit
def test_the_global_kill_switch_leaves_no_leg_working(alpaca: FakeAlpacaServer, alice_api, officer):  # noqa: F811
    filled = protected_buy(alice_api, "filled-entry", take_profit="104")
    alpaca.fill(client_order_id="filled-entry", price="100")
    protected_buy(alice_api, "working-entry", type="limit", limit_price="99")
    services.orders_sync()
    assert len(open_at_broker(alpaca)) == 4  # two working legs, one held leg, one entry

    killswitch_activate(acting_user=officer, reason="desk says stop")
    sync_cycles(2)

    assert open_at_broker(alpaca) == []
    assert {leg["status"] for leg in legs_of(alice_api, filled["id"])} == {"cancelled"}
    assert not Order.objects.filter(status__in=["submitted", "partially_filled", "pending_cancel"]).exists()


@pytest.mark.django_db(transaction=True)
def test_a_strategy_kill_switch_cancels_its_legs_one_by_one(
    alpaca: FakeAlpacaServer, alice_api, bob_api, alpha, officer  # noqa: F811
):
    protected_buy(alice_api, "alpha-entry")
    alpaca.fill(client_order_id="alpha-entry", price="100")
    other = bob_api.post("/v1/orders", order_body(client_order_id="beta-entry", strategy="beta", stop_loss="95"),
                         format="json")
    assert other.status_code == 201
    services.orders_sync()

    killswitch_activate(acting_user=officer, strategy=alpha, reason="runaway strategy")
    sync_cycles(2)

    alpha_legs = list(Order.objects.filter(parent__client_order_id="alpha-entry"))
    assert [leg.status for leg in alpha_legs] == ["cancelled"]
    assert broker_status(alpaca, alpha_legs[0].client_order_id) == "canceled"
    assert not any(r.method == "DELETE" and r.path == SEND for r in alpaca.requests), "no cancel-all for a strategy"
    beta_leg = Order.objects.get(parent__client_order_id="beta-entry")
    assert beta_leg.status == "submitted" and broker_status(alpaca, beta_leg.client_order_id) == "held"


@pytest.mark.django_db(transaction=True)
def test_a_kill_switch_flatten_cancels_the_stop_before_closing_and_never_crosses_zero(
    alpaca: FakeAlpacaServer, alice_api, officer, settings  # noqa: F811
):
    settings.KILL_SWITCH_FLATTEN = True
    protected_buy(alice_api)
    alpaca.fill(client_order_id="entry", price="100")
    services.orders_sync()
    leg = Order.objects.get(parent__client_order_id="entry")

    killswitch_activate(acting_user=officer, reason="flatten everything")
    # The stop was working when the flatten was planned: it may still sell, so nothing closes yet.
    assert not Order.objects.filter(origin="flatten").exists()
    sync_cycles(2)  # the stop's cancel is confirmed; then the flatten closes the position

    flatten = Order.objects.get(origin="flatten")
    assert (flatten.side, flatten.qty) == ("sell", Decimal("10"))
    alpaca.set_price("AAPL", "90")  # through the old stop: nothing may fire now
    alpaca.step()
    sync_cycles(1)
    leg.refresh_from_db()
    assert leg.status == "cancelled" and broker_status(alpaca, leg.client_order_id) == "canceled"
    assert Position.objects.get(symbol="AAPL").qty == 0
    assert alpaca.positions == []


def test_a_flatten_cancels_a_positions_stop_first_and_closes_it_once(
    alpaca: FakeAlpacaServer, alice_api, alpha  # noqa: F811
):
    protected_buy(alice_api)
    alpaca.fill(client_order_id="entry", price="100")
    services.orders_sync()

    (flatten,) = services.positions_flatten(strategy_id=alpha.pk, label="officer")

    leg = Order.objects.get(parent__client_order_id="entry")
    assert leg.status == "cancelled" and broker_status(alpaca, leg.client_order_id) == "canceled"
    assert (flatten.side, flatten.qty) == ("sell", Decimal("10"))
    alpaca.step()
    services.orders_sync()
    assert Position.objects.get(symbol="AAPL").qty == 0 and alpaca.positions == []


def test_a_flatten_whose_stop_cancel_failed_sends_nothing_for_that_position(
    alpaca: FakeAlpacaServer, alice_api, alpha  # noqa: F811
):
    protected_buy(alice_api)
    alpaca.fill(client_order_id="entry", price="100")
    services.orders_sync()
    alpaca.set_fault("http_500", method="DELETE", path="/v2/orders/*", count=1)

    assert services.positions_flatten(strategy_id=alpha.pk, label="officer") == []

    leg = Order.objects.get(parent__client_order_id="entry")
    assert leg.status == "pending_cancel"  # the sync drives it; the next flatten closes the position


def test_a_stop_leg_the_broker_ends_while_the_position_is_open_raises_an_alert(
    alpaca: FakeAlpacaServer, alice_api  # noqa: F811
):
    protected_buy(alice_api)
    alpaca.fill(client_order_id="entry", price="100")
    services.orders_sync()
    leg = Order.objects.get(parent__client_order_id="entry")

    alpaca.expire(client_order_id=leg.client_order_id)
    services.orders_sync()

    alert = Alert.objects.get(kind="stop_not_placed")
    assert alert.level == "critical" and "entry" in alert.message and "unprotected" in alert.message


SEND_FAULTS = [
    ("http_500", {}),
    ("http_504", {}),
    ("http_500", {"apply": True}),  # the broker acted, then failed the answer
    ("http_429", {"reset_in_s": 1}),
    ("stall", {"seconds": 1.5}),  # a timeout: the gateway never passed the order on
    ("slow", {"seconds": 1.5}),  # a timeout: the broker took the order, the answer came too late
    ("drop_connection", {}),
    ("lose_response", {}),
]


@pytest.mark.parametrize(
    ("kind", "options"), SEND_FAULTS, ids=[k + ("-applied" if o.get("apply") else "") for k, o in SEND_FAULTS]
)
def test_an_entry_with_legs_whose_send_failed_is_resolved_with_its_legs_and_never_sent_twice(
    alpaca: FakeAlpacaServer, alice_api, kind, options, settings  # noqa: F811
):
    settings.UNKNOWN_ORDER_HORIZON_S = 2
    alpaca.set_fault(kind, method="POST", path=SEND, count=1, **options)

    response = alice_api.post("/v1/orders", order_body(client_order_id="e-fault", stop_loss="95",
                                                       take_profit="104"), format="json")

    assert response.status_code == 201 and response.json()["status"] == "unknown", response.content
    reached = alpaca.order(client_order_id="e-fault") is not None
    sync_cycles(1)
    if not reached:
        import time

        time.sleep(2.1)  # past the horizon: closed as never received, not resent
        sync_cycles(1)
    entry = Order.objects.get(client_order_id="e-fault")
    assert alpaca.submissions["e-fault"] == 1
    if reached:
        assert entry.status == "submitted"
        legs = sorted(entry.legs.values_list("type", "status", "broker_order_id"))
        at_broker = {leg["id"] for leg in alpaca.order(client_order_id="e-fault")["legs"]}
        assert [(t, s) for t, s, _ in legs] == [("limit", "submitted"), ("stop", "submitted")]
        assert {b for _, _, b in legs} == at_broker
    else:
        assert entry.status == "rejected" and not entry.legs.exists()


def test_the_simulated_broker_holds_the_stop_until_the_entry_fills_then_works_it(alice_api, market):
    market.set_volatility(Decimal("0"))
    entry = protected_buy(alice_api, "sim-entry", take_profit="104")
    legs = {leg["type"]: leg for leg in legs_of(alice_api, entry["id"])}
    assert set(legs) == {"stop", "limit"} and {leg["status"] for leg in legs.values()} == {"submitted"}

    market.tick()  # the entry fills at $100; its legs go to work
    services.orders_sync()
    market.set_price("AAPL", Decimal("94.50"))
    market.tick()
    services.orders_sync()

    legs = {leg["type"]: leg for leg in legs_of(alice_api, entry["id"])}
    assert (legs["stop"]["status"], legs["stop"]["filled_avg_price"]) == ("filled", "94.50000000")
    assert legs["limit"]["status"] == "cancelled"
    assert Position.objects.get(symbol="AAPL").qty == 0


@pytest.mark.postgres  # the killed process works on the test database: a server, not a file
@pytest.mark.django_db(transaction=True)
def test_an_entry_with_legs_sent_by_a_process_that_died_is_resolved_with_its_legs(
    alpaca: FakeAlpacaServer, alice_api, alpha, settings, tmp_path  # noqa: F811
):
    # The process is killed while its send is held at the gateway, unprocessed; then the venue gets the
    # entry by another way (as a gateway that passed it on late would): the sync finds it and its legs.
    output = killed_right_after_the_commit(alpaca, """
        from decimal import Decimal
        from orders import services
        from risk.models import Strategy
        from django.contrib.auth import get_user_model
        services.order_submit(acting_user=get_user_model().objects.get(username="alice"), request=services.OrderRequest(
            strategy=Strategy.objects.get(slug="alpha"), symbol="AAPL", side="buy", qty=Decimal("10"), type="market",
            stop_loss=Decimal("95"), client_order_id="e-crash"))
    """, method="POST", path=SEND, log_dir=tmp_path)

    entry = Order.objects.get(client_order_id="e-crash")
    assert entry.status == "pending", output
    alpaca.place_order(client_order_id="e-crash", symbol="AAPL", qty="10", side="buy", order_class="oto",
                       stop_loss={"stop_price": "95"})  # as if the held request reached the venue after all
    sync_cycles(1)

    entry.refresh_from_db()
    assert entry.status == "submitted"
    (leg,) = entry.legs.all()
    assert (leg.type, leg.stop_price, leg.status) == ("stop", Decimal("95"), "submitted")
    assert alpaca.submissions["e-crash"] == 1


def test_the_risk_picture_counts_a_position_to_its_placed_stop_and_at_the_assumed_distance_once_it_is_gone(
    alpaca: FakeAlpacaServer, alice_api, officer  # noqa: F811
):
    from tests.conftest import token_client

    response = alice_api.post("/v1/orders", order_body(client_order_id="entry", stop_loss="99"), format="json")
    assert response.status_code == 201, response.content
    alpaca.fill(client_order_id="entry", price="100")
    services.orders_sync()
    officer_api = token_client(officer)

    def risk_per_trade() -> str:
        limits = {item["name"]: item for item in officer_api.get("/v1/risk").json()["limits"]}
        return limits["max_risk_per_trade"]["current"]

    # 10 shares marked at $100 with the stop at $99: $10 of $100,000 equity.
    assert risk_per_trade() == "0.01"
    leg = Order.objects.get(parent__client_order_id="entry")
    alpaca.expire(client_order_id=leg.client_order_id)
    services.orders_sync()
    # The stop is gone: the assumed 5 % of $1,000 = $50.
    assert risk_per_trade() == "0.05"
