"""The fake Alpaca behaves like a venue: orders live, fill, move positions; faults fire as asked.

Later end-to-end tests lean on these behaviours, so they are proved here,
through the fake's HTTP face and its controls, in-process and as a process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from brokers.alpaca import AlpacaBroker
from brokers.exceptions import BrokerOutcomeUnknown
from brokers.types import OrderRequest, OrderType, Side
from tests.fake_alpaca import DEFAULT_API_KEY, DEFAULT_SECRET_KEY, FakeAlpacaControl, FakeAlpacaServer

pytest_plugins = ["tests.fake_alpaca.fixtures"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AUTH = {"APCA-API-KEY-ID": DEFAULT_API_KEY, "APCA-API-SECRET-KEY": DEFAULT_SECRET_KEY}


def submit(fake: FakeAlpacaServer, **fields: Any) -> requests.Response:
    body = {"symbol": "AAPL", "qty": "10", "side": "buy", "type": "market", "time_in_force": "day", **fields}
    return requests.post(f"{fake.base_url}/v2/orders", json=body, headers=AUTH, timeout=5)


def get(fake: FakeAlpacaServer, path: str, **params: Any) -> Any:
    response = requests.get(f"{fake.base_url}{path}", params=params, headers=AUTH, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def test_market_order_in_manual_mode_waits_for_a_step_then_fills_at_the_price(fake_alpaca: FakeAlpacaServer) -> None:
    fake_alpaca.configure(fill_mode="manual")
    order = submit(fake_alpaca).json()
    assert order["status"] == "new"
    fake_alpaca.set_price("AAPL", "191.25")

    assert fake_alpaca.step() == 1

    filled = get(fake_alpaca, f"/v2/orders/{order['id']}")
    assert (filled["status"], filled["filled_qty"], filled["filled_avg_price"]) == ("filled", "10", "191.25")
    assert filled["filled_at"] is not None


def test_limit_buy_rests_until_the_price_crosses_then_fills_at_that_price(fake_alpaca: FakeAlpacaServer) -> None:
    order = submit(fake_alpaca, type="limit", limit_price="180").json()
    assert order["status"] == "new"

    fake_alpaca.set_price("AAPL", "185")
    assert get(fake_alpaca, f"/v2/orders/{order['id']}")["status"] == "new"
    fake_alpaca.set_price("AAPL", "179.5")

    filled = get(fake_alpaca, f"/v2/orders/{order['id']}")
    assert (filled["status"], filled["filled_avg_price"]) == ("filled", "179.5")


def test_partial_fills_accumulate_quantity_and_average_price(fake_alpaca: FakeAlpacaServer) -> None:
    order = submit(fake_alpaca, type="limit", limit_price="120").json()  # rests: AAPL is at 190

    first = fake_alpaca.fill(order["id"], qty="4", price="100")
    second = fake_alpaca.fill(client_order_id=order["client_order_id"], qty="6", price="110")

    assert (first["status"], first["filled_qty"], first["filled_avg_price"]) == ("partially_filled", "4", "100")
    assert (second["status"], second["filled_qty"], second["filled_avg_price"]) == ("filled", "10", "106")
    [position] = get(fake_alpaca, "/v2/positions")
    assert (position["qty"], position["avg_entry_price"]) == ("10", "106")


def test_fill_after_a_cancel_request_completes_the_order_and_a_second_cancel_is_refused(
    fake_alpaca: FakeAlpacaServer,
) -> None:
    fake_alpaca.configure(cancel_mode="pending")
    order = submit(fake_alpaca, type="limit", limit_price="120").json()

    cancel = requests.delete(f"{fake_alpaca.base_url}/v2/orders/{order['id']}", headers=AUTH, timeout=5)
    assert cancel.status_code == 204
    assert get(fake_alpaca, f"/v2/orders/{order['id']}")["status"] == "pending_cancel"
    fake_alpaca.fill(order["id"], price="119")
    again = requests.delete(f"{fake_alpaca.base_url}/v2/orders/{order['id']}", headers=AUTH, timeout=5)

    assert get(fake_alpaca, f"/v2/orders/{order['id']}")["status"] == "filled"
    assert again.status_code == 422


def test_pending_cancel_becomes_canceled_on_the_next_step(fake_alpaca: FakeAlpacaServer) -> None:
    fake_alpaca.configure(cancel_mode="pending")
    order = submit(fake_alpaca, type="limit", limit_price="1").json()
    requests.delete(f"{fake_alpaca.base_url}/v2/orders/{order['id']}", headers=AUTH, timeout=5)

    fake_alpaca.step()

    canceled = get(fake_alpaca, f"/v2/orders/{order['id']}")
    assert (canceled["status"], canceled["canceled_at"] is not None) == ("canceled", True)


def test_positions_and_cash_follow_fills_through_zero(fake_alpaca: FakeAlpacaServer) -> None:
    fake_alpaca.set_price("AAPL", "100")
    submit(fake_alpaca, qty="5")
    fake_alpaca.set_price("AAPL", "120")
    submit(fake_alpaca, qty="8", side="sell")

    [position] = get(fake_alpaca, "/v2/positions")
    account = get(fake_alpaca, "/v2/account")

    assert (position["qty"], position["side"], position["avg_entry_price"]) == ("-3", "short", "120")
    # 100000 - 5 x 100 + 8 x 120 = 100460 cash; equity = cash - 3 x 120.
    assert (account["cash"], account["equity"]) == ("100460", "100100")
    assert Decimal(account["equity"]) - Decimal(account["last_equity"]) == Decimal("100")


def test_expired_orders_leave_the_open_list(fake_alpaca: FakeAlpacaServer) -> None:
    order = submit(fake_alpaca, type="limit", limit_price="1").json()

    fake_alpaca.expire(order["id"])

    assert get(fake_alpaca, "/v2/orders", status="open") == []
    assert [o["status"] for o in get(fake_alpaca, "/v2/orders", status="closed")] == ["expired"]


def test_a_fault_fires_only_on_its_method_and_path_for_its_count(fake_alpaca: FakeAlpacaServer) -> None:
    fake_alpaca.set_fault("http_500", method="POST", path="/v2/orders", count=2)

    statuses = [submit(fake_alpaca, client_order_id=f"f-{n}").status_code for n in range(3)]
    listing = requests.get(f"{fake_alpaca.base_url}/v2/orders", headers=AUTH, timeout=5)

    assert statuses == [500, 500, 200]
    assert listing.status_code == 200
    assert fake_alpaca.faults_injected == {"http_500": 2}
    assert fake_alpaca.submissions == {"f-0": 1, "f-1": 1, "f-2": 1}
    assert [r.fault for r in fake_alpaca.requests] == ["http_500", "http_500", None, None]


def test_probabilistic_faults_repeat_exactly_with_the_same_seed() -> None:
    def pattern(seed: int) -> list[int]:
        with FakeAlpacaServer(seed=seed) as fake:
            fake.set_fault("http_500", path="/v2/clock", probability=0.5, count=None)
            session = requests.Session()
            return [session.get(f"{fake.base_url}/v2/clock", headers=AUTH, timeout=5).status_code for _ in range(30)]

    first, second = pattern(7), pattern(7)

    assert first == second
    assert 0 < first.count(500) < 30


def test_a_lost_response_still_creates_the_order_and_a_dropped_connection_does_not(
    fake_alpaca: FakeAlpacaServer,
) -> None:
    fake_alpaca.set_fault("lose_response", method="POST", path="/v2/orders")
    fake_alpaca.set_fault("drop_connection", method="POST", path="/v2/orders")

    for client_order_id in ("lost", "dropped"):
        with pytest.raises(requests.ConnectionError):
            submit(fake_alpaca, client_order_id=client_order_id)

    assert [o["client_order_id"] for o in fake_alpaca.orders] == ["lost"]
    assert fake_alpaca.faults_injected == {"lose_response": 1, "drop_connection": 1}
    assert [r.status for r in fake_alpaca.requests] == [None, None]


def test_reset_forgets_orders_positions_faults_and_requests(fake_alpaca: FakeAlpacaServer) -> None:
    submit(fake_alpaca)
    fake_alpaca.set_fault("http_500")
    fake_alpaca.configure(fill_mode="manual")

    fake_alpaca.reset()

    assert (fake_alpaca.orders, fake_alpaca.positions, fake_alpaca.requests) == ([], [], [])
    assert fake_alpaca.state()["faults"] == []
    assert fake_alpaca.venue.fill_mode == "immediate"
    assert submit(fake_alpaca).status_code == 200


# --- as its own process --------------------------------------------------------------------------


@pytest.fixture
def fake_alpaca_process() -> Iterator[str]:
    environment = {**os.environ, "ALPACA_API_KEY": DEFAULT_API_KEY, "ALPACA_SECRET_KEY": DEFAULT_SECRET_KEY}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_alpaca", "--port", "0", "--seed", "3"],
        cwd=PROJECT_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert banner.startswith("fake-alpaca listening on "), banner
        yield banner.split()[-1]
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_standalone_fake_serves_the_api_and_its_control_api(
    fake_alpaca_process: str, request: pytest.FixtureRequest
) -> None:
    control = FakeAlpacaControl(fake_alpaca_process)
    request.addfinalizer(control.close)
    control.wait_until_up()
    broker = AlpacaBroker(
        api_key=DEFAULT_API_KEY, secret_key=DEFAULT_SECRET_KEY, base_url=fake_alpaca_process, timeout_s=2
    )
    control.set_price("AAPL", "200.5")
    control.set_fault("lose_response", method="POST", path="/v2/orders")

    with pytest.raises(BrokerOutcomeUnknown):
        broker.submit_order(OrderRequest("proc-1", "AAPL", Side.BUY, Decimal("2"), OrderType.MARKET))
    found = broker.get_order_by_client_id("proc-1")

    assert found is not None and found.filled_avg_price == Decimal("200.5")
    assert control.submissions == {"proc-1": 1}
    assert control.faults_injected == {"lose_response": 1}
    assert [r["path"] for r in control.requests] == ["/v2/orders", "/v2/orders:by_client_order_id"]
    control.configure(fill_mode="manual")
    resting = control.place_order(symbol="AAPL", qty="3", client_order_id="proc-2")
    assert control.fill(resting["id"], qty="1")["status"] == "partially_filled"
    assert control.step() == 1
    control.reset()
    assert control.orders == []
