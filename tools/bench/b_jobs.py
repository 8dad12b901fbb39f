"""The periodic jobs and the kill switch against a broker: calls, time, peak memory."""

from __future__ import annotations

import datetime as dt
import gc
import math
import time
import tracemalloc
from decimal import Decimal
from typing import Any

from django.utils import timezone

from brokers.base import BrokerClient
from orders import services
from orders.models import Order, Position
from orders.states import WORKING, OrderStatus
from risk import services as risk_services
from risk.models import KillSwitch, KillSwitchSource, Strategy
from tools.bench import fixtures
from tools.bench.venues import Venue

SLUG = "bench-jobs"
PAGE = 500


def strategy() -> Strategy:
    return fixtures.fast_strategy(SLUG)


def call_budget(open_orders: int) -> int:
    return math.ceil(open_orders / PAGE) + 2


def _ops(broker: BrokerClient, before: dict[str, int]) -> dict[str, int]:
    after = broker.counter.by_operation
    return {op: after[op] - before.get(op, 0) for op in after if after[op] - before.get(op, 0)}


def _fresh(venue: Venue) -> None:
    fixtures.clear_book()
    venue.reset()


def sync_cycle(venue: Venue, broker: BrokerClient, strat: Strategy, open_orders: int) -> dict[str, Any]:
    """``open_orders`` working here and at the broker, 5 of them filled at the broker meanwhile."""
    _fresh(venue)
    seeded_at = time.perf_counter()
    orders = venue.seed_open_orders(strat, open_orders)
    filled = min(5, open_orders)
    venue.fill(orders[:filled])
    seed_s = time.perf_counter() - seeded_at

    before = dict(broker.counter.by_operation)
    started = time.perf_counter()
    first = services.orders_sync(label="bench:sync")
    first_s = time.perf_counter() - started
    operations = _ops(broker, before)

    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        traced = services.orders_sync(label="bench:sync")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    started = time.perf_counter()
    services.orders_sync(label="bench:sync")  # steady state: nothing changed since the last cycle
    steady_s = time.perf_counter() - started
    result = {
        "open_orders": open_orders,
        "filled_at_broker": filled,
        "calls": first.broker_calls,
        "operations": operations,
        "budget": call_budget(open_orders),
        "checked": first.checked,
        "changed": first.changed,
        "fills": first.fills,
        "cycle_ms": first_s * 1000,
        "steady_cycle_ms": steady_s * 1000,
        "peak_bytes": peak,
        "traced_checked": traced.checked,
        "traced_calls": traced.broker_calls,
        "seed_s": seed_s,
        "ok": first.checked == open_orders and first.fills == filled,
    }
    fixtures.clear_book()
    return result


def sync_with_closed_history(
    venue: Venue, broker: BrokerClient, strat: Strategy, open_orders: int, closed: int
) -> dict[str, Any]:
    """``open_orders`` working, the oldest sent a day ago, and ``closed`` other orders closed at the broker since.

    A GTC order a day old is ordinary; so is a busy account closing thousands
    of orders a day (other strategies, other systems on the same account).
    """
    _fresh(venue)
    orders = venue.seed_open_orders(strat, open_orders)
    day_ago = timezone.now() - dt.timedelta(days=1)
    Order.objects.filter(pk=orders[0].pk).update(created_at=day_ago, sent_at=day_ago)
    venue.seed_closed_orders(closed)
    before = dict(broker.counter.by_operation)
    started = time.perf_counter()
    result = services.orders_sync(label="bench:sync")
    elapsed = time.perf_counter() - started
    fixtures.clear_book()
    return {
        "open_orders": open_orders,
        "closed_since": closed,
        "calls": result.broker_calls,
        "operations": _ops(broker, before),
        "budget": call_budget(open_orders),
        "cycle_ms": elapsed * 1000,
        "checked": result.checked,
    }


