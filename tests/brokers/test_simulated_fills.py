"""Fills happen on tick(), never inside submit: market, limit, partial, IOC/FOK, day expiry."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from brokers import simulated
from brokers.models import SimOrder
from brokers.simulated import SimulatedBroker, SimulatedMarketData
from brokers.types import Side, TimeInForce
from tests.brokers.factories import SimAssetFactory, a_calm_market, after_a_tick, order_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker() -> SimulatedBroker:
    return SimulatedBroker()


def test_a_market_order_fills_at_the_next_tick_at_the_current_price(broker: SimulatedBroker) -> None:
    asset = SimAssetFactory(last_trade__price=Decimal("100.00"))
    order = broker.submit_order(order_request(asset.symbol, qty="5"))
    assert broker.get_order(order.broker_order_id).status == "new"

    report = simulated.tick()

    price_at_tick = report.prices[asset.symbol]
    filled = broker.get_order(order.broker_order_id)
    assert filled.status == "filled"
    assert filled.filled_qty == Decimal("5")
    assert filled.filled_avg_price == price_at_tick
    assert filled.filled_at == report.at
    assert SimulatedMarketData().latest_trades([asset.symbol])[asset.symbol].price == price_at_tick


def test_a_limit_buy_fills_only_when_the_price_crosses(broker: SimulatedBroker) -> None:
    asset = SimAssetFactory(last_trade__price=Decimal("100.00"))
    order = broker.submit_order(order_request(asset.symbol, qty="5", limit_price="95.00"))

    assert after_a_tick(broker, order).status == "new"

    simulated.set_price(asset.symbol, "94.00")
    report = simulated.tick()

    filled = broker.get_order(order.broker_order_id)
    assert filled.status == "filled"
    # At the market, which is the limit or better.
    assert filled.filled_avg_price == report.prices[asset.symbol]
    assert filled.filled_avg_price is not None
    assert filled.filled_avg_price <= Decimal("95.00")


def test_a_limit_sell_fills_only_when_the_price_crosses(broker: SimulatedBroker) -> None:
    a_calm_market()
    asset = SimAssetFactory(last_trade__price=Decimal("100.00"))
    order = broker.submit_order(order_request(asset.symbol, side=Side.SELL, qty="2", limit_price="101.00"))

    assert after_a_tick(broker, order).status == "new"

    simulated.set_price(asset.symbol, "101.50")
    filled = after_a_tick(broker, order)

    assert filled.status == "filled"
    assert filled.filled_avg_price == Decimal("101.50")


def test_partial_fills_accumulate_quantity_and_volume_weighted_price(broker: SimulatedBroker) -> None:
    a_calm_market()
    simulated.set_max_fill_qty_per_tick(Decimal("4"))
    asset = SimAssetFactory(last_trade__price=Decimal("100.00"))
    order = broker.submit_order(order_request(asset.symbol, qty="10"))

    first = after_a_tick(broker, order)
    assert (first.status, first.filled_qty, first.filled_avg_price) == (
        "partially_filled",
        Decimal("4"),
        Decimal("100"),
    )

    simulated.set_price(asset.symbol, "103.00")
    second = after_a_tick(broker, order)
    # (4 x 100 + 4 x 103) / 8
    assert (second.status, second.filled_qty, second.filled_avg_price) == (
        "partially_filled",
        Decimal("8"),
        Decimal("101.5"),
    )
    assert second.filled_at is None

    simulated.set_price(asset.symbol, "106.00")
    third = after_a_tick(broker, order)
    # (4 x 100 + 4 x 103 + 2 x 106) / 10
    assert (third.status, third.filled_qty, third.filled_avg_price) == ("filled", Decimal("10"), Decimal("102.4"))
    assert third.filled_at is not None
    [position] = broker.list_positions()
    assert (position.qty, position.avg_entry_price) == (Decimal("10"), Decimal("102.4"))


def test_an_ioc_order_that_cannot_fill_at_its_first_tick_is_canceled(broker: SimulatedBroker) -> None:
    a_calm_market()
    asset = SimAssetFactory(last_trade__price=Decimal("100.00"))
    order = broker.submit_order(order_request(asset.symbol, limit_price="90.00", time_in_force=TimeInForce.IOC))

    after = after_a_tick(broker, order)

    assert (after.status, after.filled_qty) == ("canceled", Decimal("0"))
    assert broker.list_positions() == []


def test_an_ioc_order_keeps_its_partial_fill_and_cancels_the_rest(broker: SimulatedBroker) -> None:
    a_calm_market()
    simulated.set_max_fill_qty_per_tick(Decimal("3"))
    asset = SimAssetFactory(last_trade__price=Decimal("100.00"))
    order = broker.submit_order(order_request(asset.symbol, qty="10", time_in_force=TimeInForce.IOC))

    after = after_a_tick(broker, order)

    assert (after.status, after.filled_qty, after.filled_avg_price) == ("canceled", Decimal("3"), Decimal("100"))
    [position] = broker.list_positions()
    assert position.qty == Decimal("3")


def test_a_fok_order_that_cannot_fill_completely_is_canceled_unfilled(broker: SimulatedBroker) -> None:
    a_calm_market()
    simulated.set_max_fill_qty_per_tick(Decimal("3"))
    asset = SimAssetFactory(last_trade__price=Decimal("100.00"))
    order = broker.submit_order(order_request(asset.symbol, qty="10", time_in_force=TimeInForce.FOK))

    after = after_a_tick(broker, order)

    assert (after.status, after.filled_qty) == ("canceled", Decimal("0"))
    assert broker.list_positions() == []


def test_a_fok_order_that_can_fill_completely_fills(broker: SimulatedBroker) -> None:
    asset = SimAssetFactory()
    order = broker.submit_order(order_request(asset.symbol, qty="10", time_in_force=TimeInForce.FOK))

    assert after_a_tick(broker, order).status == "filled"


def test_a_day_order_expires_when_its_trading_day_has_ended(broker: SimulatedBroker) -> None:
    asset = SimAssetFactory(last_trade__price=Decimal("100.00"))
    day_order = broker.submit_order(order_request(asset.symbol, limit_price="50.00"))
    gtc_order = broker.submit_order(order_request(asset.symbol, limit_price="50.00", time_in_force=TimeInForce.GTC))
    # Both were sent two days ago: the day order's trading day is over.
    SimOrder.objects.filter(symbol=asset.symbol).update(submitted_at=timezone.now() - dt.timedelta(days=2))

    simulated.tick()

    assert broker.get_order(day_order.broker_order_id).status == "expired"
    assert broker.get_order(gtc_order.broker_order_id).status == "new"


def test_fills_move_cash_by_the_traded_notional(broker: SimulatedBroker) -> None:
    a_calm_market()
    asset = SimAssetFactory(last_trade__price=Decimal("100.00"))
    cash_before = broker.get_account().cash
    order = broker.submit_order(order_request(asset.symbol, qty="7"))

    after_a_tick(broker, order)

    assert broker.get_account().cash == cash_before - Decimal("700")
