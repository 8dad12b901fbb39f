"""Plumbing for the intent-reconciliation tests (adr/0011): a faulty Alpaca, sync cycles, a process killed at a commit.

The broker is the fake Alpaca (tests/fake_alpaca) over real HTTP, driven by
the real alpaca-py through the project's adapter, so every fault reaches the
services as the adapter's own exception. "Killed right after the commit" is a
real OS process (``python -c``, the project's settings, the test database)
SIGKILLed while it waits on the broker call that follows the commit; the fake
holds that call unprocessed (the ``stall`` fault), so the decision is
committed and nothing reached the broker.
"""

from __future__ import annotations

import fnmatch
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from brokers import registry
from orders import services
from tests.e2e.stack import database_url_for_subprocesses
from tests.fake_alpaca.control import FakeAlpacaControl
from tests.fake_alpaca.faults import FaultRule
from tests.fake_alpaca.server import DEFAULT_API_KEY, DEFAULT_SECRET_KEY, FakeAlpacaServer, RecordedRequest

PROJECT = Path(__file__).resolve().parents[1]
# Alpaca's open status words (the fake's own split): an order in one of these can still fill.
OPEN = {"new", "partially_filled", "accepted", "pending_new", "accepted_for_bidding", "pending_cancel", "held"}
# A sync interval for the tests: beat's cycles are this far apart, and the cancel back-off never
# waits longer (CANCEL_RETRY_MAX_S defaults to the sync interval).
CYCLE_S = 0.2


@pytest.fixture
def alpaca(settings) -> Iterator[FakeAlpacaServer]:
    """The fake Alpaca, manual fills (orders work until told), the project pointed at it."""
    with FakeAlpacaServer(seed=12, api_key=DEFAULT_API_KEY, secret_key=DEFAULT_SECRET_KEY) as fake:
        settings.BROKER = "alpaca"
        settings.ALPACA_API_KEY, settings.ALPACA_SECRET_KEY = DEFAULT_API_KEY, DEFAULT_SECRET_KEY
        settings.ALPACA_BASE_URL = settings.ALPACA_DATA_URL = fake.base_url
        settings.ALPACA_TIMEOUT_S = 0.5
        settings.UNKNOWN_ORDER_GRACE_S = 0
        settings.CANCEL_RETRY_MAX_S = CYCLE_S
        settings.KILL_SWITCH_FLATTEN = False
        registry.reset()
        for symbol, price in (("AAPL", "100.00"), ("MSFT", "400.00"), ("SPY", "500.00")):
            fake.set_price(symbol, price)
        fake.configure(fill_mode="manual", market_open=True)  # whatever the hour: market_closed is not under test
        yield fake
        registry.reset()


def sync_cycles(count: int) -> None:
    """``count`` status-sync cycles, one sync interval apart, as beat runs them."""
    for _ in range(count):
        time.sleep(CYCLE_S)
        services.orders_sync()


def broker_status(fake: FakeAlpacaServer, client_order_id: str) -> str | None:
    order = fake.order(client_order_id=client_order_id)
    return order["status"] if order else None


def open_at_broker(fake: FakeAlpacaServer, client_order_ids: list[str] | None = None) -> list[str]:
    """The client_order_ids of orders still open at the broker (all of them, or among those named)."""
    return [o["client_order_id"] for o in fake.orders
            if o["status"] in OPEN and (client_order_ids is None or o["client_order_id"] in client_order_ids)]


def requests_to(fake: FakeAlpacaServer | FakeAlpacaControl, method: str, pattern: str) -> int:
    """How many requests the fake received at ``method pattern`` (in-process fake or its control API)."""
    records = [(r.method, r.path) if isinstance(r, RecordedRequest) else (r["method"], r["path"])
               for r in fake.requests]
    return sum(1 for m, path in records if m == method and fnmatch.fnmatchcase(path, pattern))


def wait_until_rate_limit_resets(reset_at_unix: float) -> None:
    """The broker answers again once its X-RateLimit-Reset has passed."""
    time.sleep(max(0.0, reset_at_unix - time.time()) + 0.05)


def killed_right_after_the_commit(
    fake: FakeAlpacaServer | FakeAlpacaControl, code: str, *, method: str, path: str | list[str], log_dir: Path,
    timeout_s: float = 60.0, env: dict[str, str] | None = None,
) -> str:
    """Run ``code`` (after django.setup()) in its own process; SIGKILL it once it calls the broker at
    ``method path`` (any of the paths), the call that follows the commit. The fake holds that call
    unprocessed (and forgets every other fault rule afterwards).

    ``env``: the process's environment (default: this test's settings, pointed at ``fake``).
    Returns the process's output, for the assertion messages.
    """
    paths = [path] if isinstance(path, str) else path
    rules = [fake.set_fault("stall", method=method, path=one, count=1, seconds=timeout_s) for one in paths]
    rule_ids = [rule.id if isinstance(rule, FaultRule) else int(rule["id"]) for rule in rules]

    def calls() -> int:
        return fake.faults_fired(rule_ids)

    before = calls()
    base_url = fake.base_url
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url_for_subprocesses(),
        "BROKER": "alpaca",
        "TRADING_MODE": "paper",
        "ALPACA_API_KEY": DEFAULT_API_KEY,
        "ALPACA_SECRET_KEY": DEFAULT_SECRET_KEY,
        "ALPACA_BASE_URL": base_url,
        "ALPACA_DATA_URL": base_url,
        "KILL_SWITCH_FLATTEN": "true" if django_settings.KILL_SWITCH_FLATTEN else "false",
        # The process's attempt backs off as this test's sync interval says (its claim counts as a failure).
        "CANCEL_RETRY_MAX_S": str(django_settings.CANCEL_RETRY_MAX_S),
        "LOG_LEVEL": "WARNING",
        **(env or {}),
        "ALPACA_TIMEOUT_S": str(timeout_s),  # blocked in the stalled call, not timed out, when killed
        # The start-up check wants the horizon to cover 3 timeouts; this process resolves nothing.
        "UNKNOWN_ORDER_HORIZON_S": str(int(3 * timeout_s)),
    }
    script = "import django\ndjango.setup()\n" + textwrap.dedent(code)
    log = log_dir / "crashed-process.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-c", script], cwd=PROJECT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        try:
            while calls() == before:
                if process.poll() is not None:
                    raise AssertionError(f"the process ended before calling the broker:\n{log.read_text()}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"the process never called {method} {path}:\n{log.read_text()}")
                time.sleep(0.01)
            process.send_signal(signal.SIGKILL)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL, log.read_text()
    fake.clear_faults()
    return log.read_text()