def kill_switch(venue: Venue, broker: BrokerClient, strat: Strategy, working: int, *, scope: str) -> dict[str, Any]:
    """Activate (global or the strategy's) with ``working`` orders; then one sync cycle confirms the cancels."""
    _fresh(venue)
    venue.seed_open_orders(strat, working)
    officer = fixtures.officer()
    target = None if scope == "global" else strat
    before_ops = dict(broker.counter.by_operation)
    before = broker.counter.calls
    # Bench-side instrumentation of this process's client object (no product code is changed):
    # when did the first cancel leave for the broker?
    first_cancel: list[float] = []
    originals = {name: getattr(broker, name) for name in ("cancel_all_orders", "cancel_order")}

    def timed(name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            if not first_cancel:
                first_cancel.append(time.perf_counter())
            return originals[name](*args, **kwargs)

        return call

    for name in originals:
        setattr(broker, name, timed(name))
    started = time.perf_counter()
    risk_services.killswitch_activate(
        acting_user=officer, strategy=target, reason="benchmark", source=KillSwitchSource.API
    )
    activation_s = time.perf_counter() - started
    for name in originals:
        delattr(broker, name)  # back to the class's methods
    calls = broker.counter.calls - before
    operations = _ops(broker, before_ops)
    open_at_broker = venue.open_count()
    pending_cancel = Order.objects.filter(strategy=strat, status=OrderStatus.PENDING_CANCEL).count()
    sync_started = time.perf_counter()
    sync = services.orders_sync(label="bench:sync")
    sync_s = time.perf_counter() - sync_started
    still_working = Order.objects.filter(strategy=strat, status__in=WORKING).count()
    cancelled = Order.objects.filter(strategy=strat, status=OrderStatus.CANCELLED).count()
    try:
        risk_services.killswitch_reset(acting_user=officer, strategy=target, reason="benchmark done")
    finally:
        KillSwitch.objects.filter(active=True).update(active=False)  # never leave a run halted
    fixtures.clear_book()
    return {
        "scope": scope,
        "working": working,
        "calls": calls,
        "operations": operations,
        "activation_ms": activation_s * 1000,
        "first_cancel_sent_ms": (first_cancel[0] - started) * 1000 if first_cancel else None,
        "open_at_broker_after_activation": open_at_broker,
        "pending_cancel_after_activation": pending_cancel,
        "sync_ms": sync_s * 1000,
        "sync_calls": sync.broker_calls,
        "all_cancelled_ms": (activation_s + sync_s) * 1000,
        "still_working_after_sync": still_working,
        "cancelled_after_sync": cancelled,
    }


def reconcile(venue: Venue, broker: BrokerClient, strat: Strategy, positions: int, *, breaks: int) -> dict[str, Any]:
    """``positions`` symbols held at the broker and in the ledger; ``breaks`` of them disagree."""
    _fresh(venue)
    symbols = [f"RC{i:04d}" for i in range(positions)]
    Position.objects.filter(symbol__startswith="RC").delete()
    venue.drop_positions(symbols)
    venue.seed_positions(symbols, qty=Decimal("1"), price=Decimal("10"))
    Position.objects.bulk_create(
        [Position(strategy=strat, symbol=s, qty=Decimal("1"), avg_price=Decimal("10")) for s in symbols],
        batch_size=1000,
    )
    if breaks:
        Position.objects.filter(symbol__in=symbols[:breaks]).update(qty=Decimal("2"))
    before_ops = dict(broker.counter.by_operation)
    before = broker.counter.calls
    started = time.perf_counter()
    result = services.positions_reconcile(label="bench:reconcile")
    elapsed = time.perf_counter() - started
    out = {
        "positions": positions,
        "breaks_seeded": breaks,
        "breaks_found": len(result.breaks),
        "positions_checked": result.run.positions_checked,
        "calls": broker.counter.calls - before,
        "operations": _ops(broker, before_ops),
        "ms": elapsed * 1000,
    }
    Position.objects.filter(symbol__in=symbols).delete()
    venue.drop_positions(symbols)
    return out
