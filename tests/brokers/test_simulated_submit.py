"""Submitting to the simulated broker: what it accepts, and Alpaca's refusals."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction

from brokers.exceptions import BrokerRejected, OrderNotFound
from brokers.models import SimAsset
from brokers.simulated import SimulatedBroker
from brokers.types import OrderRequest, OrderType, Side
from tests.brokers.factories import SimAssetFactory, order_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker() -> SimulatedBroker:
    return SimulatedBroker()


def test_it_accepts_an_order_as_new_without_filling_it(broker: SimulatedBroker) -> None:
    asset = SimAssetFactory()

    order = broker.submit_order(order_request(asset.symbol, qty="3", client_order_id="accept-1"))

    assert order.status == "new"
    assert order.client_order_id == "accept-1"
    assert order.qty == Decimal("3")
    assert order.filled_qty == 0
    assert order.filled_avg_price is None
    assert broker.get_order(order.broker_order_id).status == "new"
    assert broker.list_positions() == []
    assert broker.counter.by_operation["submit_order"] == 1


def test_it_rejects_a_duplicate_client_order_id(broker: SimulatedBroker) -> None:
    asset = SimAssetFactory()
    first = broker.submit_order(order_request(asset.symbol, client_order_id="dup-1"))

    with pytest.raises(BrokerRejected) as rejected:
        broker.submit_order(order_request(asset.symbol, qty="99", client_order_id="dup-1"))

    assert rejected.value.code == 40010001
    assert rejected.value.status == 422
    assert rejected.value.message == "client_order_id must be unique"
    # The first order is untouched: the resend created nothing.
    replayed = broker.get_order_by_client_id("dup-1")
    assert replayed is not None
    assert replayed.broker_order_id == first.broker_order_id
    assert replayed.qty == Decimal("10")


def test_it_rejects_a_duplicate_inside_the_callers_transaction_and_leaves_it_usable(broker: SimulatedBroker) -> None:
    asset = SimAssetFactory()
    broker.submit_order(order_request(asset.symbol, client_order_id="dup-atomic"))

    with transaction.atomic():
        with pytest.raises(BrokerRejected) as rejected:
            broker.submit_order(order_request(asset.symbol, client_order_id="dup-atomic"))
        # The caller's transaction still works after the refusal.
        other = broker.submit_order(order_request(asset.symbol, client_order_id="after-dup"))

    assert rejected.value.code == 40010001
    assert broker.get_order(other.broker_order_id).status == "new"


def test_it_rejects_an_unknown_symbol(broker: SimulatedBroker) -> None:
    with pytest.raises(BrokerRejected) as rejected:
        broker.submit_order(order_request("NOPE", client_order_id="unknown-1"))

    assert rejected.value.status == 422
    assert rejected.value.message == "asset NOPE not found"
    assert broker.get_order_by_client_id("unknown-1") is None


def test_it_rejects_an_untradable_symbol(broker: SimulatedBroker) -> None:
    asset = SimAssetFactory(tradable=False, last_trade=None)

    with pytest.raises(BrokerRejected) as rejected:
        broker.submit_order(order_request(asset.symbol, client_order_id="untradable-1"))

    assert rejected.value.status == 422
    assert rejected.value.message == f"asset {asset.symbol} is not tradable"
    assert broker.get_order_by_client_id("untradable-1") is None


def test_the_seeded_venue_knows_an_untradable_asset_and_a_cheap_stock(broker: SimulatedBroker) -> None:
    untradable = SimAsset.objects.filter(tradable=False).first()
    assert untradable is not None
    with pytest.raises(BrokerRejected, match="is not tradable"):
        broker.submit_order(order_request(untradable.symbol))

    siri = broker.get_asset("SIRI")
    assert siri is not None
    assert siri.tradable
    assert broker.submit_order(order_request("SIRI", qty="100")).status == "new"


@pytest.mark.parametrize("qty", ["0", "-5"])
def test_it_rejects_a_quantity_that_is_not_positive(broker: SimulatedBroker, qty: str) -> None:
    asset = SimAssetFactory()

    with pytest.raises(BrokerRejected) as rejected:
        broker.submit_order(order_request(asset.symbol, qty=qty))

    assert rejected.value.status == 422


def test_it_rejects_a_limit_order_without_a_limit_price(broker: SimulatedBroker) -> None:
    asset = SimAssetFactory()
    request = OrderRequest(
        client_order_id="no-limit-1", symbol=asset.symbol, side=Side.BUY, qty=Decimal("1"), type=OrderType.LIMIT
    )

    with pytest.raises(BrokerRejected) as rejected:
        broker.submit_order(request)

    assert rejected.value.status == 422
    assert broker.get_order_by_client_id("no-limit-1") is None


def test_it_rejects_a_sub_penny_limit_price_on_a_dollar_stock(broker: SimulatedBroker) -> None:
    asset = SimAssetFactory()

    with pytest.raises(BrokerRejected, match="sub-penny") as rejected:
        broker.submit_order(order_request(asset.symbol, limit_price="99.995"))

    assert rejected.value.status == 422


def test_it_rejects_a_buy_beyond_buying_power(broker: SimulatedBroker) -> None:
    asset = SimAssetFactory(last_trade__price=Decimal("100.00"))
    cash = broker.get_account().cash
    too_many = (cash / Decimal("100")).to_integral_value() + 1

    with pytest.raises(BrokerRejected) as rejected:
        broker.submit_order(order_request(asset.symbol, qty=too_many, client_order_id="too-big"))

    assert rejected.value.status == 403
    assert rejected.value.message == "insufficient buying power"
    assert broker.get_order_by_client_id("too-big") is None


def test_it_counts_buying_power_already_promised_to_working_buys(broker: SimulatedBroker) -> None:
    asset = SimAssetFactory(last_trade__price=Decimal("100.00"))
    cash = broker.get_account().cash
    most_of_it = (cash * Decimal("0.6") / Decimal("100")).to_integral_value()
    broker.submit_order(order_request(asset.symbol, qty=most_of_it))

    assert broker.get_account().buying_power == cash - most_of_it * Decimal("100")
    with pytest.raises(BrokerRejected, match="insufficient buying power"):
        broker.submit_order(order_request(asset.symbol, qty=most_of_it))
    # Selling needs no buying power.
    assert broker.submit_order(order_request(asset.symbol, side=Side.SELL, qty=most_of_it)).status == "new"


def test_it_finds_an_order_by_client_order_id_and_answers_none_for_an_unknown_one(broker: SimulatedBroker) -> None:
    asset = SimAssetFactory()
    order = broker.submit_order(order_request(asset.symbol, client_order_id="lookup-1"))

    found = broker.get_order_by_client_id("lookup-1")

    assert found == order
    assert broker.get_order_by_client_id("never-sent") is None


@pytest.mark.parametrize("broker_order_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid"])
def test_it_raises_order_not_found_for_an_unknown_broker_order_id(
    broker: SimulatedBroker, broker_order_id: str
) -> None:
    with pytest.raises(OrderNotFound):
        broker.get_order(broker_order_id)


def test_it_describes_an_asset_and_answers_none_for_an_unknown_one(broker: SimulatedBroker) -> None:
    asset = SimAssetFactory(name="Test Corp")

    described = broker.get_asset(asset.symbol)

    assert described is not None
    assert (described.symbol, described.tradable, described.name) == (asset.symbol, True, "Test Corp")
    assert broker.get_asset("NOPE") is None
    assert broker.counter.by_operation["get_asset"] == 2
