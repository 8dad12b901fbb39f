"""Fill to ledger by polling alone: the figure the stream's is compared with (docs/benchmarks.md).

The fake Alpaca over real HTTP and alpaca-py, PostgreSQL; working orders fill
at the broker at random moments while the status sync runs every
ORDER_SYNC_INTERVAL_S, as beat runs it. A fill's latency is from the moment
the broker filled it to the end of the sync cycle that wrote its ``Fill``
row. Printed (with ``-s``), never asserted as a time; what is asserted is
that polling alone brings every fill to the ledger.
"""

from __future__ import annotations

import random
import threading
import time

import pytest
from django.conf import settings

from orders import services
from orders.models import Fill, Order
from risk.models import Strategy
from tests.conftest import order_body
from tests.fake_alpaca.server import FakeAlpacaServer
from tests.intent import alpaca  # noqa: F401  (fixture)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
FILLS = 16


def test_polling_fill_to_ledger_latency_p50_p99(alpaca: FakeAlpacaServer, alice_api, alpha):  # noqa: F811
    interval = float(settings.ORDER_SYNC_INTERVAL_S)
    Strategy.objects.filter(pk=alpha.pk).update(max_orders_per_second=1000)  # the book goes in at once
    ids = []
    for i in range(FILLS):
        response = alice_api.post("/v1/orders", order_body(client_order_id=f"poll-{i}", type="limit",
                                                          limit_price=f"{97 - i / 100:.2f}", qty="1"),
                                  format="json")
        assert response.status_code == 201, response.content
        ids.append(f"poll-{i}")
    services.orders_sync()  # the book is acknowledged; no fill yet
    assert not Fill.objects.exists()

    rng = random.Random(7)
    span = 2 * interval  # fills spread over two sync intervals
    filled_at: dict[str, float] = {}

    def fill_at_random_moments() -> None:
        for client_order_id, delay in sorted(((c, rng.uniform(0, span)) for c in ids), key=lambda x: x[1]):
            time.sleep(max(0.0, delay - (time.monotonic() - start)))
            alpaca.fill(client_order_id=client_order_id)
            filled_at[client_order_id] = time.monotonic()

    start = time.monotonic()
    filler = threading.Thread(target=fill_at_random_moments)
    filler.start()
    latencies: dict[str, float] = {}
    deadline = start + span + 4 * interval
    while len(latencies) < FILLS and time.monotonic() < deadline:
        next_cycle = start + interval * (int((time.monotonic() - start) / interval) + 1)
        time.sleep(max(0.0, next_cycle - time.monotonic()))
        services.orders_sync()
        written = time.monotonic()
        for client_order_id in Fill.objects.values_list("order__client_order_id", flat=True):
            if client_order_id not in latencies and client_order_id in filled_at:
                latencies[client_order_id] = written - filled_at[client_order_id]
    filler.join()

    assert sorted(latencies) == sorted(ids), "polling alone did not bring every fill to the ledger"
    assert set(Order.objects.values_list("status", flat=True)) == {"filled"}
    values = sorted(latencies.values())
    p50, p99 = values[len(values) // 2], values[min(len(values) - 1, int(len(values) * 0.99))]
    print(f"\npolling fill-to-ledger over {len(values)} fills, ORDER_SYNC_INTERVAL_S={interval:g}: "
          f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
