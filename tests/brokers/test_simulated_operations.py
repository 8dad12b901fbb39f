"""The operator's handles on the simulated market: commands, the beat task and the admin."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.test.utils import override_settings
from django.urls import reverse
from django.utils import timezone

from brokers import simulated
from brokers.models import SimOrder, SimPrice, SimState
from brokers.simulated import SimulatedBroker, SimulatedMarketData
from brokers.tasks import simulated_market_tick
from tests.brokers.factories import SimAssetFactory, order_request

pytestmark = pytest.mark.django_db


def test_sim_set_price_sets_a_fresh_price() -> None:
    symbol = SimAssetFactory().symbol
    out = StringIO()

    call_command("sim_set_price", symbol.lower(), "191.25", stdout=out)

    trade = SimulatedMarketData().latest_trade(symbol)
    assert trade is not None
    assert trade.price == Decimal("191.25")
    assert timezone.now() - trade.at < dt.timedelta(seconds=5)
    assert symbol in out.getvalue()


@pytest.mark.parametrize(
    ("symbol", "price", "message"),
    [
        ("NOPE", "10", "unknown symbol"),
        (None, "-3", "positive"),
        (None, "ten", "not a number"),
        (None, "inf", "finite"),
    ],
)
def test_sim_set_price_refuses_bad_input_with_a_clear_error(symbol: str | None, price: str, message: str) -> None:
    symbol = symbol or SimAssetFactory().symbol

    with pytest.raises(CommandError, match=message):
        call_command("sim_set_price", symbol, price)


def test_sim_tick_advances_the_market_and_fills() -> None:
    symbol = SimAssetFactory().symbol
    broker = SimulatedBroker()
    order = broker.submit_order(order_request(symbol))
    simulated.reseed(5)
    out = StringIO()

    call_command("sim_tick", "--count", "3", stdout=out)

    assert SimState.objects.get().tick_count == 3
    assert broker.get_order(order.broker_order_id).status == "filled"
    assert "1 fills" in out.getvalue()


def test_sim_tick_refuses_a_count_below_one() -> None:
    with pytest.raises(CommandError, match="--count"):
        call_command("sim_tick", "--count", "0")


@override_settings(BROKER="simulated")
def test_the_beat_task_ticks_the_simulated_market() -> None:
    symbol = SimAssetFactory().symbol
    broker = SimulatedBroker()
    order = broker.submit_order(order_request(symbol))
    simulated.reseed(5)

    tick_number = simulated_market_tick.apply().get()

    assert tick_number == 1
    assert broker.get_order(order.broker_order_id).status == "filled"


@override_settings(BROKER="alpaca")
def test_the_beat_task_does_nothing_when_the_broker_is_alpaca() -> None:
    SimAssetFactory()
    simulated.reseed(5)
    prices_before = dict(SimPrice.objects.values_list("symbol", "price"))

    assert simulated_market_tick.apply().get() is None

    assert SimState.objects.get().tick_count == 0
    assert dict(SimPrice.objects.values_list("symbol", "price")) == prices_before


def test_saving_a_price_in_the_admin_stamps_it_now(admin_client: Client) -> None:
    symbol = SimAssetFactory().symbol
    simulated.set_price(symbol, "100.00", at=timezone.now() - dt.timedelta(hours=3))
    price = SimPrice.objects.get(symbol=symbol)

    response = admin_client.post(reverse("admin:brokers_simprice_change", args=[price.pk]), {"price": "101.50"})

    assert response.status_code == 302
    trade = SimulatedMarketData().latest_trade(symbol)
    assert trade is not None
    assert trade.price == Decimal("101.50")
    assert timezone.now() - trade.at < dt.timedelta(seconds=5)


def test_the_admin_refuses_a_price_that_is_not_positive(admin_client: Client) -> None:
    symbol = SimAssetFactory().symbol
    price = SimPrice.objects.get(symbol=symbol)

    response = admin_client.post(reverse("admin:brokers_simprice_change", args=[price.pk]), {"price": "0"})

    assert response.status_code == 200
    assert SimPrice.objects.get(symbol=symbol).price == Decimal("100.00")


@pytest.mark.parametrize("model", ["simorder", "simposition", "simaccount", "simprice", "simstate", "simasset"])
def test_the_admin_lists_the_simulated_book(admin_client: Client, model: str) -> None:
    assert admin_client.get(reverse(f"admin:brokers_{model}_changelist")).status_code == 200


def test_the_admin_shows_orders_read_only(admin_client: Client) -> None:
    order = SimulatedBroker().submit_order(order_request(SimAssetFactory().symbol))
    pk = SimOrder.objects.get(client_order_id=order.client_order_id).pk

    response = admin_client.post(reverse("admin:brokers_simorder_change", args=[pk]), {"status": "filled"})

    assert response.status_code == 403
    assert SimulatedBroker().get_order(order.broker_order_id).status == "new"
