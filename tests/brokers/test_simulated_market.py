"""The simulated market itself: a seeded random walk, hand-set prices, freshness, the clock."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from brokers import simulated
from brokers.simulated import SimulatedBroker, SimulatedMarketData
from tests.brokers.factories import SimAssetFactory

pytestmark = pytest.mark.django_db


def _walk(seed: int, symbols: list[str], ticks: int) -> list[dict[str, Decimal]]:
    simulated.reseed(seed)
    for symbol in symbols:
        simulated.set_price(symbol, "100.00")
    return [{symbol: simulated.tick().prices[symbol] for symbol in symbols} for _ in range(ticks)]


def test_the_random_walk_is_reproducible_for_a_seed() -> None:
    symbols = [SimAssetFactory().symbol, SimAssetFactory().symbol]

    first = _walk(7, symbols, ticks=20)
    again = _walk(7, symbols, ticks=20)

    assert first == again
    # It does walk: the path is not flat, and the symbols do not move in lockstep.
    assert len({prices[symbols[0]] for prices in first}) > 5
    assert [prices[symbols[0]] for prices in first] != [prices[symbols[1]] for prices in first]


def test_a_different_seed_walks_a_different_path() -> None:
    symbols = [SimAssetFactory().symbol]

    assert _walk(7, symbols, ticks=10) != _walk(8, symbols, ticks=10)


def test_a_tick_moves_prices_by_small_cent_steps() -> None:
    symbol = SimAssetFactory().symbol

    path = _walk(11, [symbol], ticks=50)

    previous = Decimal("100.00")
    for prices in path:
        price = prices[symbol]
        assert price == price.quantize(Decimal("0.01"))
        # 0.1% sigma: a 1% move in one tick would be a ten-sigma event.
        assert abs(price - previous) / previous < Decimal("0.01")
        previous = price


def test_a_price_never_walks_to_zero() -> None:
    symbol = SimAssetFactory(last_trade__price=Decimal("0.0002")).symbol
    simulated.set_volatility(Decimal("0.9"))

    prices = [simulated.tick().prices[symbol] for _ in range(30)]

    assert min(prices) >= Decimal("0.0001")


def test_a_stale_price_stays_stale_until_ticked() -> None:
    symbol = SimAssetFactory().symbol
    an_hour_ago = timezone.now() - dt.timedelta(hours=1)
    simulated.set_price(symbol, "100.00", at=an_hour_ago)
    market_data = SimulatedMarketData()
    broker = SimulatedBroker()

    broker.get_account()
    broker.list_positions()
    still = market_data.latest_trade(symbol)
    assert still is not None
    assert (still.price, still.at) == (Decimal("100.00"), an_hour_ago)

    report = simulated.tick()

    fresh = market_data.latest_trade(symbol)
    assert fresh is not None
    assert fresh.at == report.at
    assert fresh.at > an_hour_ago


def test_set_price_stamps_the_price_now() -> None:
    symbol = SimAssetFactory().symbol
    before = timezone.now()

    simulated.set_price(symbol, "191.25")

    trade = SimulatedMarketData().latest_trade(symbol)
    assert trade is not None
    assert trade.price == Decimal("191.25")
    assert trade.at >= before


@pytest.mark.parametrize("price", ["0", "-1", "NaN", "Infinity", "abc", "1.00001"])
def test_set_price_refuses_a_price_that_is_not_positive_and_finite(price: str) -> None:
    symbol = SimAssetFactory().symbol

    with pytest.raises(ValueError, match="price"):
        simulated.set_price(symbol, price)


def test_set_price_refuses_an_unknown_symbol() -> None:
    with pytest.raises(ValueError, match="unknown symbol"):
        simulated.set_price("NOPE", "10.00")


def test_latest_trades_reads_many_symbols_in_one_counted_call(django_assert_num_queries: object) -> None:
    symbols = [SimAssetFactory().symbol for _ in range(3)]
    market_data = SimulatedMarketData()

    with django_assert_num_queries(1):  # type: ignore[operator]
        trades = market_data.latest_trades([*symbols, "NOPE"])

    assert sorted(trades) == sorted(symbols)
    assert market_data.counter.by_operation == {"latest_trades": 1}


def test_the_simulated_market_is_always_open() -> None:
    broker = SimulatedBroker()

    clock = broker.get_clock()

    assert clock.is_open
    assert clock.next_close > clock.timestamp
    assert clock.timestamp.utcoffset() == dt.timedelta(0)
    assert (broker.name, broker.mode) == ("simulated", "paper")
