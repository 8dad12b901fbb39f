"""stream_trade_updates against a websocket fake of Alpaca's trade_updates: a fill reaches the ledger without a poll.

The command runs as in production (alpaca-py's TradingStream, a real
websocket on loopback, the same service as polling) in a thread of this
test; nothing calls orders_sync. Real PostgreSQL: the consumer writes from
its own thread and connection.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from orders.management.commands.stream_trade_updates import Command
from orders.models import Fill, Order, Position
from tests.fake_alpaca.stream import FakeTradeUpdatesStream
from tests.jobs.helpers import working_book
from tests.jobs.test_stream import alpaca_update

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
WAIT_S = 30


@pytest.fixture
def feed(settings) -> Iterator[FakeTradeUpdatesStream]:
    fake = FakeTradeUpdatesStream(key="PKFAKESTREAM", secret="fake-stream-secret").start()
    settings.BROKER = "alpaca"
    settings.ALPACA_API_KEY, settings.ALPACA_SECRET_KEY = fake.key, fake.secret
    settings.ALPACA_BASE_URL = fake.base_url
    yield fake
    fake.stop()


@pytest.fixture
def consumer(feed) -> Iterator[Command]:
    command = Command()
    thread = threading.Thread(target=command.handle, daemon=True)
    thread.start()
    assert feed.listening.wait(WAIT_S), "the consumer never subscribed to trade_updates"
    yield command
    command.stream.stop()
    thread.join(WAIT_S)
    # The consumer's updates ran in asgiref's one sync thread: close the connection it kept there.
    asyncio.run(sync_to_async(connections.close_all, thread_sensitive=True)())


def _until(predicate, timeout: float = WAIT_S) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_fill_pushed_on_the_stream_reaches_the_ledger_without_a_poll(alpha, market, feed, consumer):
    (order,) = working_book(alpha, 1)

    feed.push(alpaca_update(order, event="fill", status="filled", filled_qty="1", avg="49.9"))
    latency = _until(lambda: Fill.objects.filter(order=order).exists())

    print(f"\nstream: fill to ledger in {latency * 1000:.0f} ms (one update, loopback, no poll)")
    order.refresh_from_db()
    assert order.status == "filled" and order.filled_qty == Decimal("1")
    assert Position.objects.get(strategy=alpha, symbol=order.symbol).qty == Decimal("1")
    assert order.transitions.filter(actor_label="stream:trade_updates", to_status="filled").exists()


def test_after_a_dropped_connection_the_consumer_reconnects_and_applies_the_next_update(alpha, market, feed, consumer):
    first, second = working_book(alpha, 2)
    feed.push(alpaca_update(first, event="fill", status="filled", filled_qty="1", avg="49.9"))
    _until(lambda: Fill.objects.filter(order=first).exists())

    feed.drop_connections()
    assert feed.listening.wait(WAIT_S), "the consumer did not reconnect"
    feed.push(alpaca_update(second, event="partial_fill", status="partially_filled", filled_qty="0.5", avg="49.8"))
    _until(lambda: Fill.objects.filter(order=second).exists())

    assert feed.connections == 2
    assert Order.objects.get(pk=second.pk).status == "partially_filled"


def test_stream_fill_to_ledger_latency_p50_p99(alpha, market, feed, consumer):
    """A benchmark figure, printed (never asserted): push to ledger row, one update at a time."""
    orders = working_book(alpha, 40)
    latencies = []
    for order in orders:
        feed.push(alpaca_update(order, event="fill", status="filled", filled_qty="1", avg="49.9"))
        latencies.append(_until(lambda order=order: Fill.objects.filter(order=order).exists()))

    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"\nstream fill-to-ledger over {len(latencies)} fills: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms "
          "(polling: up to ORDER_SYNC_INTERVAL_S, 5 s by default, plus the sync itself)")
    assert Fill.objects.filter(order__in=orders).count() == len(orders)
