"""Order entry over HTTP: gunicorn on PostgreSQL, the simulated broker, N concurrent API clients.

Each client is its own API user with its own strategy (throttles raised
through risk.services.strategy_update). It submits a small market sell (0.01
AAPL, about $1.90: it passes every limit, and a sell skips the venue's
buying-power scan) through POST /v1/orders, which runs the full pipeline:
validation, the per-account lock, the snapshot and the pre-trade check, the
INSERT and its transition, the send to the simulated broker and its
transition. The baseline is POST /bench/baseline-insert (tools/bench/views.py): the
same authentication, parser and renderer, then one INSERT.

Per N the two endpoints alternate (baseline, entry, entry, baseline: an ABBA
order, so drift on this noisy machine falls on both), after a warm-up of
each. Before every segment the working book is cleared and the prices
restamped, so each segment starts from the same state.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from tools.bench import fixtures, loadgen
from tools.bench.env import libpq_url
from tools.bench.stats import median, ms, percentile, ratio

BASE_DIR = Path(__file__).resolve().parents[2]
ORDERS = "/v1/orders"
BASELINE = "/bench/baseline-insert"
PRICES = {"AAPL": "190.00"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    def __init__(
        self, *, workers: int, log_path: Path, threads: int = 1, env: dict[str, str] | None = None
    ) -> None:
        self.workers = workers
        self.threads = threads
        self.log_path = log_path
        self.env = env or {}
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Gunicorn:
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "backoffice.wsgi:application",
                "--bind", f"127.0.0.1:{self.port}",
                "--workers", str(self.workers),
                "--worker-class", "sync" if self.threads == 1 else "gthread",
                "--threads", str(self.threads),
                "--backlog", "2048",
                "--timeout", "120",
                "--log-level", "warning",
            ],
            cwd=BASE_DIR, env={**os.environ, **self.env}, stdout=self._log, stderr=self._log,
        )
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode} (see {self.log_path})")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v1/health", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer /v1/health within 60s (see {self.log_path})")
            time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def setup(clients: int) -> tuple[list[str], list[str]]:
    """``clients`` API users, each with a token and a fast strategy of its own."""
    fixtures.officer()
    fixtures.ensure_equity()
    tokens, slugs = [], []
    for index in range(clients):
        user, token = fixtures.api_client(f"bench-client-{index}")
        strategy = fixtures.fast_strategy(f"bench-entry-{index}", client=user)
        tokens.append(token)
        slugs.append(strategy.slug)
    return tokens, slugs


class LockSampler:
    """Samples pg_stat_activity every 50 ms on a connection of its own: how many backends wait on a lock.

    Order entry serialises on the RiskState row (SELECT ... FOR UPDATE); this
    shows how much of the load is queued there rather than working.
    """

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.samples: list[tuple[int, int]] = []  # (waiting on a lock, active)
        self._stop = threading.Event()

    def __enter__(self) -> LockSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while not self._stop.wait(0.05):
                row = conn.execute(
                    "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'), count(*) FILTER (WHERE state = 'active') "
                    "FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' "
                    "AND pid <> pg_backend_pid()"
                ).fetchone()
                self.samples.append((int(row[0]), int(row[1])))

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {"lock_waiting_avg": float("nan"), "active_avg": float("nan")}
        return {
            "lock_waiting_avg": sum(w for w, _ in self.samples) / len(self.samples),
            "active_avg": sum(a for _, a in self.samples) / len(self.samples),
        }


def _segment(server: Gunicorn, path: str, tokens: list[str], slugs: list[str], seconds: float) -> loadgen.LoadResult:
    fixtures.clear_book()
    fixtures.fresh_prices(PRICES)
    tag = uuid.uuid4().hex[:8]

    def body(client: int, seq: int) -> dict[str, Any]:
        return {
            "client_order_id": f"be-{tag}-{client}-{seq}",
            "strategy": slugs[client],
            "symbol": "AAPL",
            "side": "sell",
            "qty": "0.01",
            "type": "market",
        }

    return loadgen.run(host="127.0.0.1", port=server.port, path=path, tokens=tokens, make_body=body, seconds=seconds)


def _summary(result: loadgen.LoadResult) -> dict[str, Any]:
    return {
        "requests_ok": result.ok,
        "throughput_per_s": result.throughput,
        "p50_ms": ms(median(result.latencies)),
        "p99_ms": ms(percentile(result.latencies, 99)),
        "statuses": dict(result.statuses),
        "order_statuses": dict(result.order_statuses),
        "errors": dict(result.errors),
        "elapsed_s": result.elapsed,
    }


def measure(server: Gunicorn, tokens: list[str], slugs: list[str], *, seconds: float, warmup: float) -> dict[str, Any]:
    """One concurrency level: len(tokens) clients; ``seconds`` per endpoint, in two alternating halves."""
    for path in (BASELINE, ORDERS):
        _segment(server, path, tokens, slugs, warmup)
    results = {"baseline": loadgen.LoadResult(), "entry": loadgen.LoadResult()}
    samplers: dict[str, list[LockSampler]] = {"baseline": [], "entry": []}
    for kind in ("baseline", "entry", "entry", "baseline"):
        path = BASELINE if kind == "baseline" else ORDERS
        with LockSampler(libpq_url(os.environ["DATABASE_URL"])) as sampler:
            results[kind].merge(_segment(server, path, tokens, slugs, seconds / 2))
        samplers[kind].append(sampler)
    fixtures.clear_book()
    baseline, entry = _summary(results["baseline"]), _summary(results["entry"])
    for kind, summary in (("baseline", baseline), ("entry", entry)):
        merged = LockSampler("")
        merged.samples = [sample for sampler in samplers[kind] for sample in sampler.samples]
        summary.update(merged.summary())
    return {
        "clients": len(tokens),
        "baseline": baseline,
        "entry": entry,
        "throughput_ratio": ratio(entry["throughput_per_s"], baseline["throughput_per_s"]),
        "p50_ratio": ratio(entry["p50_ms"], baseline["p50_ms"]),
        "p99_ratio": ratio(entry["p99_ms"], baseline["p99_ms"]),
        "entry_not_201": sum(n for s, n in results["entry"].statuses.items() if s != 201)
        + sum(results["entry"].errors.values()),
        "baseline_not_201": sum(n for s, n in results["baseline"].statuses.items() if s != 201)
        + sum(results["baseline"].errors.values()),
        "entry_not_submitted": sum(n for s, n in results["entry"].order_statuses.items() if s != "submitted"),
    }


def statements_per_request(token: str, slug: str) -> dict[str, Any]:
    """The SQL each endpoint runs for one request (in-process, DRF's test client), BEGIN/COMMIT included."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    fixtures.clear_book()
    fixtures.fresh_prices(PRICES)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    counts: dict[str, Any] = {}
    for kind, path in (("entry", ORDERS), ("baseline", BASELINE)):
        body = {"client_order_id": f"bq-{uuid.uuid4().hex}", "strategy": slug, "symbol": "AAPL", "side": "sell",
                "qty": "0.01", "type": "market"}
        client.post(path, {**body, "client_order_id": f"bq-{uuid.uuid4().hex}"}, format="json")  # warm
        with CaptureQueriesContext(connection) as capture:
            answer = client.post(path, body, format="json")
        statements = [q["sql"] for q in capture.captured_queries]
        counts[kind] = len(statements)
        counts[f"{kind}_status"] = answer.status_code
        counts[f"{kind}_commits"] = sum(1 for sql in statements if sql.startswith("COMMIT"))
        counts[f"{kind}_sql"] = [sql[:120] for sql in statements]
    fixtures.clear_book()
    return counts
