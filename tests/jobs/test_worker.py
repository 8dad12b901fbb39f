"""The periodic jobs on a real Celery worker (a subprocess) consuming from Redis, on PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum

from backoffice.celery import app
from brokers import tasks as broker_tasks
from brokers.models import SimOrder
from core.models import JobRun
from orders import tasks
from orders.models import Fill, Order, Position
from risk.tasks import evaluate_risk
from tests.conftest import order_body
from tests.jobs.helpers import working_book

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def wait_for(predicate: Callable[[], bool], *, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def start_worker(on_postgres) -> Iterator[Callable[[], subprocess.Popen]]:
    """Start `celery worker` processes on the test database; all are stopped afterwards."""
    app.control.purge()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgresql://{connection.settings_dict['USER'] or 'postgres'}@"
        f"{connection.settings_dict['HOST'] or '127.0.0.1'}:{connection.settings_dict['PORT'] or 5432}/"
        f"{connection.settings_dict['NAME']}",
    }
    workers: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "backoffice", "worker", "--pool=threads", "--concurrency=2",
             "--without-gossip", "--without-mingle", "--loglevel=WARNING", f"--hostname=test{len(workers)}@%h"],
            cwd=ROOT, env=env, start_new_session=True,
        )
        workers.append(worker)
        wait_for(lambda: bool(app.control.ping(timeout=0.5)), timeout=60, what="worker to answer ping")
        return worker

    yield start
    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)


def test_each_task_runs_end_to_end_on_the_worker(start_worker, alice_api, market):
    start_worker()
    response = alice_api.post("/v1/orders", order_body(qty="3", client_order_id="w-e2e"), format="json")
    assert response.json()["status"] == "submitted"

    broker_tasks.simulated_market_tick.delay()
    wait_for(lambda: SimOrder.objects.get(client_order_id="w-e2e").status == "filled", what="the simulated fill")
    tasks.sync_orders.delay()
    wait_for(lambda: Order.objects.get(client_order_id="w-e2e").status == "filled", what="the order to sync")
    evaluate_risk.delay()
    tasks.reconcile_positions.delay()
    wait_for(
        lambda: (
            JobRun.objects.filter(
                name__in=["order_sync", "risk_eval", "reconcile"], last_succeeded_at__isnull=False
            ).count()
            == 3
        ),
        what="every job to succeed",
    )
    assert Position.objects.get(symbol="AAPL").qty == Decimal("3")


def _ledger_is_consistent() -> None:
    """Nothing half-applied: every order's filled qty equals its fills, every position equals its fills."""
    for order in Order.objects.filter(fills__isnull=False).distinct():
        assert order.filled_qty == order.fills.aggregate(total=Sum("qty"))["total"], order.client_order_id
    for position in Position.objects.all():
        filled = Fill.objects.filter(strategy=position.strategy, symbol=position.symbol).aggregate(total=Sum("qty"))[
            "total"
        ]
        assert position.qty == (filled or 0), position.symbol


def test_a_worker_killed_mid_sync_leaves_nothing_half_applied_and_the_next_run_converges(start_worker, alpha, market):
    working_book(alpha, 1500)
    SimOrder.objects.update(status="filled", filled_qty=Decimal("1"), filled_avg_price=Decimal("49"))
    worker = start_worker()

    tasks.sync_orders.delay()
    wait_for(lambda: Fill.objects.count() >= 50, what="the sync to be under way")
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)

    applied = Fill.objects.count()
    assert 0 < applied < 1500, "the kill should land mid-sync"
    _ledger_is_consistent()
    # The dead worker's lock expires; time is moved on rather than waited for.
    JobRun.objects.filter(name="order_sync").update(locked_until=None)
    start_worker()
    tasks.sync_orders.delay()
    wait_for(lambda: Order.objects.filter(status="filled").count() == 1500, timeout=120, what="convergence")
    _ledger_is_consistent()
    assert Fill.objects.count() == 1500


def test_two_beat_ticks_at_once_run_the_sync_once(alpha, market, on_postgres):
    working_book(alpha, 1500)
    SimOrder.objects.update(status="filled", filled_qty=Decimal("1"), filled_avg_price=Decimal("49"))
    barrier = threading.Barrier(2)
    outcomes: list = []

    def tick() -> None:
        barrier.wait()
        try:
            outcomes.append(tasks.sync_orders.apply().get())
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(map(str, outcomes)).count("busy") == 1
    assert JobRun.objects.get(name="order_sync").runs == 1
    assert Fill.objects.count() == 1500
