"""Limits and throttles hold across web processes: nothing that enforces one lives in a process's memory.

Two gunicorn processes serve the same PostgreSQL test database, like two web
containers behind a load balancer. Requests for one strategy are split
between them; the counts that come out are the counts the risk policy allows,
not twice that.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from django.db import connection
from rest_framework.authtoken.models import Token

from orders.models import Order
from orders.states import OrderStatus
from risk.models import RiskLimits, Strategy
from risk.services import limit_update
from tests.api.fakes import FAKE_ALPACA_API_KEY, FAKE_ALPACA_SECRET_KEY, FAKE_SECRET_KEY, leaked_secrets
from tests.factories import UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PROJECT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _database_url() -> str:
    """The pytest-django test database, as the web processes must reach it."""
    db = connection.settings_dict
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgresql://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@dataclass
class WebProcess:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _start(index: int, log_dir: Path) -> WebProcess:
    port = _free_loopback_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "backoffice.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": FAKE_SECRET_KEY,
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": _database_url(),
        # Credentials are configured (and must never be logged), but the simulated broker serves.
        "ALPACA_API_KEY": FAKE_ALPACA_API_KEY,
        "ALPACA_SECRET_KEY": FAKE_ALPACA_SECRET_KEY,
        "BROKER": "simulated",
        # No Celery messages from these processes may reach a queue another test's worker reads.
        "CELERY_BROKER_URL": "memory://",
    }
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]  # the production shape: a shared cache
    log = log_dir / f"web-{index}.log"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "backoffice.wsgi:application",
            "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "8",
            "--access-logfile", "-", "--error-logfile", "-", "--timeout", "60",
        ],
        cwd=PROJECT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return WebProcess(port=port, process=process, log=log)


def _wait_until_serving(web: WebProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if web.process.poll() is not None:
            pytest.fail(f"web process on {web.port} exited {web.process.returncode}: {web.log.read_text()[-2000:]}")
        try:
            if requests.get(f"{web.url}/v1/health", timeout=2).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or its first request (loading the app) is slow on a busy machine
        time.sleep(0.2)
    pytest.fail(f"web process on {web.port} did not serve within {START_TIMEOUT_S}s: {web.log.read_text()[-2000:]}")


@pytest.fixture
def two_web_processes(on_postgres, market, tmp_path) -> Iterator[list[WebProcess]]:
    webs = [_start(index, tmp_path) for index in range(2)]
    try:
        for web in webs:
            _wait_until_serving(web)
        yield webs
    finally:
        # Stopped before pytest-django flushes the database, so no connection of theirs is left open.
        for web in webs:
            web.process.terminate()
        for web in webs:
            try:
                web.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                web.process.kill()
                web.process.wait()
    for web in webs:
        output = web.log.read_text()
        assert "Traceback" not in output, output[-3000:]
        assert leaked_secrets(output) == [], f"{web.log.name} logs a secret"


def _submit(web: WebProcess, token: str, **fields: Any) -> requests.Response:
    body = {
        "client_order_id": f"mp-{uuid.uuid4().hex}",
        "strategy": "alpha",
        "symbol": "AAPL",
        "side": "buy",
        "qty": "1",
        "type": "market",
        **fields,
    }
    return requests.post(f"{web.url}/v1/orders", json=body, headers={"Authorization": f"Token {token}"}, timeout=60)


def _all_at_once(count: int, work: Any) -> list[Any]:
    """Run ``work(index)`` in ``count`` threads released together."""
    barrier = threading.Barrier(count)

    def run(index: int) -> Any:
        barrier.wait()
        return work(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def _violation_codes(response: requests.Response) -> list[str]:
    return [v["code"] for v in response.json().get("violations", [])]


def test_the_per_minute_throttle_holds_across_two_web_processes(two_web_processes, alice) -> None:
    Strategy.objects.filter(slug="alpha").update(max_orders_per_minute=10, max_orders_per_second=1000)
    # 40 identical orders on purpose: the duplicate-order check is not what this test races.
    RiskLimits.objects.filter(pk=1).update(duplicate_order_max=1000)
    token = Token.objects.create(user=alice).key
    requests_sent = 40

    responses = _all_at_once(requests_sent, lambda i: _submit(two_web_processes[i % 2], token))

    codes = [r.status_code for r in responses]
    assert codes.count(201) == 10, codes
    assert codes.count(400) == requests_sent - 10, codes
    assert all(_violation_codes(r) == ["rate_limited"] for r in responses if r.status_code == 400)
    # (Which process accepted which order is up to the race; each of them answered half the requests.)
    alpha_orders = Order.objects.filter(strategy__slug="alpha")
    assert alpha_orders.exclude(status=OrderStatus.DENIED).count() == 10
    assert alpha_orders.filter(status=OrderStatus.DENIED).count() == requests_sent - 10


def test_two_orders_that_fit_the_room_only_one_at_a_time_sent_to_two_processes_at_once(
    two_web_processes, alice
) -> None:
    officer = UserFactory(username="limits-officer", is_staff=True, is_superuser=True)
    # Equity $100,000 (the simulated account); capital deployed limit 30%: $30,000 of room.
    # (One symbol may take all of it: the concentration limit is not what this test races.)
    limit_update(
        acting_user=officer,
        changes={"max_capital_deployed_pct": "30", "max_symbol_concentration_pct": "100"},
        reason="multi-process race",
    )
    # The message throttle counts denied orders too (FIA): out of the way, this test is about the capital room.
    Strategy.objects.filter(slug="alpha").update(max_orders_per_second=1000, max_orders_per_minute=1000)
    token = Token.objects.create(user=alice).key
    room = Decimal("30000")
    for round_number in range(3):
        # Each order takes 60% of what is left: either fits, both together do not.
        qty = int(room * Decimal("0.6") / 100)

        responses = _all_at_once(
            2, lambda i, qty=qty: _submit(two_web_processes[i], token, type="limit", limit_price="100", qty=str(qty))
        )

        codes = sorted(r.status_code for r in responses)
        assert codes == [201, 400], f"round {round_number}: {codes} {[r.text[:200] for r in responses]}"
        denied = next(r for r in responses if r.status_code == 400)
        assert _violation_codes(denied) == ["max_capital_deployed"], denied.text
        room -= qty * 100
