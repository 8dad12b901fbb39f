"""The two brokers the job benchmarks run against, behind one small interface.

* ``alpaca``: the product's AlpacaBroker (alpaca-py, real HTTP) against the
  fake Alpaca from tests/fake_alpaca, run as its own process
  (``python -m tests.fake_alpaca --port 0``) and seeded through its control
  API. Out of process on purpose: tracemalloc counts every allocation of this
  process, and an in-process fake would add its own page building (a JSON
  answer of 500 orders) to the sync cycle's peak.
* ``simulated``: the product's DB-backed SimulatedBroker, seeded in bulk
  (tests/jobs/helpers.working_book).

Local orders that match the broker's are bulk-created as ``submitted``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import select
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.test.utils import override_settings
from django.utils import timezone

from brokers import registry
from brokers.base import BrokerClient
from brokers.models import OPEN_STATUSES, SimOrder, SimPosition
from orders.models import Order
from risk.models import Strategy
from tests.fake_alpaca import DEFAULT_API_KEY, DEFAULT_SECRET_KEY, FakeAlpacaControl
from tests.jobs.helpers import working_book

BASE_DIR = Path(__file__).resolve().parent.parent
FAKE_OPEN = {"new", "partially_filled", "accepted", "pending_new", "pending_cancel", "held"}


class Venue:
    name: str

    @contextlib.contextmanager
    def broker(self) -> Iterator[BrokerClient]:
        raise NotImplementedError

    def reset(self) -> None: ...

    def seed_open_orders(self, strategy: Strategy, count: int) -> list[Order]:
        raise NotImplementedError

    def fill(self, orders: list[Order]) -> None: ...

    def open_count(self) -> int:
        raise NotImplementedError

    def seed_closed_orders(self, count: int) -> None:
        """``count`` orders that closed at the broker within the last hour (none of them ours)."""
        raise NotImplementedError

    def seed_positions(self, symbols: list[str], *, qty: Decimal, price: Decimal) -> None: ...

    def drop_positions(self, symbols: list[str]) -> None: ...


class SimulatedVenue(Venue):
    name = "simulated"

    @contextlib.contextmanager
    def broker(self) -> Iterator[BrokerClient]:
        registry.reset()
        try:
            yield registry.get_broker()
        finally:
            registry.reset()

    def seed_open_orders(self, strategy: Strategy, count: int) -> list[Order]:
        return working_book(strategy, count)

    def fill(self, orders: list[Order]) -> None:
        SimOrder.objects.filter(client_order_id__in=[o.client_order_id for o in orders]).update(
            status="filled", filled_qty=Decimal("1"), filled_avg_price=Decimal("49.5"), updated_at=timezone.now()
        )

    def open_count(self) -> int:
        return SimOrder.objects.filter(status__in=list(OPEN_STATUSES)).count()

    def seed_closed_orders(self, count: int) -> None:
        now = timezone.now()
        tag = uuid.uuid4().hex[:8]
        SimOrder.objects.bulk_create(
            [
                SimOrder(
                    client_order_id=f"closed-{tag}-{i}", symbol="AAPL", side="sell", qty=Decimal("1"), type="market",
                    time_in_force="day", status="filled", filled_qty=Decimal("1"), filled_avg_price=Decimal("190"),
                    submitted_at=now - dt.timedelta(minutes=30, microseconds=-i),
                    updated_at=now - dt.timedelta(minutes=29, microseconds=-i), filled_at=now,
                )
                for i in range(count)
            ],
            batch_size=2000,
        )

    def seed_positions(self, symbols: list[str], *, qty: Decimal, price: Decimal) -> None:
        SimPosition.objects.bulk_create(
            [SimPosition(symbol=s, qty=qty, avg_entry_price=price) for s in symbols], batch_size=1000
        )

    def drop_positions(self, symbols: list[str]) -> None:
        SimPosition.objects.filter(symbol__in=symbols).delete()


class FakeAlpacaVenue(Venue):
    """The fake Alpaca in its own process, for as long as the context lasts."""

    name = "alpaca (fake, HTTP)"

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.control: FakeAlpacaControl | None = None
        self._seeders: list[FakeAlpacaControl] = []

    def __enter__(self) -> FakeAlpacaVenue:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALPACA_")}
        self._log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fake_alpaca", "--host", "127.0.0.1", "--port", "0", "--seed", "1"],
            cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=self._log, text=True,
        )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 30)
        line = self.process.stdout.readline() if ready else ""
        if "listening on" not in line:
            self.__exit__(None, None, None)
            raise RuntimeError(f"the fake Alpaca did not start (see {self.log_path})")
        self.base_url = line.rsplit(" ", 1)[-1].strip()
        self.control = FakeAlpacaControl(self.base_url, timeout_s=60)
        self.control.wait_until_up()
        self.control.configure(market_open=True)  # measured at any hour: the market_closed check must not deny
        self._seeders = [FakeAlpacaControl(self.base_url, timeout_s=60) for _ in range(4)]
        return self

    def __exit__(self, *exc: object) -> None:
        for control in [self.control, *self._seeders]:
            if control is not None:
                control.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    @contextlib.contextmanager
    def broker(self) -> Iterator[BrokerClient]:
        with override_settings(
            BROKER="alpaca",
            ALPACA_API_KEY=DEFAULT_API_KEY,
            ALPACA_SECRET_KEY=DEFAULT_SECRET_KEY,
            ALPACA_BASE_URL=self.base_url,
            ALPACA_DATA_URL=self.base_url,
        ):
            registry.reset()
            try:
                yield registry.get_broker()
            finally:
                registry.reset()

    def reset(self) -> None:
        assert self.control is not None
        self.control.reset()

    def _place_all(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """place_order for each body over 4 keep-alive connections (the fake serves each on a thread)."""
        chunks = [bodies[i :: len(self._seeders)] for i in range(len(self._seeders))]

        def place(args: tuple[FakeAlpacaControl, list[dict[str, Any]]]) -> list[dict[str, Any]]:
            control, chunk = args
            return [control.place_order(**body) for body in chunk]

        with ThreadPoolExecutor(len(self._seeders)) as pool:
            placed = [order for part in pool.map(place, zip(self._seeders, chunks, strict=True)) for order in part]
        return placed

    def seed_open_orders(self, strategy: Strategy, count: int) -> list[Order]:
        """Sell limits far above the market (they never fill; sells skip the fake's buying-power scan)."""
        tag = uuid.uuid4().hex[:8]
        bodies = [
            {"client_order_id": f"fk-{tag}-{i}", "symbol": "AAPL", "side": "sell", "qty": "1", "type": "limit",
             "limit_price": "1000", "time_in_force": "gtc"}
            for i in range(count)
        ]
        placed = {o["client_order_id"]: o["id"] for o in self._place_all(bodies)}
        base = timezone.now() - dt.timedelta(minutes=5)
        orders = [
            Order(
                client_order_id=body["client_order_id"], strategy=strategy, symbol="AAPL", side="sell",
                qty=Decimal("1"), type="limit", limit_price=Decimal("1000"), time_in_force="gtc", fingerprint="bench",
                status="submitted", broker_order_id=placed[body["client_order_id"]],
                created_at=base + dt.timedelta(microseconds=i), sent_at=base + dt.timedelta(microseconds=i),
            )
            for i, body in enumerate(bodies)
        ]
        Order.objects.bulk_create(orders, batch_size=1000)
        return orders

    def fill(self, orders: list[Order]) -> None:
        assert self.control is not None
        for order in orders:
            self.control.fill(order.broker_order_id, price="1000")

    def open_count(self) -> int:
        assert self.control is not None
        return sum(1 for o in self.control.orders if o["status"] in FAKE_OPEN)

    def seed_closed_orders(self, count: int) -> None:
        """Market sells: the fake fills them on arrival."""
        self._place_all(
            [{"symbol": "AAPL", "side": "sell", "qty": "1", "type": "market", "time_in_force": "day"}] * count
        )

    def seed_positions(self, symbols: list[str], *, qty: Decimal, price: Decimal) -> None:
        assert self.control is not None
        self.control.set_prices({s: price for s in symbols})
        self._place_all(
            [{"symbol": s, "side": "buy", "qty": str(qty), "type": "market", "time_in_force": "day"} for s in symbols]
        )

    def drop_positions(self, symbols: list[str]) -> None:
        self.reset()
