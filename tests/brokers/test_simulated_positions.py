"""Positions, the account and flattening, as fills change them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from brokers import simulated
from brokers.models import SimAccount
from brokers.simulated import SimulatedBroker
from brokers.types import Side
from tests.brokers.factories import SimAssetFactory, a_calm_market, after_a_tick, order_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker() -> SimulatedBroker:
    a_calm_market()
    return SimulatedBroker()


def _trade(broker: SimulatedBroker, symbol: str, side: Side, qty: str, price: str) -> None:
    simulated.set_price(symbol, price)
    order = broker.submit_order(order_request(symbol, side=side, qty=qty))
    assert after_a_tick(broker, order).status == "filled"


def test_buys_build_a_long_position_at_the_average_entry_price(broker: SimulatedBroker) -> None:
    asset = SimAssetFactory()
    _trade(broker, asset.symbol, Side.BUY, "10", "100.00")
    _trade(broker, asset.symbol, Side.BUY, "10", "110.00")

    [position] = broker.list_positions()

    assert (position.qty, position.avg_entry_price) == (Decimal("20"), Decimal("105"))
    assert position.current_price == Decimal("110.00")
    assert position.market_value == Decimal("2200")


def test_a_partial_sell_keeps_the_entry_price(broker: SimulatedBroker) -> None:
    asset = SimAssetFactory()
    _trade(broker, asset.symbol, Side.BUY, "10", "100.00")
    _trade(broker, asset.symbol, Side.SELL, "4", "120.00")

    [position] = broker.list_positions()

    assert (position.qty, position.avg_entry_price) == (Decimal("6"), Decimal("100"))


def test_a_sell_larger_than_the_position_flips_it_short_at_the_fill_price(broker: SimulatedBroker) -> None:
    asset = SimAssetFactory()
    start = broker.get_account()
    _trade(broker, asset.symbol, Side.BUY, "10", "100.00")
    _trade(broker, asset.symbol, Side.SELL, "15", "110.00")

    [position] = broker.list_positions()
    account = broker.get_account()

    assert (position.qty, position.avg_entry_price) == (Decimal("-5"), Decimal("110"))
    assert position.market_value == Decimal("-550")
    assert account.cash == start.cash - Decimal("1000") + Decimal("1650")
    # The long made 10 x $10; the new short is flat at its own price.
    assert account.equity == start.equity + Decimal("100")


def test_a_position_that_goes_flat_disappears(broker: SimulatedBroker) -> None:
    asset = SimAssetFactory()
    start = broker.get_account()
    _trade(broker, asset.symbol, Side.BUY, "10", "100.00")
    _trade(broker, asset.symbol, Side.SELL, "10", "97.50")

    assert broker.list_positions() == []
    assert broker.get_account().equity == start.equity - Decimal("25")


def test_account_equity_is_cash_plus_market_value_at_current_prices(broker: SimulatedBroker) -> None:
    long_asset, short_asset = SimAssetFactory(), SimAssetFactory()
    start = broker.get_account()
    _trade(broker, long_asset.symbol, Side.BUY, "10", "100.00")
    _trade(broker, short_asset.symbol, Side.SELL, "20", "50.00")

    simulated.set_price(long_asset.symbol, "104.00")
    simulated.set_price(short_asset.symbol, "49.00")
    account = broker.get_account()

    assert account.cash == start.cash - Decimal("1000") + Decimal("1000")
    assert account.equity == account.cash + Decimal("10") * Decimal("104") - Decimal("20") * Decimal("49")
    assert account.equity == start.equity + Decimal("40") + Decimal("20")


def test_close_all_positions_cancels_working_orders_and_flattens_at_the_next_tick(broker: SimulatedBroker) -> None:
    long_asset, short_asset = SimAssetFactory(), SimAssetFactory()
    _trade(broker, long_asset.symbol, Side.BUY, "10", "100.00")
    _trade(broker, short_asset.symbol, Side.SELL, "20", "50.00")
    working = broker.submit_order(order_request(long_asset.symbol, limit_price="90.00"))

    broker.close_all_positions()

    assert broker.counter.by_operation["close_all_positions"] == 1
    assert broker.get_order(working.broker_order_id).status == "canceled"
    closing = list(broker.iter_orders(status="open"))
    assert sorted((o.symbol, o.side, o.qty, o.type) for o in closing) == sorted(
        [
            (long_asset.symbol, Side.SELL, Decimal("10"), "market"),
            (short_asset.symbol, Side.BUY, Decimal("20"), "market"),
        ]
    )
    assert all(o.client_order_id.startswith("sim-close-") for o in closing)
    # Nothing fills inside the call: flat only after the next tick.
    assert len(broker.list_positions()) == 2

    simulated.tick()

    assert broker.list_positions() == []


def test_last_equity_is_the_equity_at_the_first_read_of_a_new_trading_day(broker: SimulatedBroker) -> None:
    asset = SimAssetFactory()
    _trade(broker, asset.symbol, Side.BUY, "10", "100.00")
    yesterday = timezone.now().date() - dt.timedelta(days=2)
    SimAccount.objects.update(last_equity=Decimal("1"), last_equity_day=yesterday)

    first_read = broker.get_account()
    simulated.set_price(asset.symbol, "90.00")
    later_read = broker.get_account()

    assert first_read.last_equity == first_read.equity
    assert later_read.equity == first_read.equity - Decimal("100")
    assert later_read.last_equity == first_read.equity


def test_the_first_tick_of_a_new_day_captures_last_equity_before_prices_move(broker: SimulatedBroker) -> None:
    asset = SimAssetFactory()
    _trade(broker, asset.symbol, Side.BUY, "10", "100.00")
    equity_before = broker.get_account().equity
    SimAccount.objects.update(last_equity=Decimal("1"), last_equity_day=timezone.now().date() - dt.timedelta(days=2))
    simulated.set_volatility(Decimal("0.05"))

    report = simulated.tick()

    account = broker.get_account()
    assert report.prices[asset.symbol] != Decimal("100.00")
    assert account.last_equity == equity_before
    assert account.equity == equity_before + Decimal("10") * (report.prices[asset.symbol] - Decimal("100"))
