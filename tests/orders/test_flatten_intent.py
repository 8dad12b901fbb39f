"""Flatten from the broker's truth, net of the flatten orders already working (SPEC 3.4, 4.4; adr/0011).

Reproduction of issue #10: with KILL_SWITCH_FLATTEN=true two activations
close together sent 14 flatten orders for 7 positions and flipped the book
short. Here repeated and overlapping activations (real threads on PostgreSQL)
never send more than flat, no position crosses zero because of flatten, and
while the switch is active each sync cycle gives a position that is not flat
and has no flatten in flight a new one.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection

from orders import services
from orders.models import Order, OrderOrigin, Position
from orders.states import WORKING
from risk.models import Strategy
from risk.services import killswitch_activate
from tests.conftest import order_body
from tests.fake_alpaca.server import FakeAlpacaServer
from tests.intent import alpaca, sync_cycles  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db(transaction=True)
HOLDINGS = {("alpha", "AAPL"): "10", ("alpha", "MSFT"): "3", ("beta", "AAPL"): "4", ("beta", "SPY"): "2"}


@pytest.fixture
def flattening(settings, alpaca: FakeAlpacaServer, alice_api, bob_api) -> FakeAlpacaServer:  # noqa: F811
    """Long positions at the broker and in the ledger; flatten on; flatten orders stay working until a step."""
    for (strategy, symbol), qty in HOLDINGS.items():
        api = alice_api if strategy == "alpha" else bob_api
        response = api.post("/v1/orders", order_body(strategy=strategy, symbol=symbol, qty=qty), format="json")
        assert response.status_code == 201, response.content
    alpaca.step()
    services.orders_sync()
    assert {(p.strategy.slug, p.symbol): p.qty for p in Position.objects.all()} == {
        key: Decimal(qty) for key, qty in HOLDINGS.items()
    }
    settings.KILL_SWITCH_FLATTEN = True
    return alpaca


def broker_positions(fake: FakeAlpacaServer) -> dict[str, Decimal]:
    return {p["symbol"]: Decimal(p["qty"]) for p in fake.positions}


def flatten_working(fake: FakeAlpacaServer) -> dict[str, Decimal]:
    """Signed quantity of the flatten orders working at the broker, per symbol."""
    ours = set(Order.objects.filter(origin=OrderOrigin.FLATTEN).values_list("client_order_id", flat=True))
    totals: dict[str, Decimal] = {}
    for order in fake.orders:
        if order["client_order_id"] in ours and order["status"] in {"new", "accepted", "partially_filled"}:
            remaining = Decimal(order["qty"]) - Decimal(order["filled_qty"])
            signed = -remaining if order["side"] == "sell" else remaining
            totals[order["symbol"]] = totals.get(order["symbol"], Decimal(0)) + signed
    return totals


def never_more_than_flat(fake: FakeAlpacaServer) -> None:
    positions, working = broker_positions(fake), flatten_working(fake)
    for symbol, in_flight in working.items():
        held = positions.get(symbol, Decimal(0))
        assert abs(in_flight) <= abs(held) and in_flight * held <= 0, (symbol, held, in_flight)


def test_a_second_activation_sends_no_second_flatten(flattening: FakeAlpacaServer, officer):
    killswitch_activate(acting_user=officer, reason="first")
    killswitch_activate(acting_user=officer, reason="again")

    assert flatten_working(flattening) == {"AAPL": Decimal(-14), "MSFT": Decimal(-3), "SPY": Decimal(-2)}
    flattening.step()
    sync_cycles(2)
    assert broker_positions(flattening) == {}
    assert {p.qty for p in Position.objects.all()} == {Decimal(0)}


@pytest.mark.postgres
def test_overlapping_activations_on_threads_never_send_more_than_flat(
    flattening: FakeAlpacaServer, officer, alpha, beta
):
    """Global and strategy activations at once, twice each, plus a sync cycle, on real threads."""
    start = threading.Barrier(5)
    errors: list[BaseException] = []

    def run(action) -> None:
        try:
            start.wait(timeout=10)
            action()
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)
        finally:
            connection.close()

    actions = [
        lambda: killswitch_activate(acting_user=officer, reason="global A"),
        lambda: killswitch_activate(acting_user=officer, reason="global B"),
        lambda: killswitch_activate(acting_user=officer, strategy=Strategy.objects.get(pk=alpha.pk), reason="alpha"),
        lambda: killswitch_activate(acting_user=officer, strategy=Strategy.objects.get(pk=beta.pk), reason="beta"),
        lambda: services.orders_sync(),
    ]
    threads = [threading.Thread(target=run, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors

    never_more_than_flat(flattening)
    assert flatten_working(flattening) == {"AAPL": Decimal(-14), "MSFT": Decimal(-3), "SPY": Decimal(-2)}
    flattening.step()
    sync_cycles(2)
    assert broker_positions(flattening) == {}
    assert all(p.qty == 0 for p in Position.objects.all())


def test_flatten_follows_the_broker_when_it_holds_less_than_the_ledger(flattening: FakeAlpacaServer, officer):
    # 6 AAPL sold at the broker outside the back office: the broker holds 8, the ledger 14.
    flattening.place_order(symbol="AAPL", qty="6", side="sell", client_order_id="dashboard-sell")
    flattening.step()

    killswitch_activate(acting_user=officer, reason="halt")

    assert flatten_working(flattening)["AAPL"] == Decimal(-8)
    flattening.step()
    assert "AAPL" not in broker_positions(flattening), "flatten crossed zero at the broker"


def test_each_cycle_flattens_a_position_whose_flatten_is_gone(flattening: FakeAlpacaServer, officer):
    killswitch_activate(acting_user=officer, reason="halt")
    spy = Order.objects.get(origin=OrderOrigin.FLATTEN, symbol="SPY")
    flattening.venue.cancel(spy.broker_order_id)  # cancelled at the broker, e.g. on its dashboard

    sync_cycles(2)

    assert Order.objects.get(pk=spy.pk).status == "cancelled"
    assert flatten_working(flattening)["SPY"] == Decimal(-2)
    assert Order.objects.filter(origin=OrderOrigin.FLATTEN, symbol="SPY", status__in=WORKING).count() == 1
    flattening.step()
    sync_cycles(1)
    assert broker_positions(flattening) == {}
