"""GET /v1/events while orders change concurrently: real threads, real PostgreSQL transactions.

The claim: a client that stores the `next` cursor misses nothing and sees
nothing twice, even when a transaction that took a lower event id commits
after one that took a higher id.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from orders import services
from orders.models import Order, OrderEvent
from orders.services import transitions
from risk.models import RiskLimits, Strategy
from tests.conftest import NO_CEILING, set_throttle_rates, token_client

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

DEADLINE_S = 60  # the watermark is cluster-wide: other databases' transactions can hold it back for a while


class Feed:
    """A client of /v1/events that stores its cursor, as the contract tells it to."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.cursor: str | None = None
        self.seen: list[int] = []

    def poll(self, wait: int = 0) -> list[dict]:
        query: dict[str, Any] = {"limit": "50"}
        if self.cursor:
            query["after"] = self.cursor
        if wait:
            query["wait"] = str(wait)
        response = self.api.get("/v1/events", query)
        assert response.status_code == 200, response.content
        body = response.json()
        self.cursor = body["next"]
        self.seen += [e["id"] for e in body["results"]]
        return body["results"]

    def drain_until(self, expected: set[int]) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while not expected <= set(self.seen) and time.monotonic() < deadline:
            self.poll(wait=1)


def _alpha_event_ids() -> set[int]:
    return set(OrderEvent.objects.filter(strategy__slug="alpha").values_list("id", flat=True))


def _limit_order(alice: Any, strategy: Strategy, client_order_id: str) -> Order:
    request = services.OrderRequest(
        strategy=strategy, symbol="AAPL", side="buy", qty=Decimal("1"), type="limit", limit_price=Decimal("97"),
        client_order_id=client_order_id,
    )
    return services.order_submit(acting_user=alice, request=request).order


def test_an_event_that_commits_after_a_later_one_is_still_delivered_once(alice, market, on_postgres, monkeypatch):
    strategy = Strategy.objects.get(slug="alpha")
    other = _limit_order(alice, strategy, "other")
    feed = Feed(token_client(alice))
    feed.drain_until(_alpha_event_ids())

    inserted, release = threading.Event(), threading.Event()

    # On PostgreSQL an order's audit rows (transition + feed entry) are written by one statement.
    audited_write = transitions._audited_write

    def slow_commit(transition: Any, **kwargs: Any) -> None:
        audited_write(transition, **kwargs)
        if transition.order.client_order_id == "slow" and not inserted.is_set():
            inserted.set()  # the event row is in, with its id; the transaction has not committed
            release.wait(30)

    monkeypatch.setattr(transitions, "_audited_write", slow_commit)
    errors: list[BaseException] = []

    def submit_slow() -> None:
        try:
            _limit_order(alice, strategy, "slow")
        except BaseException as exc:  # re-raised in the test thread
            errors.append(exc)
        finally:
            connection.close()

    writer = threading.Thread(target=submit_slow)
    writer.start()
    assert inserted.wait(30)
    services.order_cancel(acting_user=alice, order=other)  # commits events with higher ids meanwhile
    later = OrderEvent.objects.filter(order=other, transition__to_status="pending_cancel").get()

    while_open = feed.poll()  # the slow transaction is still open
    release.set()
    writer.join(30)
    assert not errors, errors
    feed.drain_until(_alpha_event_ids())

    slow_first = OrderEvent.objects.filter(order__client_order_id="slow").order_by("id").first()
    assert slow_first.id < later.id  # the inversion happened: a lower id committed after a higher one
    assert later.id not in {e["id"] for e in while_open}  # held back: serving it would skip the lower id
    assert sorted(feed.seen) == sorted(_alpha_event_ids())
    assert len(feed.seen) == len(set(feed.seen))


def test_a_client_following_the_feed_while_orders_change_concurrently_misses_nothing_and_sees_nothing_twice(
    alice, market, on_postgres, settings
):
    # The reader polls as fast as it can, on purpose: the feed's ordering is under test, not the
    # per-client request ceiling (which a fast enough machine or order path makes it meet).
    set_throttle_rates(settings, **NO_CEILING)
    strategy = Strategy.objects.get(slug="alpha")
    Strategy.objects.filter(pk=strategy.pk).update(max_orders_per_second=1000, max_orders_per_minute=1000)
    RiskLimits.objects.filter(pk=1).update(duplicate_order_max=1000)  # identical orders from many threads, on purpose
    strategy.refresh_from_db()
    market.set_volatility(Decimal("0"))
    market.set_max_fill_qty_per_tick(Decimal("1"))
    writers_done = threading.Event()
    errors: list[BaseException] = []
    feed = Feed(token_client(alice))

    def trader(index: int) -> None:
        try:
            for n in range(4):
                working = _limit_order(alice, strategy, f"t{index}-limit-{n}")
                services.order_submit(
                    acting_user=alice,
                    request=services.OrderRequest(
                        strategy=strategy, symbol="AAPL", side="buy", qty=Decimal("3"), type="market",
                        client_order_id=f"t{index}-market-{n}",
                    ),
                )
                services.order_cancel(acting_user=alice, order=working)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def syncer() -> None:
        try:
            while not writers_done.is_set():
                market.tick()
                services.orders_sync()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def reader() -> None:
        try:
            while not writers_done.is_set():
                feed.poll()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    traders = [threading.Thread(target=trader, args=(i,)) for i in range(4)]
    others = [threading.Thread(target=syncer), threading.Thread(target=reader)]
    for thread in [*traders, *others]:
        thread.start()
    for thread in traders:
        thread.join(120)
    for _ in range(6):  # let the partial fills finish while the reader keeps reading
        market.tick()
        services.orders_sync()
    writers_done.set()
    for thread in others:
        thread.join(120)
    assert not errors, errors
    feed.drain_until(_alpha_event_ids())

    fills = OrderEvent.objects.filter(strategy__slug="alpha", fill__isnull=False).count()
    print(f"\nfeed: {len(feed.seen)} events ({fills} with fills) read while 4 traders and a syncer wrote")
    assert fills > 0
    assert len(feed.seen) == len(set(feed.seen)), "an event was delivered twice"
    assert set(feed.seen) == _alpha_event_ids(), "an event was missed"


def test_a_long_poll_answers_when_an_event_arrives(alice, market, on_postgres):
    strategy = Strategy.objects.get(slug="alpha")
    feed = Feed(token_client(alice))
    feed.poll()

    def submit_soon() -> None:
        try:
            time.sleep(0.5)
            _limit_order(alice, strategy, "soon")
        finally:
            connection.close()

    writer = threading.Thread(target=submit_soon)
    writer.start()
    results = feed.poll(wait=30)
    writer.join(30)

    assert results and {e["client_order_id"] for e in results} == {"soon"}
