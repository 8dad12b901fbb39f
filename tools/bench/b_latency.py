"""What a client feels: order entry's latency over the broker's own round trip, and the account lock's hold.

gunicorn serves the product with the simulated venue answering every submit
``broker_ms`` later (``SIM_SUBMIT_LATENCY_MS``), in threaded workers (a
request spends most of its time waiting on the broker, as in production),
and with ``ORDER_ENTRY_LOCK_TIMING`` on: each order logs how long it held the
account lock (logger ``orders.entry.lock``, a file of the bench's, see
tools/bench/settings.py).

* added latency = order entry's answer time (connect to last byte) minus
  ``broker_ms``, p50 and p99, at N closed-loop clients;
* lock hold = from the account lock granted to the COMMIT that releases it,
  p50 and p99 of the orders of the same segments;
* burst = ``size`` orders of one strategy sent at once (one connection each),
  p99 of their answer times, pooled over a few bursts.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

from tools.bench import fixtures, loadgen
from tools.bench.b_entry import ORDERS, PRICES, Gunicorn
from tools.bench.stats import median, ms, percentile

LOCK_LOG = "lock-hold.log"
HELD = re.compile(r"account lock held ([0-9.]+) ms")


def server(*, broker_ms: int, workers: int, threads: int, out_dir: Path) -> Gunicorn:
    return Gunicorn(
        workers=workers,
        threads=threads,
        log_path=out_dir / "gunicorn-latency.log",
        env={"SIM_SUBMIT_LATENCY_MS": str(broker_ms), "ORDER_ENTRY_LOCK_TIMING": "true"},
    )


def _lock_holds(path: Path, offset: int) -> list[float]:
    """Hold times (ms) logged since ``offset`` bytes into the lock log."""
    if not path.exists():
        return []
    with open(path, "rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    return [float(match.group(1)) for match in HELD.finditer(text)]


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _body(slug: str, tag: str, client: int, seq: int) -> dict[str, Any]:
    return {"client_order_id": f"bl-{tag}-{client}-{seq}", "strategy": slug, "symbol": "AAPL", "side": "sell",
            "qty": "0.01", "type": "market"}


def closed_loop(
    srv: Gunicorn, tokens: list[str], slugs: list[str], *, seconds: float, warmup: float, broker_ms: int,
    lock_log: Path,
) -> dict[str, Any]:
    """len(tokens) clients for ``seconds`` (after ``warmup``): added latency and lock hold."""
    fixtures.clear_book()
    fixtures.fresh_prices(PRICES)

    def segment(duration: float) -> loadgen.LoadResult:
        tag = uuid.uuid4().hex[:8]
        return loadgen.run(
            host="127.0.0.1", port=srv.port, path=ORDERS, tokens=tokens,
            make_body=lambda client, seq: _body(slugs[client], tag, client, seq), seconds=duration,
        )

    segment(warmup)
    offset = _size(lock_log)
    result = segment(seconds)
    holds = _lock_holds(lock_log, offset)
    fixtures.clear_book()
    added = [ms(latency) - broker_ms for latency in result.latencies]
    return {
        "clients": len(tokens),
        "orders": result.ok,
        "throughput_per_s": result.throughput,
        "added_p50_ms": median(added),
        "added_p99_ms": percentile(added, 99),
        "answer_p50_ms": ms(median(result.latencies)),
        "answer_p99_ms": ms(percentile(result.latencies, 99)),
        "lock_hold_p50_ms": median(holds),
        "lock_hold_p99_ms": percentile(holds, 99),
        "lock_holds_logged": len(holds),
        "statuses": dict(result.statuses),
        "order_statuses": dict(result.order_statuses),
        "errors": dict(result.errors),
    }


def burst(srv: Gunicorn, token: str, slug: str, *, size: int, repeats: int) -> dict[str, Any]:
    """``size`` orders of one strategy at once, ``repeats`` times (after one warm-up burst): answer times."""
    fixtures.clear_book()
    fixtures.fresh_prices(PRICES)
    pooled = loadgen.LoadResult()
    per_burst_p99 = []
    for index in range(repeats + 1):
        tag = uuid.uuid4().hex[:8]
        bodies = [_body(slug, tag, 0, seq) for seq in range(size)]
        result = loadgen.burst(host="127.0.0.1", port=srv.port, path=ORDERS, token=token, bodies=bodies)
        if index:  # the first burst warms the workers' connections and caches
            pooled.merge(result)
            per_burst_p99.append(ms(percentile(result.latencies, 99)))
        fixtures.clear_book()
    return {
        "size": size,
        "bursts": repeats,
        "answers_ok": pooled.ok,
        "p50_ms": ms(median(pooled.latencies)),
        "p99_ms": ms(percentile(pooled.latencies, 99)),
        "max_ms": ms(max(pooled.latencies)) if pooled.latencies else float("nan"),
        "per_burst_p99_ms": per_burst_p99,
        "statuses": dict(pooled.statuses),
        "order_statuses": dict(pooled.order_statuses),
        "errors": dict(pooled.errors),
    }
