"""The broker's late truth is adopted, never contradicted (issue #10 item 2, SPEC 3.2).

An ambiguous send is looked up by client_order_id every sync cycle until
UNKNOWN_ORDER_HORIZON_S; only then is "not found" final, and the order is
closed as never received. If the broker shows it after all (a listing, a
lookup, reconciliation's open listing), the local order takes the broker's
state through a correction edge, its fills go into the ledger, the change is
audited ("late truth: ...") and a CRITICAL alert says so.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from decimal import Decimal

import pytest
from django.utils import timezone

from brokers import registry
from brokers.models import SimOrder
from orders import services
from orders.models import Fill, Order, Position
from tests.conftest import order_body
from tests.fake_alpaca.fixtures import fake_alpaca  # noqa: F401  (fixture)
from tests.fake_alpaca.server import DEFAULT_API_KEY, DEFAULT_SECRET_KEY

pytestmark = pytest.mark.django_db

GATEWAY_DELAY_S = 2.0  # the 45 s slow gateway, scaled down with the timeout (0.5 s) and the grace (0 s)


@pytest.fixture
def alpaca(fake_alpaca, settings):  # noqa: F811
    settings.BROKER = "alpaca"
    settings.ALPACA_API_KEY, settings.ALPACA_SECRET_KEY = DEFAULT_API_KEY, DEFAULT_SECRET_KEY
    settings.ALPACA_BASE_URL = settings.ALPACA_DATA_URL = fake_alpaca.base_url
    settings.ALPACA_TIMEOUT_S = 0.5
    settings.UNKNOWN_ORDER_GRACE_S = 0  # looked up at the first sync: the grace lookup of the report
    settings.UNKNOWN_ORDER_HORIZON_S = 60
    registry.reset()
    fake_alpaca.set_price("AAPL", "100.00")
    fake_alpaca.configure(fill_mode="manual", market_open=True)  # whatever the hour: market_closed is not under test
    yield fake_alpaca
    registry.reset()


def _wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _late(order: Order) -> list[tuple[str, str, str]]:
    return [(t.from_status, t.to_status, t.reason) for t in order.transitions.filter(reason__startswith="late truth")]


def test_a_slow_gateway_accepting_after_the_grace_lookup_is_not_booked_rejected_and_its_fill_reaches_the_ledger(
    alpaca, alice_api
):
    alpaca.set_fault("slow_accept", method="POST", path="/v2/orders", seconds=GATEWAY_DELAY_S)

    answer = alice_api.post("/v1/orders", order_body(client_order_id="slow-gw", qty="3"), format="json")
    assert answer.json()["status"] == "unknown"  # the send itself timed out
    services.orders_sync()  # the grace lookup: the broker has nothing yet

    order = Order.objects.get(client_order_id="slow-gw")
    assert alpaca.order(client_order_id="slow-gw") is None
    assert order.status == "unknown", "booked terminal while the gateway could still accept it"

    _wait_until(lambda: alpaca.order(client_order_id="slow-gw") is not None)  # the gateway accepts, late
    alpaca.fill(client_order_id="slow-gw", price="101")
    services.orders_sync()
    services.orders_sync()

    order.refresh_from_db()
    assert order.status == "filled"
    assert order.broker_order_id == alpaca.order(client_order_id="slow-gw")["id"]
    assert alpaca.submissions["slow-gw"] == 1  # never resent
    position = Position.objects.get(strategy__slug="alpha", symbol="AAPL")
    assert (position.qty, position.avg_price) == (Decimal("3"), Decimal("101"))


def test_past_the_horizon_not_found_is_final_closed_as_never_received_and_not_resent(alpaca, alice_api, settings):
    settings.UNKNOWN_ORDER_HORIZON_S = 0
    alpaca.set_fault("drop_connection", method="POST", path="/v2/orders")
    alice_api.post("/v1/orders", order_body(client_order_id="gone"), format="json")

    services.orders_sync()

    order = Order.objects.get(client_order_id="gone")
    assert order.status == "rejected"
    assert order.never_received_at is not None
    assert "not resent" in order.reject_reason
    assert "gone" not in alpaca.submissions or alpaca.submissions["gone"] == 1


# --- Orders closed as never received, then shown by the broker (simulated broker) -----------------


def _closed_as_never_received(alpha, *, client_order_id: str, cancel_requested: bool = False, qty: str = "5") -> Order:
    """An ambiguous send of ten minutes ago, looked up past the horizon and not found: closed by the sync."""
    sent = timezone.now() - dt.timedelta(minutes=10)
    order = Order.objects.create(
        client_order_id=client_order_id, strategy=alpha, symbol="AAPL", side="buy", qty=Decimal(qty), type="market",
        fingerprint="x", status="pending_cancel" if cancel_requested else "unknown", created_at=sent, sent_at=sent,
    )
    services.orders_sync()
    order.refresh_from_db()
    assert order.status == ("cancelled" if cancel_requested else "rejected")
    assert order.never_received_at is not None
    return order


def _broker_accepts_late(order: Order, *, status: str, filled: str = "0", price: str | None = None) -> SimOrder:
    now = timezone.now()
    return SimOrder.objects.create(
        client_order_id=order.client_order_id, symbol=order.symbol, side=order.side, qty=order.qty, type="market",
        time_in_force="day", status=status, filled_qty=Decimal(filled),
        filled_avg_price=Decimal(price) if price else None, submitted_at=now, updated_at=now,
    )


def test_an_order_closed_as_never_received_that_shows_up_filled_is_corrected_ledger_included(
    alpha, market, caplog, django_capture_on_commit_callbacks
):
    order = _closed_as_never_received(alpha, client_order_id="late-fill")
    sim = _broker_accepts_late(order, status="filled", filled="5", price="100.5")

    with caplog.at_level(logging.CRITICAL, logger="risk.alerts"), django_capture_on_commit_callbacks(execute=True):
        services.orders_sync()

    order.refresh_from_db()
    assert order.status == "filled"
    assert order.broker_order_id == str(sim.broker_order_id)
    assert order.never_received_at is None  # adopted once; an ordinary order from now on
    assert list(Fill.objects.filter(order=order).values_list("qty", "price")) == [(Decimal("5"), Decimal("100.5"))]
    assert Position.objects.get(strategy=alpha, symbol="AAPL").qty == Decimal("5")
    ((source, target, reason),) = _late(order)
    assert (source, target) == ("rejected", "filled")
    assert "broker shows filled" in reason and "closed as never received" in reason
    alerts = [r.getMessage() for r in caplog.records if r.name == "risk.alerts" and r.levelno == logging.CRITICAL]
    assert any("Late truth" in message and "late-fill" in message for message in alerts)


def test_an_order_rejected_as_never_received_that_shows_up_working_is_working_again(alpha, market):
    order = _closed_as_never_received(alpha, client_order_id="late-new")
    _broker_accepts_late(order, status="new")

    services.orders_sync()

    order.refresh_from_db()
    assert order.status == "submitted"  # counts toward exposure again; the officer was alerted
    assert [(s, t) for s, t, _ in _late(order)] == [("rejected", "submitted")]


def test_an_order_cancelled_as_never_received_that_shows_up_working_is_cancelled_at_the_broker(
    alpha, market, django_capture_on_commit_callbacks
):
    order = _closed_as_never_received(alpha, client_order_id="late-cancel", cancel_requested=True)
    sim = _broker_accepts_late(order, status="new")

    with django_capture_on_commit_callbacks(execute=True):
        services.orders_sync()  # adopted: still meant to be cancelled, so pending_cancel, and the cancel goes out
    services.orders_sync()

    order.refresh_from_db()
    sim.refresh_from_db()
    assert sim.status == "canceled"
    assert order.status == "cancelled"
    assert [(s, t) for s, t, _ in _late(order)] == [("cancelled", "pending_cancel")]


def test_reconciliation_open_listing_adopts_an_order_closed_long_ago(alpha, market):
    order = _closed_as_never_received(alpha, client_order_id="late-old")
    Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - dt.timedelta(hours=3))  # out of the watch
    _broker_accepts_late(order, status="new")

    result = services.positions_reconcile()

    order.refresh_from_db()
    assert order.status == "submitted"
    assert result.run.unknown_broker_orders == []  # ours, adopted; not reported as a stranger


def test_a_lookup_that_shows_the_order_saves_its_broker_id_even_when_nothing_else_changes(alpha, alice, market):
    sent = timezone.now() - dt.timedelta(minutes=1)
    order = Order.objects.create(
        client_order_id="id-only", strategy=alpha, symbol="AAPL", side="buy", qty=Decimal("1"), type="limit",
        limit_price=Decimal("50"), fingerprint="x", status="unknown", created_at=sent, sent_at=sent,
    )
    services.order_cancel(acting_user=alice, order=order)  # no broker id: the cancel cannot go out yet
    sim = _broker_accepts_late(order, status="new")
    broker_order = registry.get_broker().get_order(str(sim.broker_order_id))

    services.order_apply_broker_update(broker_order=broker_order, label="test:stream")

    order.refresh_from_db()
    assert order.status == "pending_cancel"  # the broker saying "new" is no answer to the cancel yet
    assert order.broker_order_id == str(sim.broker_order_id)


def test_an_order_the_broker_itself_rejected_is_never_corrected(alpha, market):
    order = Order.objects.create(
        client_order_id="taken-elsewhere", strategy=alpha, symbol="AAPL", side="buy", qty=Decimal("1"), type="market",
        fingerprint="x", status="rejected", reject_reason="client_order_id must be unique",
    )
    _broker_accepts_late(order, status="filled", filled="1", price="100")  # someone else's order with this id

    services.positions_reconcile()
    services.orders_sync()

    order.refresh_from_db()
    assert order.status == "rejected"
    assert not Fill.objects.filter(order=order).exists()


def test_an_unknown_order_is_looked_up_every_cycle_until_the_horizon_then_closed_as_never_received(alpha, market):
    sent = timezone.now() - dt.timedelta(minutes=1)  # past the 30 s grace, within the 300 s horizon
    order = Order.objects.create(
        client_order_id="not-yet", strategy=alpha, symbol="AAPL", side="buy", qty=Decimal("1"), type="market",
        fingerprint="x", status="unknown", created_at=sent, sent_at=sent,
    )
    broker = registry.get_broker()

    for _ in range(3):
        services.orders_sync()

    order.refresh_from_db()
    assert order.status == "unknown" and order.never_received_at is None
    assert broker.counter.by_operation["get_order_by_client_id"] == 3
    Order.objects.filter(pk=order.pk).update(sent_at=timezone.now() - dt.timedelta(minutes=6))  # the horizon passes

    services.orders_sync()

    order.refresh_from_db()
    assert order.status == "rejected" and order.never_received_at is not None
    assert "UNKNOWN_ORDER_HORIZON_S=300s" in order.transitions.last().reason
    assert not SimOrder.objects.filter(client_order_id="not-yet").exists()  # never resent


def test_a_listing_that_shows_the_order_saves_its_broker_id_even_when_nothing_else_changes(alpha, alice, market):
    sent = timezone.now() - dt.timedelta(seconds=5)
    order = Order.objects.create(
        client_order_id="listed-id", strategy=alpha, symbol="AAPL", side="buy", qty=Decimal("1"), type="limit",
        limit_price=Decimal("50"), fingerprint="x", status="unknown", created_at=sent, sent_at=sent,
    )
    services.order_cancel(acting_user=alice, order=order)  # pending_cancel without a broker id
    sim = _broker_accepts_late(order, status="new")

    services.orders_sync()  # the open listing names it; "new" is no answer to the cancel yet

    order.refresh_from_db()
    assert order.status == "pending_cancel"
    assert order.broker_order_id == str(sim.broker_order_id)
