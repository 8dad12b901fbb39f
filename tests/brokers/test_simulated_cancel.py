"""Cancelling at the simulated broker: one order, every order, and what cannot be canceled."""

from __future__ import annotations

from decimal import Decimal

import pytest

from brokers import simulated
from brokers.exceptions import BrokerRejected, OrderNotFound
from brokers.simulated import SimulatedBroker
from tests.brokers.factories import SimAssetFactory, after_a_tick, order_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker() -> SimulatedBroker:
    return SimulatedBroker()


def test_it_cancels_an_open_order_so_no_tick_fills_it(broker: SimulatedBroker) -> None:
    asset = SimAssetFactory()
    order = broker.submit_order(order_request(asset.symbol))

    broker.cancel_order(order.broker_order_id)

    canceled = broker.get_order(order.broker_order_id)
    assert canceled.status == "canceled"
    assert after_a_tick(broker, order).status == "canceled"
    assert broker.list_positions() == []


def test_it_refuses_to_cancel_a_filled_order(broker: SimulatedBroker) -> None:
    asset = SimAssetFactory()
    order = broker.submit_order(order_request(asset.symbol))
    assert after_a_tick(broker, order).status == "filled"

    with pytest.raises(BrokerRejected) as rejected:
        broker.cancel_order(order.broker_order_id)

    assert rejected.value.status == 422
    assert rejected.value.message == "order is not cancelable"
    assert broker.get_order(order.broker_order_id).status == "filled"


def test_it_refuses_to_cancel_an_order_twice(broker: SimulatedBroker) -> None:
    asset = SimAssetFactory()
    order = broker.submit_order(order_request(asset.symbol))
    broker.cancel_order(order.broker_order_id)

    with pytest.raises(BrokerRejected, match="order is not cancelable"):
        broker.cancel_order(order.broker_order_id)


def test_it_raises_order_not_found_when_cancelling_an_unknown_order(broker: SimulatedBroker) -> None:
    with pytest.raises(OrderNotFound):
        broker.cancel_order("00000000-0000-0000-0000-000000000000")


def test_cancel_all_cancels_every_open_order_in_one_counted_call(broker: SimulatedBroker) -> None:
    asset = SimAssetFactory()
    done = broker.submit_order(order_request(asset.symbol))
    after_a_tick(broker, done)
    working = [broker.submit_order(order_request(asset.symbol, limit_price="50.00")) for _ in range(3)]
    calls_before = broker.counter.calls

    results = broker.cancel_all_orders()

    assert broker.counter.calls == calls_before + 1
    assert broker.counter.by_operation["cancel_all_orders"] == 1
    assert sorted(result.broker_order_id for result in results) == sorted(o.broker_order_id for o in working)
    assert {result.status for result in results} == {200}
    assert [broker.get_order(o.broker_order_id).status for o in working] == ["canceled"] * 3
    assert broker.get_order(done.broker_order_id).status == "filled"
    assert list(broker.iter_orders(status="open")) == []


def test_a_partially_filled_order_can_be_canceled_and_keeps_its_fill(broker: SimulatedBroker) -> None:
    simulated.set_max_fill_qty_per_tick(Decimal("2"))
    asset = SimAssetFactory()
    order = broker.submit_order(order_request(asset.symbol, qty="5"))
    assert after_a_tick(broker, order).status == "partially_filled"

    broker.cancel_order(order.broker_order_id)

    canceled = after_a_tick(broker, order)
    assert (canceled.status, canceled.filled_qty) == ("canceled", Decimal("2"))
