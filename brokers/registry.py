"""Which broker this process talks to, chosen once from settings.BROKER."""

from __future__ import annotations

from functools import cache

from django.conf import settings

from brokers.base import BrokerClient, MarketData


@cache
def get_broker() -> BrokerClient:
    if settings.BROKER == "alpaca":
        from brokers.alpaca import AlpacaBroker

        return AlpacaBroker.from_settings()
    from brokers.simulated import SimulatedBroker

    return SimulatedBroker()


@cache
def get_market_data() -> MarketData:
    if settings.BROKER == "alpaca":
        from brokers.alpaca import AlpacaMarketData

        return AlpacaMarketData.from_settings()
    from brokers.simulated import SimulatedMarketData

    return SimulatedMarketData()


def reset() -> None:
    """Forget the cached clients (tests that switch settings.BROKER call this)."""
    get_broker.cache_clear()
    get_market_data.cache_clear()
