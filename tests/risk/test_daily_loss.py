"""A strategy's daily loss counts from the trading day's start, not from each position's entry."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from brokers import simulated
from orders import services
from orders.day_start import positions_mark_day_start
from orders.models import Fill, Position
from risk.models import trading_day
from risk.services import equity_record
from tests.conftest import order_body

pytestmark = pytest.mark.django_db(transaction=True)
D = Decimal


def buy_and_fill(api, market, qty: str) -> None:
    assert api.post("/v1/orders", order_body(qty=qty), format="json").status_code == 201
    market.tick()
    services.orders_sync()


def denial_codes(api, **body) -> set[str]:
    response = api.post("/v1/orders", order_body(**body), format="json")
    return {v["code"] for v in response.json().get("violations", [])} if response.status_code == 400 else set()


@pytest.fixture
def equity_100k(db):
    equity_record(equity=D("100000"), day_start_equity=D("100000"))


def test_a_position_held_overnight_counts_only_todays_change(alice_api, market, equity_100k):
    buy_and_fill(alice_api, market, "100")  # 100 AAPL at 100
    yesterday = trading_day(timezone.now()) - dt.timedelta(days=1)
    Fill.objects.update(at=timezone.now() - dt.timedelta(days=1))  # ... bought yesterday
    Position.objects.update(day_start_on=yesterday)
    simulated.set_price("AAPL", D("150"))  # it closed yesterday at 150

    assert positions_mark_day_start() == 1  # the job marks where the day began
    position = Position.objects.get()
    assert position.day_start_on == trading_day(timezone.now())
    assert position.day_start_unrealized_pnl == (D("150") - position.avg_price) * 100  # about +5,000

    simulated.set_price("AAPL", D("115"))  # about +1,500 since entry, -3,500 today: past the 3,000 daily limit

    assert "daily_loss" in denial_codes(alice_api, qty="1")
    assert "daily_loss" not in denial_codes(alice_api, qty="1", side="sell")  # reducing is still allowed


def test_a_gain_since_entry_does_not_hide_todays_loss_but_a_small_dip_trades(alice_api, market, equity_100k):
    buy_and_fill(alice_api, market, "100")
    Position.objects.update(day_start_on=trading_day(timezone.now()) - dt.timedelta(days=1))
    Fill.objects.update(at=timezone.now() - dt.timedelta(days=1))
    simulated.set_price("AAPL", D("150"))
    positions_mark_day_start()

    simulated.set_price("AAPL", D("125"))  # down 2,500 today: within the limit

    assert "daily_loss" not in denial_codes(alice_api, qty="1")


def test_a_position_opened_today_counts_since_entry(alice_api, market, equity_100k):
    buy_and_fill(alice_api, market, "100")  # bought today at 100: its day starts at entry
    assert Position.objects.get().day_start_unrealized_pnl == D("0")

    simulated.set_price("AAPL", D("69"))  # about -3,100 since entry

    assert "daily_loss" in denial_codes(alice_api, qty="1")
