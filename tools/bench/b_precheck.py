"""Pre-trade check cost against history size, and the pure check's throughput.

Two timings per history size, both in this process against PostgreSQL:

* the check: exactly what order_submit does inside the per-account lock up
  to the INSERT: lock RiskState, read the strategy, build_snapshot, evaluate;
  in a transaction that is then committed with nothing written;
* the whole order_submit (validate, prices, lock, check, INSERT, transition,
  send to the simulated broker), with a small market sell that passes.

The book is the same at both sizes: 20 working orders and 5 open positions.
"""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from brokers.registry import get_market_data
from orders import selectors, services
from orders.models import Order, Position
from risk import checks
from risk.models import KillSwitch, RiskLimits, RiskState, Strategy
from tests.jobs.helpers import working_book
from tools.bench import fixtures
from tools.bench.stats import median, ms, percentile

SLUG = "bench-precheck"
PRICES = {"AAPL": "190.00", "MSFT": "420.00", "SPY": "560.00", "NVDA": "120.00", "TSLA": "250.00", "AMZN": "185.00"}
INTENT = checks.OrderIntent(strategy=SLUG, symbol="AAPL", side="sell", qty=Decimal("0.01"), type="market")


def strategy() -> Strategy:
    return fixtures.fast_strategy(SLUG)


def prepare_book(strat: Strategy) -> None:
    """The same small working book and positions at every history size."""
    fixtures.clear_book()
    Position.objects.filter(strategy=strat).delete()
    working_book(strat, 20, symbol="MSFT", limit_price="410")
    for symbol in ("SPY", "NVDA", "TSLA", "AMZN", "MSFT"):
        Position.objects.create(strategy=strat, symbol=symbol, qty=Decimal("3"), avg_price=Decimal(PRICES[symbol]))
    fixtures.fresh_prices(PRICES)


def cleanup(strat: Strategy) -> None:
    fixtures.clear_book()
    Position.objects.filter(strategy=strat).delete()


def _prices() -> dict:
    # What order_submit fetches before taking the lock.
    return get_market_data().latest_trades(selectors.symbols_for_snapshot(INTENT.symbol))


def _check_once(strat: Strategy, prices: dict) -> tuple[list[checks.Violation], checks.RiskSnapshot]:
    with transaction.atomic():
        # As order_submit: the lock statement, then the snapshot in one statement.
        list(RiskState.objects.select_for_update().filter(pk=1).values_list("pk", flat=True))
        snapshot = selectors.build_snapshot(strategy_id=strat.pk, intent=INTENT, prices=prices, now=timezone.now())
        return checks.evaluate(INTENT, snapshot), snapshot


def _control_once(strat: Strategy) -> None:
    """The control: the check's statements that read neither orders nor fills (history-independent).

    Timed in the same rounds as the check, so that a stage during which the
    shared machine is slower shows up in the control too, and can be divided out.
    """
    with transaction.atomic():
        RiskState.current()
        RiskState.objects.select_for_update().get(pk=1)
        Strategy.objects.get(pk=strat.pk)
        RiskLimits.current()
        list(
            KillSwitch.objects.filter(Q(strategy__isnull=True) | Q(strategy=strat)).values_list("strategy_id", "active")
        )
        list(Position.objects.exclude(qty=0).values("strategy_id", "symbol", "qty", "avg_price"))


def _interleaved(measured: Any, control: Any, repeats: int, block: int = 10) -> tuple[list[float], list[float]]:
    """``repeats`` timings of ``measured`` and as many of ``control``, alternating in blocks."""
    times: list[float] = []
    controls: list[float] = []
    while len(times) < repeats:
        for _ in range(block):
            started = time.perf_counter()
            measured()
            times.append(time.perf_counter() - started)
        for _ in range(block):
            started = time.perf_counter()
            control()
            controls.append(time.perf_counter() - started)
    return times, controls


def measure_check(strat: Strategy, repeats: int) -> dict[str, Any]:
    prices = _prices()
    for _ in range(5):  # warm the connection and the plans
        _check_once(strat, prices)
        _control_once(strat)
    with CaptureQueriesContext(connection) as capture:
        violations, _ = _check_once(strat, prices)
    queries = list(capture.captured_queries)
    times, controls = _interleaved(lambda: _check_once(strat, prices), lambda: _control_once(strat), repeats)
    return {
        "control_p10_ms": ms(percentile(controls, 10)),
        "p10_ms": ms(percentile(times, 10)),
        "median_ms": ms(median(times)),
        "p90_ms": ms(percentile(times, 90)),
        "repeats": repeats,
        "queries": len(queries),
        "violations": [v.code for v in violations],
    }


def measure_submit(strat: Strategy, user: Any, repeats: int) -> dict[str, Any]:
    def submit() -> str:
        request = services.OrderRequest(
            strategy=strat,
            symbol="AAPL",
            side="sell",
            qty=Decimal("0.01"),
            type="market",
            client_order_id=f"bench-pc-{uuid.uuid4().hex}",
        )
        return services.order_submit(acting_user=user, request=request).order.status

    for _ in range(3):
        submit()
    with CaptureQueriesContext(connection) as capture:
        submit()
    queries = list(capture.captured_queries)
    statuses: dict[str, int] = {}

    def counted() -> None:
        status = submit()
        statuses[status] = statuses.get(status, 0) + 1

    times, controls = _interleaved(counted, lambda: _control_once(strat), repeats, block=5)
    # The submitted orders stay working at the venue; drop them so the book is the same next time.
    Order.objects.filter(client_order_id__startswith="bench-pc-", status="submitted").update(status="cancelled")
    return {
        "control_p10_ms": ms(percentile(controls, 10)),
        "p10_ms": ms(percentile(times, 10)),
        "median_ms": ms(median(times)),
        "p90_ms": ms(percentile(times, 90)),
        "repeats": repeats,
        "queries": len(queries),
        "statuses": statuses,
    }


def evaluate_throughput(strat: Strategy, seconds: float) -> dict[str, Any]:
    """evaluate() alone, in a loop: calls per second (no database, no broker)."""
    violations, snapshot = _check_once(strat, _prices())
    calls = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while True:
        for _ in range(200):
            checks.evaluate(INTENT, snapshot)
        calls += 200
        now = time.perf_counter()
        if now >= deadline:
            break
    elapsed = now - started
    denied = checks.OrderIntent(
        strategy=SLUG, symbol="AAPL", side="buy", qty=Decimal("1000"), type="limit", limit_price=Decimal("250")
    )
    denied_calls = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds / 2:
        for _ in range(200):
            checks.evaluate(denied, snapshot)
        denied_calls += 200
    denied_elapsed = time.perf_counter() - started
    return {
        "passing_per_s": calls / elapsed,
        "denied_per_s": denied_calls / denied_elapsed,
        "denied_codes": [v.code for v in checks.evaluate(denied, snapshot)],
        "passing_violations": [v.code for v in violations],
    }
