"""Factories and small builders shared by the simulated-broker tests.

(Named test_simulated_* only because that is the file pattern this piece of
work may create; it holds no tests. It belongs in tests/brokers/factories.py.)
"""

from __future__ import annotations

from decimal import Decimal

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from brokers import simulated
from brokers.models import SimAsset, SimOrder, SimOrderStatus, SimPrice
from brokers.simulated import SimulatedBroker
from brokers.types import BrokerOrder, OrderRequest, OrderType, Side, TimeInForce


class SimPriceFactory(DjangoModelFactory[SimPrice]):
    class Meta:
        model = SimPrice

    symbol = factory.Sequence(lambda n: f"TST{n}")
    price = Decimal("100.00")
    updated_at = factory.LazyFunction(timezone.now)


class SimAssetFactory(DjangoModelFactory[SimAsset]):
    """A symbol of the test's own, listed with a fresh last trade of $100.00.

    ``SimAssetFactory(last_trade__price=Decimal("42.00"))`` sets the price;
    ``SimAssetFactory(tradable=False, last_trade=None)`` lists no price at all.
    """

    class Meta:
        model = SimAsset
        skip_postgeneration_save = True

    symbol = factory.Sequence(lambda n: f"TST{n}")
    name = factory.LazyAttribute(lambda asset: f"{asset.symbol} test asset")
    tradable = True
    last_trade = factory.RelatedFactory(SimPriceFactory, symbol=factory.SelfAttribute("..symbol"))


class SimOrderFactory(DjangoModelFactory[SimOrder]):
    """A working order written straight into the book (for volume: paging tests)."""

    class Meta:
        model = SimOrder

    client_order_id = factory.Sequence(lambda n: f"factory-order-{n}")
    symbol = "AAPL"
    side = Side.BUY.value
    qty = Decimal("1")
    type = OrderType.MARKET.value
    time_in_force = TimeInForce.GTC.value
    status = SimOrderStatus.NEW
    submitted_at = factory.LazyFunction(timezone.now)
    updated_at = factory.SelfAttribute("submitted_at")


_client_order_ids = iter(range(1, 10**9))


def order_request(
    symbol: str,
    *,
    side: Side = Side.BUY,
    qty: str | Decimal = "10",
    limit_price: str | Decimal | None = None,
    time_in_force: TimeInForce = TimeInForce.DAY,
    client_order_id: str | None = None,
) -> OrderRequest:
    """A market order, or a limit order when ``limit_price`` is given."""
    return OrderRequest(
        client_order_id=client_order_id or f"test-{next(_client_order_ids)}",
        symbol=symbol,
        side=side,
        qty=Decimal(qty),
        type=OrderType.MARKET if limit_price is None else OrderType.LIMIT,
        time_in_force=time_in_force,
        limit_price=None if limit_price is None else Decimal(limit_price),
    )


def a_calm_market() -> None:
    """Hold prices still between ticks, so a test can name the exact fill price."""
    simulated.set_volatility(Decimal("0"))


def after_a_tick(broker: SimulatedBroker, order: BrokerOrder) -> BrokerOrder:
    """The order as the broker reports it after one tick."""
    simulated.tick()
    return broker.get_order(order.broker_order_id)
