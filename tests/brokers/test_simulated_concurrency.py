"""Two writers at the venue at once: a worker's tick against another tick, two submits of one id.

The database's locks, not the test's transaction, must decide who waits:

* SQLite (the embedded default): two OS processes, as web and worker are, on a
  file copy of the test database opened with the project's settings (WAL,
  ``BEGIN IMMEDIATE``, a busy timeout). Threads cannot stand in for them here:
  pytest-django's SQLite test database is in memory with a shared cache,
  whose table locks fail at once ("database table is locked") instead of
  waiting out the busy timeout.
* PostgreSQL: threads, each on its own connection, so ``SELECT ... FOR UPDATE``
  is what serialises them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.conf import settings
from django.db import connection, connections

from brokers import simulated
from brokers.exceptions import BrokerRejected
from brokers.models import SimOrder
from brokers.simulated import SimulatedBroker
from tests.brokers.factories import SimAssetFactory, order_request

T = TypeVar("T")
ORDER_COUNT = 60  # enough working orders that two ticks' work overlaps in time
RACED_CLIENT_ORDER_ID = "raced-1"


# --- What each concurrent writer does, and what it reports -------------------------


def _tick() -> dict[str, Any]:
    report = simulated.tick()
    return {
        "tick": report.tick_number,
        "fills": [[fill.broker_order_id, str(fill.qty), str(fill.price)] for fill in report.fills],
    }


def _submit_raced_order(symbol: str) -> dict[str, Any]:
    try:
        order = SimulatedBroker().submit_order(order_request(symbol, client_order_id=RACED_CLIENT_ORDER_ID))
    except BrokerRejected as rejected:
        return {"rejected": rejected.code}
    return {"accepted": order.broker_order_id}


# --- Running writers at once: threads, or OS processes -------------------------------


def _in_threads(*calls: Callable[[], T]) -> list[T]:
    """Each call on its own thread and connection, released together by a barrier."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], T]) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes[index] = call()
        except BaseException as exc:  # handed back to the test thread below
            outcomes[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index, call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert not failures, failures
    return outcomes


def process_main() -> None:
    """Entry point of one writer process: set up, say ready, wait for go, act, print JSON."""
    action, argument, ready, go = sys.argv[1:5]
    Path(ready).touch()
    deadline = time.monotonic() + 30
    while not Path(go).exists() and time.monotonic() < deadline:
        time.sleep(0.001)
    outcome = _tick() if action == "tick" else _submit_raced_order(argument)
    print(json.dumps(outcome))


def _in_processes(database: Path, tmp_path: Path, *actions: tuple[str, str]) -> list[dict[str, Any]]:
    """Each action in its own OS process on the ``database`` file, released together."""
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "DJANGO_SETTINGS_MODULE": "tests.settings",
    }
    go = tmp_path / "go"
    script = (
        "import django; django.setup(); "
        "from tests.brokers.test_simulated_concurrency import process_main; process_main()"
    )
    workers = []
    for index, (action, argument) in enumerate(actions):
        ready = tmp_path / f"ready-{index}"
        command = [sys.executable, "-c", script, action, argument, str(ready), str(go)]
        process = subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        workers.append((process, ready))
    deadline = time.monotonic() + 60
    while not all(ready.exists() for _, ready in workers) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    outcomes = []
    for process, _ in workers:
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        outcomes.append(json.loads(stdout.strip().splitlines()[-1]))
    return outcomes


def _file_copy_of_the_test_database(tmp_path: Path) -> Path:
    database = tmp_path / "venue.sqlite3"
    with connection.cursor() as cursor:
        cursor.execute("VACUUM INTO %s", [str(database)])
    return database


def _read_file_database(database: Path, sql: str) -> list[tuple[Any, ...]]:
    import sqlite3

    with sqlite3.connect(database) as reader:
        return reader.execute(sql).fetchall()


# --- Two ticks at once --------------------------------------------------------------


def _assert_each_order_filled_once(outcomes: list[dict[str, Any]], broker_order_ids: list[str]) -> None:
    # Two distinct, consecutive ticks: neither was lost, neither saw the other half-done.
    first, second = sorted(outcome["tick"] for outcome in outcomes)
    assert second == first + 1
    fills = [fill for outcome in outcomes for fill in outcome["fills"]]
    assert sorted(fill[0] for fill in fills) == sorted(broker_order_ids)


def _working_orders() -> tuple[SimulatedBroker, list[str]]:
    broker = SimulatedBroker()
    asset = SimAssetFactory()
    orders = [broker.submit_order(order_request(asset.symbol, qty="1")) for _ in range(ORDER_COUNT)]
    return broker, [order.broker_order_id for order in orders]


@pytest.mark.django_db(transaction=True)
def test_two_ticks_in_two_processes_fill_each_order_once_on_sqlite(tmp_path: Path) -> None:
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite variant; PostgreSQL runs the thread variant below")
    _, broker_order_ids = _working_orders()
    database = _file_copy_of_the_test_database(tmp_path)

    outcomes = _in_processes(database, tmp_path, ("tick", ""), ("tick", ""))

    _assert_each_order_filled_once(outcomes, broker_order_ids)
    assert _read_file_database(database, "SELECT qty FROM brokers_simposition") == [(ORDER_COUNT,)]
    assert _read_file_database(database, "SELECT DISTINCT status FROM brokers_simorder") == [("filled",)]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_ticks_in_two_threads_fill_each_order_once_on_postgresql(on_postgres: None) -> None:
    broker, broker_order_ids = _working_orders()
    cash_before = broker.get_account().cash

    outcomes = _in_threads(_tick, _tick)

    _assert_each_order_filled_once(outcomes, broker_order_ids)
    [position] = broker.list_positions()
    assert position.qty == Decimal(ORDER_COUNT)
    spent = sum(
        (Decimal(price) * Decimal(qty) for outcome in outcomes for _, qty, price in outcome["fills"]), Decimal(0)
    )
    assert broker.get_account().cash == cash_before - spent
    assert set(SimOrder.objects.values_list("status", flat=True)) == {"filled"}


# --- Two submits of one client_order_id at once -------------------------------------


def _assert_one_accepted_one_duplicate(outcomes: list[dict[str, Any]]) -> None:
    assert sorted(outcomes, key=lambda outcome: "rejected" in outcome)[1] == {"rejected": 40010001}, outcomes
    assert sum("accepted" in outcome for outcome in outcomes) == 1, outcomes


@pytest.mark.django_db(transaction=True)
def test_two_submits_of_one_client_order_id_in_two_processes_create_one_order_on_sqlite(tmp_path: Path) -> None:
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite variant; PostgreSQL runs the thread variant below")
    symbol = SimAssetFactory().symbol
    database = _file_copy_of_the_test_database(tmp_path)

    outcomes = _in_processes(database, tmp_path, ("submit", symbol), ("submit", symbol))

    _assert_one_accepted_one_duplicate(outcomes)
    rows = _read_file_database(
        database, f"SELECT count(*) FROM brokers_simorder WHERE client_order_id = '{RACED_CLIENT_ORDER_ID}'"
    )
    assert rows == [(1,)]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_submits_of_one_client_order_id_in_two_threads_create_one_order_on_postgresql(on_postgres: None) -> None:
    symbol = SimAssetFactory().symbol

    outcomes = _in_threads(lambda: _submit_raced_order(symbol), lambda: _submit_raced_order(symbol))

    _assert_one_accepted_one_duplicate(outcomes)
    assert SimOrder.objects.filter(client_order_id=RACED_CLIENT_ORDER_ID).count() == 1
