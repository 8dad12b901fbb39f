"""Flatten from the broker's truth, one flatten per symbol at a time (SPEC 3.4, 4.4; adr/0011).

Reproduction of issue #10: with KILL_SWITCH_FLATTEN=true two activations
close together sent 14 flatten orders for 7 positions and flipped the book
short. Here repeated and overlapping activations (real threads on PostgreSQL)
never send more than flat, no position crosses zero because of flatten (a
flatten that filled before the sync saw it, a client order that filled
before its cancel landed, a process killed after the flatten's commit), and
while the switch is active each sync cycle gives a position that is not flat
and has no flatten working a new one.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.db import connection

from orders import services
from orders.models import Order, OrderOrigin, Position
from orders.states import WORKING
from risk.models import Alert, Strategy
from risk.services import killswitch_activate
from tests.conftest import order_body
from tests.fake_alpaca.server import FakeAlpacaServer
from tests.intent import alpaca, killed_right_after_the_commit, sync_cycles  # noqa: F401  (fixture)

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


def test_a_flatten_filled_at_the_broker_before_the_sync_saw_it_is_not_reversed(
    flattening: FakeAlpacaServer, officer, bob_api
):
    """Seen in the chaos run ("flatten sell 6 AAPL: position 0 -> -6"): the first flatten filled at
    the broker, the back office still had it working, and a repeated activation sized a second
    flatten from the broker's now-flat position plus the first as if still to fill, for a strategy
    on the other side of the symbol."""
    response = bob_api.post("/v1/orders", order_body(strategy="beta", symbol="AAPL", side="sell", qty="10"),
                            format="json")
    assert response.status_code == 201, response.content
    flattening.step()
    services.orders_sync()  # the account holds 4 AAPL: alpha long 10, beta short 6
    assert broker_positions(flattening)["AAPL"] == Decimal(4)

    killswitch_activate(acting_user=officer, reason="first")
    assert flatten_working(flattening)["AAPL"] == Decimal(-4)
    flattening.step()  # the flatten orders fill; no sync has recorded it
    assert broker_positions(flattening) == {}

    killswitch_activate(acting_user=officer, reason="again, before the sync")
    assert flatten_working(flattening) == {}, "a second flatten was sent"
    sync_cycles(2)

    assert broker_positions(flattening) == {}, "a second flatten reopened a position"
    assert Order.objects.filter(origin=OrderOrigin.FLATTEN, symbol="AAPL").count() == 1


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

    # Every symbol has its flatten working; one activation may have taken a symbol's first
    # strategy, and the symbol then waits for that flatten to be done (never two at once).
    never_more_than_flat(flattening)
    assert set(flatten_working(flattening)) == {"AAPL", "MSFT", "SPY"}
    for _ in range(3):
        flattening.step()
        sync_cycles(2)
        never_more_than_flat(flattening)
    assert broker_positions(flattening) == {}
    assert all(p.qty == 0 for p in Position.objects.all())
    sent = [o for o in flattening.orders if o["client_order_id"].startswith("flatten-")]
    assert sum(Decimal(o["qty"]) for o in sent) == Decimal(19), "more than flat was sent, in all"


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


def resting_sell(api, client_order_id: str, qty: str, symbol: str = "AAPL") -> None:
    """A client order working at the broker: a sell limit above the price (fills when told)."""
    response = api.post("/v1/orders", order_body(client_order_id=client_order_id, symbol=symbol, side="sell",
                                                 qty=qty, type="limit", limit_price="101"), format="json")
    assert response.status_code == 201 and response.json()["status"] == "submitted", response.content


def test_a_client_order_that_fills_before_its_cancel_lands_never_lets_flatten_cross_zero(
    flattening: FakeAlpacaServer, officer, alice_api
):
    """Issue #10 (seen in the chaos run: "flatten buy 21 TSLA: position -19 -> 2").

    alpha's sell of 4 AAPL is working when the global switch activates with
    flatten on; the cancel-all is answered 504, and the sell fills before the
    cancel lands. The flatten was planned as if it would: it sells 10 (14
    held less the 4 that may still sell), never 14.
    """
    resting_sell(alice_api, "alpha-sell-4", "4")
    flattening.set_fault("http_504", method="DELETE", path="/v2/orders", count=1)

    killswitch_activate(acting_user=officer, reason="market event")

    assert flatten_working(flattening)["AAPL"] == Decimal(-10)
    never_more_than_flat(flattening)
    flattening.fill(client_order_id="alpha-sell-4")  # the client order wins the race with its cancel
    never_more_than_flat(flattening)
    flattening.step()
    sync_cycles(2)

    assert broker_positions(flattening) == {}, "flatten left or crossed a position"
    assert {(p.strategy.slug, p.symbol): p.qty for p in Position.objects.exclude(qty=0)} == {}
    assert Order.objects.filter(origin=OrderOrigin.FLATTEN, symbol="AAPL").count() == 2  # alpha 6, beta 4


def test_a_client_order_cancelled_after_the_first_flatten_is_flattened_by_a_later_cycle(
    flattening: FakeAlpacaServer, officer, alice_api
):
    """The 4 held back for the working sell are closed once its cancel is confirmed."""
    resting_sell(alice_api, "alpha-sell-4", "4")
    flattening.set_fault("http_504", method="DELETE", path="/v2/orders", count=1)

    killswitch_activate(acting_user=officer, reason="market event")
    assert flatten_working(flattening)["AAPL"] == Decimal(-10)
    flattening.step()  # the flatten orders fill; the client sell rests
    assert broker_positions(flattening)["AAPL"] == Decimal(4)

    sync_cycles(3)  # the cancel-all is sent again and lands; the next plan sells the 4
    flattening.step()
    sync_cycles(1)

    assert Order.objects.get(client_order_id="alpha-sell-4").status == "cancelled"
    assert broker_positions(flattening) == {}
    assert all(p.qty == 0 for p in Position.objects.all())


@pytest.mark.postgres
def test_a_flatten_committed_just_before_the_process_died_is_resolved_and_never_doubled(
    flattening: FakeAlpacaServer, tmp_path, settings
):
    """SIGKILL while the first flatten order's send waits on the broker: the flatten orders are
    committed as pending. Until the sync has settled them by client_order_id (absent past the
    horizon: closed as never received) they count as in flight, so nothing is flattened twice;
    then the switch, still active, flattens again: flat at the broker, never past it."""
    settings.UNKNOWN_ORDER_HORIZON_S = 2
    output = killed_right_after_the_commit(flattening, """
        from risk.services import killswitch_activate
        killswitch_activate(acting_user=None, reason="crash drill")
    """, method="POST", path="/v2/orders", log_dir=tmp_path)
    stranded = Order.objects.filter(origin=OrderOrigin.FLATTEN, status__in=WORKING)
    assert stranded.count() == 4 and set(stranded.values_list("status", flat=True)) == {"pending"}, output

    sync_cycles(2)  # within the horizon: still in flight, nothing sent in their place
    assert stranded.count() == 4
    assert not [o for o in flattening.orders if o["client_order_id"].startswith("flatten-")]
    deadline = time.monotonic() + 30
    while Order.objects.filter(origin=OrderOrigin.FLATTEN, status="pending").exists():
        assert time.monotonic() < deadline, "the stranded flatten orders were never settled"
        sync_cycles(1)
    sync_cycles(1)
    never_more_than_flat(flattening)
    flattening.step()
    sync_cycles(1)

    assert broker_positions(flattening) == {}
    assert all(p.qty == 0 for p in Position.objects.all())
    sent = [o for o in flattening.orders if o["client_order_id"].startswith("flatten-")]
    assert sorted(Decimal(o["qty"]) for o in sent) == [Decimal(2), Decimal(3), Decimal(4), Decimal(10)]


POSITIONS_FAULTS = [
    ("http_500", {}),
    ("http_504", {}),
    ("http_429", {"reset_in_s": 1}),
    ("stall", {"seconds": 1.5}),  # a timeout
    ("drop_connection", {}),
]


@pytest.mark.parametrize(("kind", "options"), POSITIONS_FAULTS, ids=[kind for kind, _ in POSITIONS_FAULTS])
def test_a_flatten_whose_position_read_failed_sends_nothing_then_flattens_once_the_broker_answers(
    flattening: FakeAlpacaServer, officer, kind, options
):
    """The plan needs the broker's positions: without them nothing is guessed from the ledger, the
    failure is alerted, and once the broker answers again the next cycle flattens once."""
    flattening.set_fault(kind, method="GET", path="/v2/positions", count=10, **options)  # and the retries

    killswitch_activate(acting_user=officer, reason="halt")

    assert not Order.objects.filter(origin=OrderOrigin.FLATTEN).exists()
    assert flatten_working(flattening) == {}
    assert "positions unavailable" in Alert.objects.filter(key="kill_switch_cancel_failed:global").get().message
    flattening.clear_faults()
    if kind == "http_429":
        time.sleep(1.1)  # the reset the 429 named
    sync_cycles(2)
    assert flatten_working(flattening) == {"AAPL": Decimal(-14), "MSFT": Decimal(-3), "SPY": Decimal(-2)}
    flattening.step()
    sync_cycles(1)
    assert broker_positions(flattening) == {}
    assert Order.objects.filter(origin=OrderOrigin.FLATTEN).count() == 4
