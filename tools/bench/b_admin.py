"""The admin's order change list, rendered in-process by Django's test Client as a superuser."""

from __future__ import annotations

import time
from typing import Any

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tools.bench import fixtures
from tools.bench.stats import median, ms, percentile

URL = "/admin/orders/order/"
# The control: an admin change list that reads neither orders nor fills, rendered in the same rounds.
CONTROL_URL = "/admin/auth/group/"


def measure(repeats: int) -> dict[str, Any]:
    client = Client()
    client.force_login(fixtures.officer())
    first = client.get(URL)
    if first.status_code != 200:
        return {"available": False, "status": first.status_code}
    client.get(URL)
    with CaptureQueriesContext(connection) as capture:
        response = client.get(URL)
    # Copied now: the next request's request_started signal empties the connection's query log.
    queries = list(capture.captured_queries)
    control_ok = client.get(CONTROL_URL).status_code == 200
    times, controls = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(URL)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200
        if control_ok:
            started = time.perf_counter()
            client.get(CONTROL_URL)
            controls.append(time.perf_counter() - started)
    slowest = sorted(queries, key=lambda q: float(q["time"]), reverse=True)[:3]
    return {
        "available": True,
        "p10_ms": ms(percentile(times, 10)),
        "control_p10_ms": ms(percentile(controls, 10)),
        "median_ms": ms(median(times)),
        "p90_ms": ms(percentile(times, 90)),
        "repeats": repeats,
        "queries": len(queries),
        "bytes": len(response.content),
        "slowest_queries": [{"ms": float(q["time"]) * 1000, "sql": q["sql"][:300]} for q in slowest],
    }
