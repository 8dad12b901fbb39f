"""The end-to-end chaos scenario (issues #7, #10): the whole deployment, a faulty broker, and the books still match.

Shape: one fake Alpaca process (manual fills, stepped by the test) that loses,
fails, rate-limits, stalls and drops requests with a probability; two gunicorn
instances; two Celery workers and beat on PostgreSQL (the pytest-django test
database) and Redis (``CELERY_BROKER_URL``); four API clients trading three
strategies send ``CHAOS_ORDERS`` orders (default 2,000) with concurrent
duplicates, impatient retries, reused ids and cancels. Mid-burst a worker is
SIGKILLed while it runs the status sync and a new one is started; a process is
SIGKILLed right after it committed a cancel, and another right after it
committed a strategy kill switch (tests/e2e/drills.py); later two risk officers
activate the global kill switch at once through the API (its first cancel-all
answered 504, flatten on), once more while the flatten is in flight, and reset
it. Cancels and cancel-alls fail too. Then
the faults stop, the jobs converge, and every invariant of
docs/runbooks/execution-verification.md is checked against the fake's own
records. The figures are printed in the terminal summary.

Bounded: the burst stops at its deadline whatever the throughput, each wait
has a timeout, and every process is stopped in the fixture's teardown.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import queue
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from django.contrib.auth import get_user_model
from django.utils import timezone
from pytest_django.fixtures import Settings
from rest_framework.authtoken.models import Token

from backoffice.celery import app
from backoffice.schedule import setup_periodic_tasks
from brokers import registry
from core.models import JobRun
from orders import services
from orders.accounts import api_client_create, random_password, risk_officer_create
from orders.models import OrderTransition, ReconciliationBreak, ReconciliationRun
from orders.states import OrderStatus
from risk.models import RiskEvent, RiskEventKind, RiskState, Strategy
from risk.services import killswitch_reset, strategy_update
from tests.e2e import drills, invariants
from tests.e2e.load import LAST_PRICES, ApiClient, ClientThread, MarketStepper, Tally
from tests.e2e.report import Report
from tests.e2e.stack import Stack, database_url_for_subprocesses, wait_for
from tests.fake_alpaca.control import FakeAlpacaControl
from tests.fake_alpaca.server import DEFAULT_API_KEY, DEFAULT_SECRET_KEY

pytestmark = [pytest.mark.chaos, pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

ORDERS = int(os.environ.get("CHAOS_ORDERS", "2000"))
SEED = int(os.environ.get("CHAOS_SEED", "7"))
# Large enough that thousands of small orders never approach a capital or
# allocation limit: the denials that remain are the ones the chaos causes.
CASH = Decimal(10_000_000)
BURST_BUDGET_S = 120.0
CONVERGE_BUDGET_S = 60.0
TIMEOUT_S, GRACE_S, SYNC_EVERY_S, RECONCILE_EVERY_S, RISK_EVERY_S = "0.5", "2", "1", "10", "5"
# An ambiguous send is looked up every sync until this old; only then is "not found" final.
HORIZON_S = "8"
# A slow gateway (the 45 s, scaled with the timeout, the grace and the horizon above):
# accepted after the grace lookup but within the horizon (adopted as an ordinary unknown
# order), and accepted after the horizon, once the order was closed as never received
# (the broker's late truth, adopted through a correction edge).
SLOW_GATEWAY_FAULTS: list[dict[str, Any]] = [
    {"kind": "slow_accept", "probability": 0.01, "seconds": 4.0},
    {"kind": "slow_accept", "probability": 0.005, "seconds": 12.0},
]
LATEST_GATEWAY_S = max(float(f["seconds"]) for f in SLOW_GATEWAY_FAULTS)

# Every fault the fake knows, on the submit and on every read, each with a
# probability (seeded in the fake, so a run is repeatable up to scheduling).
SUBMIT_FAULTS: list[dict[str, Any]] = [
    {"kind": "lose_response", "probability": 0.015},
    {"kind": "http_500", "probability": 0.01},
    {"kind": "http_500", "apply": True, "probability": 0.01},
    {"kind": "http_504", "probability": 0.01},
    {"kind": "http_504", "apply": True, "probability": 0.01},
    {"kind": "http_429", "probability": 0.015, "reset_in_s": 1},
    {"kind": "slow", "probability": 0.015, "seconds": 1.0},
    {"kind": "drop_connection", "probability": 0.015},
]
READ_FAULTS: list[dict[str, Any]] = [
    {"kind": "lose_response", "probability": 0.01},
    {"kind": "http_500", "probability": 0.01},
    {"kind": "http_504", "probability": 0.01},
    {"kind": "http_429", "probability": 0.01, "reset_in_s": 1},
    {"kind": "slow", "probability": 0.01, "seconds": 1.0},
    {"kind": "drop_connection", "probability": 0.01},
]
# Cancels (per order) and cancel-all (issue #10): every way the broker can fail them.
CANCEL_FAULTS: list[dict[str, Any]] = [
    {"kind": "http_500", "probability": 0.02},
    {"kind": "http_504", "probability": 0.02},
    {"kind": "http_429", "probability": 0.02, "reset_in_s": 1},
    {"kind": "stall", "probability": 0.02, "seconds": 1.0},  # a timeout: the cancel never passed the gateway
    {"kind": "slow", "probability": 0.02, "seconds": 1.0},  # a timeout: cancelled, the answer came too late
    {"kind": "drop_connection", "probability": 0.02},
    {"kind": "lose_response", "probability": 0.02},
]
STRATEGIES = ("alpha", "beta", "gamma")
# Traded by nobody in the burst: the strategy kill switch drill's own strategy and client.
DRILL_STRATEGY, DRILL_CLIENT = "delta", "dora"
CLIENTS = {"carol": ("alpha",), "dave": ("beta",), "erin": ("gamma",), "frank": ("alpha", "beta")}


@dataclass
class Deployment:
    stack: Stack
    fake_url: str
    web_urls: list[str]
    workers: dict[str, str]  # celery node name -> process name
    start_up_s: float


def point_this_process_at_the_fake(settings: Settings, fake_url: str) -> None:
    """The test process itself schedules the jobs and runs the final reconciliation against the same fake."""
    settings.BROKER = "alpaca"
    settings.ALPACA_API_KEY, settings.ALPACA_SECRET_KEY = DEFAULT_API_KEY, DEFAULT_SECRET_KEY
    settings.ALPACA_BASE_URL = settings.ALPACA_DATA_URL = fake_url
    settings.ALPACA_TIMEOUT_S = 5.0  # the final checks run with the faults off
    settings.UNKNOWN_ORDER_GRACE_S = int(GRACE_S)
    settings.UNKNOWN_ORDER_HORIZON_S = int(HORIZON_S)
    settings.ORDER_SYNC_INTERVAL_S = int(SYNC_EVERY_S)
    settings.RECONCILE_INTERVAL_S = int(RECONCILE_EVERY_S)
    settings.RISK_EVAL_INTERVAL_S = int(RISK_EVERY_S)
    registry.reset()


@pytest.fixture
def deployment(
    tmp_path: Path, settings: Settings, on_postgres: None, transactional_db: None
) -> Iterator[Deployment]:
    """Fake Alpaca, two web processes, two workers and beat, all on the test database; always stopped."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url_for_subprocesses(),
        "TRADING_MODE": "paper",
        "BROKER": "alpaca",
        "ALPACA_API_KEY": DEFAULT_API_KEY,
        "ALPACA_SECRET_KEY": DEFAULT_SECRET_KEY,
        "ALPACA_TIMEOUT_S": TIMEOUT_S,
        "UNKNOWN_ORDER_GRACE_S": GRACE_S,
        "UNKNOWN_ORDER_HORIZON_S": HORIZON_S,
        "ORDER_SYNC_INTERVAL_S": SYNC_EVERY_S,
        "CANCEL_RETRY_MAX_S": SYNC_EVERY_S,  # the default (one sync interval), said out loud for the drills
        "RECONCILE_INTERVAL_S": RECONCILE_EVERY_S,
        "RISK_EVAL_INTERVAL_S": RISK_EVERY_S,
        "KILL_SWITCH_FLATTEN": "true",
        "KILL_SWITCH_RESET_APPROVALS": "1",
        "HALT_ON_RECONCILIATION_BREAK": "false",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    stack = Stack(log_dir=tmp_path, env=env)
    started = time.monotonic()
    try:
        fake_url = stack.start_fake_alpaca(seed=SEED, cash=str(CASH))
        stack.env.update(ALPACA_BASE_URL=fake_url, ALPACA_DATA_URL=fake_url)
        point_this_process_at_the_fake(settings, fake_url)
        FakeAlpacaControl(fake_url).set_prices(dict(LAST_PRICES))
        FakeAlpacaControl(fake_url).configure(market_open=True)  # trades at any hour: market_closed is not under test
        setup_periodic_tasks()  # committed: beat reads it from the database
        app.control.purge()  # nothing left over from an earlier run in this broker database
        web_urls = [stack.start_web("web-0"), stack.start_web("web-1")]
        workers = {stack.start_worker(name): name for name in ("worker-0", "worker-1")}
        stack.start_beat()
        for index, url in enumerate(web_urls):
            stack.wait_until_web_answers(f"web-{index}", url)
        wait_for_workers(stack, workers)
        yield Deployment(stack=stack, fake_url=fake_url, web_urls=web_urls, workers=workers,
                         start_up_s=time.monotonic() - started)
    finally:
        stack.stop_all()
        registry.reset()


def wait_for_workers(stack: Stack, workers: dict[str, str], *, timeout: float = 60) -> None:
    def all_answer() -> bool:
        for name in workers.values():
            assert stack.alive(name), f"{name} exited:\n{stack.log_tail(name)}"
        answered = {node for reply in app.control.ping(destination=list(workers), timeout=0.5) for node in reply}
        return answered >= set(workers)

    wait_for(all_answer, timeout=timeout, what=f"{', '.join(sorted(workers))} to answer ping", interval=0.2)


# --- the people ------------------------------------------------------------------


def create_people() -> tuple[str, str, list[ApiClient], ApiClient]:
    """A risk officer (token for the API), the API clients and the drill's client, through the account services."""
    officer = risk_officer_create(username="olivia", password=random_password())
    officer_token = Token.objects.create(user=officer).key
    clients = []
    for username, strategies in CLIENTS.items():
        _, token = api_client_create(name=username, strategy_slugs=list(strategies))
        clients.append(ApiClient(username=username, token=token, strategies=strategies))
    _, drill_token = api_client_create(name=DRILL_CLIENT, strategy_slugs=[DRILL_STRATEGY])
    drill_client = ApiClient(username=DRILL_CLIENT, token=drill_token, strategies=(DRILL_STRATEGY,))
    for strategy in Strategy.objects.filter(slug__in=STRATEGIES):
        # The default throttle (5/s, 120/min) is a safety net for one strategy, not a load test's budget.
        strategy_update(
            acting_user=officer, strategy=strategy,
            changes={"max_orders_per_second": 1000, "max_orders_per_minute": 100000},
            reason="chaos scenario: throttle raised for the load test",
        )
    return officer.get_username(), officer_token, clients, drill_client


def warm_up(deployment: Deployment, clients: list[ApiClient]) -> None:
    """Before the faults: every symbol once (the asset cache) from each web process; equity recorded."""
    for index, symbol in enumerate(sorted(LAST_PRICES)):
        client = clients[index % len(clients)]
        body = {"client_order_id": f"warmup-{symbol}", "strategy": client.strategies[0], "symbol": symbol,
                "side": "buy", "qty": "1", "type": "market"}
        url = deployment.web_urls[index % len(deployment.web_urls)]
        response = requests.post(f"{url}/v1/orders", json=body, timeout=30,
                                  headers={"Authorization": f"Token {client.token}"})
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "submitted", response.text
    wait_for(lambda: RiskState.current().equity is not None, timeout=30, what="the equity to be recorded")


def arm_faults(fake: FakeAlpacaControl) -> None:
    for fault in SUBMIT_FAULTS:
        fake.set_fault(method="POST", path="/v2/orders", count=None, **fault)
    for fault in READ_FAULTS:
        fake.set_fault(method="GET", path="/v2/*", count=None, **fault)
    for fault in CANCEL_FAULTS:
        fake.set_fault(method="DELETE", path="/v2/orders/*", count=None, **fault)
        fake.set_fault(method="DELETE", path="/v2/orders", count=None, **fault)


def arm_slow_gateway(fake: FakeAlpacaControl) -> None:
    """Armed after the kill-switch drill: a send the gateway holds across an activation would be
    accepted while halted, which the halt invariant (judged on the broker's creation time) forbids."""
    for fault in SLOW_GATEWAY_FAULTS:
        fake.set_fault(method="POST", path="/v2/orders", count=None, **fault)


# --- mid-burst events ----------------------------------------------------------------


@dataclass
class WorkerKill:
    name: str
    at_progress: int
    mid_sync: bool
    restarted_as: str
    restart_s: float
    ledger_whole: invariants.Invariant
    attempt: int
    orphaned_locks: list[str]


# Each periodic job's lock (JobRun.name) and the task that takes it.
JOB_TASKS = {
    "order_sync": "orders.tasks.sync_orders",
    "reconcile": "orders.tasks.reconcile_positions",
    "risk_eval": "risk.tasks.evaluate_risk",
}


def _jobs_running(nodes: list[str]) -> dict[str, set[str]] | None:
    """The periodic jobs each worker is running now; None unless every one of them answered."""
    active = app.control.inspect(destination=nodes, timeout=1.0).active()
    if active is None or set(active) != set(nodes):
        return None
    by_task = {task: job for job, task in JOB_TASKS.items()}
    return {node: {by_task[t["name"]] for t in tasks if t.get("name") in by_task} for node, tasks in active.items()}


def _held_locks() -> dict[str, str]:
    """Job name -> lock token, for every job lock held now."""
    return dict(JobRun.objects.filter(locked_until__gt=timezone.now()).values_list("name", "lock_token"))


def kill_a_worker_mid_sync(deployment: Deployment, tally: Tally, deadline: float) -> WorkerKill | None:
    """SIGKILL the worker that holds the status sync's lock, check nothing is half-applied, start another.

    The holder is the one worker running ``sync_orders`` while the lock is
    held (a run that finds the lock taken returns at once). A lock is proven
    left behind by the dead worker when, after the kill, it still carries the
    same token and no live worker is running its job. Up to three attempts.
    """
    stack, workers = deployment.stack, deployment.workers
    kill: WorkerKill | None = None
    attempt = 0
    while time.monotonic() < deadline and attempt < 3 and (kill is None or not kill.mid_sync):
        before = _held_locks()
        running = _jobs_running(list(workers)) if "order_sync" in before else None
        holders = [node for node, jobs in (running or {}).items() if "order_sync" in jobs]
        if len(holders) != 1 or _held_locks().get("order_sync") != before["order_sync"]:
            time.sleep(0.05)
            continue
        name = workers.pop(holders[0])
        stack.kill(name)
        attempt += 1
        at_progress = tally.orders_attempted
        after = _held_locks()
        others = _jobs_running(list(workers))
        alive_jobs = set().union(*others.values()) if others is not None else set(JOB_TASKS)
        orphaned = sorted(job for job, token in after.items() if before.get(job) == token and job not in alive_jobs)
        mid_sync = "order_sync" in orphaned
        ledger_whole = invariants.ledger_is_internally_consistent()
        # Each orphaned lock would expire after its TTL (90 s for the sync, 150 s for
        # reconciliation); the scenario moves time on instead of waiting, exactly
        # what expiry does (as tests/jobs/test_worker.py does).
        for job in orphaned:
            JobRun.objects.filter(name=job, lock_token=after[job]).update(
                locked_until=timezone.now() - dt.timedelta(seconds=1)
            )
        started = time.monotonic()
        replacement = f"worker-{sum(1 for started in stack.processes if started.startswith('worker-'))}"
        workers[stack.start_worker(replacement)] = replacement
        wait_for_workers(stack, workers)
        kill = WorkerKill(name, at_progress, mid_sync, replacement, time.monotonic() - started, ledger_whole,
                          attempt, orphaned)
    return kill


@dataclass
class KillSwitchDrill:
    activated_at: dt.datetime
    reset_at: dt.datetime
    activate_s: float
    at_progress: int
    reset_at_progress: int


def officer_controls(url: str, token: str, action: str, reason: str) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = requests.post(
        f"{url}/v1/controls/kill-switch", json={"action": action, "scope": "global", "reason": reason},
        headers={"Authorization": f"Token {token}"}, timeout=60,
    )
    return response, time.monotonic() - started


@dataclass
class OutageEntry:
    """The first order in a symbol nobody traded yet, while the broker fails the asset lookup."""

    during: int
    during_content_type: str
    after: int
    after_status: str | None


def first_order_in_a_new_symbol_during_an_outage(deployment: Deployment, client: ApiClient) -> OutageEntry:
    fake = FakeAlpacaControl(deployment.fake_url)
    # Three failures: every attempt of the adapter's read retry policy.
    fake.set_fault("http_500", method="GET", path="/v2/assets/NVDA", count=3)
    body = {"client_order_id": "outage-NVDA", "strategy": client.strategies[0], "symbol": "NVDA", "side": "buy",
            "qty": "1", "type": "market"}
    headers = {"Authorization": f"Token {client.token}"}
    during = requests.post(f"{deployment.web_urls[0]}/v1/orders", json=body, headers=headers, timeout=30)
    # The broker answers again (the rule is spent): the client retries with the same id.
    after = requests.post(f"{deployment.web_urls[1]}/v1/orders", json=body, headers=headers, timeout=30)
    return OutageEntry(during.status_code, during.headers.get("Content-Type", ""), after.status_code,
                       after.json().get("status") if after.headers.get("Content-Type", "").endswith("json") else None)


def wait_for_milestone(tally: Tally, *, orders: int, at: float, clients: list[ClientThread]) -> bool:
    """Until ``orders`` were attempted or the clock reaches ``at``, whichever comes first (a slow machine
    still gets every event of the scenario); False when the clients are done before either."""
    while time.monotonic() < at and tally.orders_attempted < orders:
        if not any(c.is_alive() for c in clients):
            return False
        time.sleep(0.05)
    return True


# --- convergence and figures -------------------------------------------------------------


def converge(fake: FakeAlpacaControl, budget_s: float, *, settle_s: float = 0.0) -> tuple[float, list[str]]:
    """Let beat's syncs bring every local order to the broker's state; bounded.

    Not judged before ``settle_s``: a slow gateway may still be holding a send
    it will accept (the books must then follow the broker's late truth).
    """
    started = time.monotonic()
    left: list[str] = []
    while time.monotonic() - started < budget_s:
        left = invariants.divergences(fake.orders, invariants.local_orders())
        if not left and time.monotonic() - started >= settle_s:
            break
        time.sleep(1.0)
    return time.monotonic() - started, left


def path_class(method: str, path: str) -> str:
    if path.startswith("/v2/orders/"):
        return f"{method} /v2/orders/{{id}}"
    if path.startswith("/v2/assets/"):
        return f"{method} /v2/assets/{{symbol}}"
    if path == "/v2/orders:by_client_order_id":
        return f"{method} /v2/orders:by_client_order_id"
    return f"{method} {path}"


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{key} {value:,}" for key, value in counter.most_common()) or "none"


def report_figures(report: Report, *, burst: Burst, fake_state: dict[str, Any], fake_requests: list[dict[str, Any]],
                   durations: dict[str, float], local: list[dict[str, Any]]) -> None:
    tally, stepper, kill, drill = burst.tally, burst.stepper, burst.kill, burst.drill
    a = tally.answers
    report.add(f"scenario: {len(CLIENTS)} API clients, {len(STRATEGIES)} strategies, 2 gunicorn instances, "
               f"2 Celery workers + beat, fake Alpaca seed {SEED}; ALPACA_TIMEOUT_S={TIMEOUT_S}, "
               f"UNKNOWN_ORDER_GRACE_S={GRACE_S}, sync every {SYNC_EVERY_S}s")
    report.add("durations: " + ", ".join(f"{k} {v:.1f}s" for k, v in durations.items()))
    report.add(f"orders: {tally.orders_attempted:,} client_order_ids attempted of {ORDERS:,} planned; "
               f"{len(local):,} stored locally; {len(fake_state['orders']):,} at the broker")
    report.add(f"API answers: {sum(a.values()):,} -- created (201) {a['created']:,}, replays (200) {a['replayed']:,}, "
               f"conflicts (409) {a['conflict']:,}, denials (400) {a['denied']:,}, cancels (202) "
               f"{a['cancel_accepted']:,}, cancel of a terminal order (409) {a['cancel_refused_terminal']:,}, "
               f"unexpected {a['unexpected']:,}")
    report.add(f"client behaviour: {a['concurrent_duplicate']:,} ids sent twice at once, {a['client_timeout']:,} "
               f"client timeouts, {a['retry']:,} retries after a timeout, {a['throttled_then_retried']:,} "
               f"429s (per-client ceiling) sent again after their Retry-After")
    latency = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in tally.latency_percentiles().items())
    report.add(f"POST /v1/orders latency: {latency}")
    report.add(f"status in the 201 answer: {_counts(tally.status_at_answer)}")
    report.add(f"denials by code: {_counts(tally.denial_codes)}")
    report.add(f"faults injected by kind: {_counts(Counter(fake_state['faults_injected']))}")
    by_path: Counter[str] = Counter()
    faulted: Counter[str] = Counter()
    for record in fake_requests:
        key = path_class(record["method"], record["path"])
        by_path[key] += 1
        if record["fault"]:
            faulted[f"{key} {record['fault']}"] += 1
    report.add(f"broker requests: {_counts(by_path)}")
    report.add(f"faulted broker requests: {_counts(faulted)}")
    went_unknown = {t for t in OrderTransition.objects.filter(to_status=OrderStatus.UNKNOWN)
                    .values_list("order_id", flat=True)}
    at_broker = {o["client_order_id"] for o in fake_state["orders"]}
    unknown_outcomes: Counter[str] = Counter()
    for order in local:
        if order["id"] in went_unknown:
            where = "found at the broker" if order["client_order_id"] in at_broker else "never at the broker"
            unknown_outcomes[f"{where} -> {order['status']}"] += 1
    report.add(f"ambiguous sends: {len(went_unknown):,} went unknown; resolved: {_counts(unknown_outcomes)}")
    late = Counter(f"{s} -> {t}" for s, t in OrderTransition.objects.filter(reason__startswith="late truth")
                   .values_list("from_status", "to_status"))
    report.add(f"late truth adopted (closed as never received, then shown by the broker): {_counts(late)}")
    report.add(f"final local states: {_counts(Counter(o['status'] for o in local))}")
    report.add(f"fake market: {stepper.steps:,} steps filled {stepper.orders_stepped:,} orders, "
               f"{stepper.partial_fills_done:,} partial fills")
    if kill is not None:
        report.add(f"worker kill: {kill.name} SIGKILLed at {kill.at_progress:,} orders "
                   f"({'mid-sync' if kill.mid_sync else 'NOT proven mid-sync'}, attempt {kill.attempt}); "
                   f"locks it left held (expired by moving time on): {', '.join(kill.orphaned_locks) or 'none'}; "
                   f"ledger whole right after: {kill.ledger_whole.held}; "
                   f"{kill.restarted_as} answering after {kill.restart_s:.1f}s")
    else:
        report.add("worker kill: did not happen (no sync caught running before the deadline)")
    if drill is not None:
        fenced = OrderTransition.objects.filter(reason__startswith="kill switch active before the send").count()
        halted = OrderTransition.objects.filter(reason="kill switch activated").count()
        active_s = (drill.reset_at - drill.activated_at).total_seconds()
        report.add(f"kill switch: activated via API at {drill.at_progress:,} orders "
                   f"(answer in {drill.activate_s:.2f}s), "
                   f"reset at {drill.reset_at_progress:,} after {active_s:.1f}s; {halted:,} working orders cancelled, "
                   f"{fenced:,} pending sends cancelled before reaching the broker, "
                   f"{tally.denial_codes['kill_switch_active']:,} orders denied kill_switch_active")
    if burst.outage is not None:
        o = burst.outage
        report.add(f"new symbol during an asset-lookup outage: HTTP {o.during} ({o.during_content_type}); "
                   f"retry with the same id: HTTP {o.after} {o.after_status}")
    jobs = {name: (runs, error[:80]) for name, runs, error in JobRun.objects.values_list("name", "runs", "last_error")}
    report.add("jobs (runs, last error): " + "; ".join(f"{n} {r} {e!r}" for n, (r, e) in sorted(jobs.items())))
    breaks = ReconciliationBreak.objects.count()
    report.add(f"reconciliation runs: {ReconciliationRun.objects.count():,}; breaks recorded along the way: {breaks:,}")


# --- the scenario ------------------------------------------------------------------------


@dataclass
class Burst:
    tally: Tally
    stepper: MarketStepper
    kill: WorkerKill | None
    drill: KillSwitchDrill | None
    outage: OutageEntry | None
    duration_s: float
    intent_drills: list[drills.DrillOutcome]


def crash_drills(deployment: Deployment, fake: FakeAlpacaControl, clients: list[ApiClient],
                 drill_client: ApiClient, officer: str, report: Report) -> list[drills.DrillOutcome]:
    """A process SIGKILLed right after a cancel's commit, then one right after a strategy switch's commit.

    The faults are off while a drill measures (the broker answers again), and armed again after it.
    """
    env = dict(deployment.stack.env)
    outcomes = []
    try:
        outcomes.append(drills.cancel_committed_then_the_process_died(
            fake, deployment.web_urls[0], clients[0], env=env, log_dir=deployment.stack.log_dir))
        report.progress(f"drill: {outcomes[-1]}")
        strategy = Strategy.objects.get(slug=DRILL_STRATEGY)
        outcomes.append(drills.strategy_switch_committed_then_the_process_died(
            fake, deployment.web_urls[1], drill_client, strategy, env=env, log_dir=deployment.stack.log_dir))
        report.progress(f"drill: {outcomes[-1]}")
        killswitch_reset(acting_user=get_user_model().objects.get(username=officer), strategy=strategy,
                         reason="chaos drill over")
        arm_faults(fake)
        storm = drills.cancel_storm(fake, deployment.web_urls[0], drill_client)
        faulted = sum(1 for r in fake.requests if r["method"] == "DELETE" and r["fault"] is not None
                      and r["path"].startswith("/v2/orders/"))
        outcomes.append(drills.DrillOutcome(
            "a storm of cancels answered 500/504/429/timeouts/dropped connections is driven to the broker",
            0 if storm and faulted else None, "" if storm and faulted else f"{len(storm)} orders, {faulted} faulted",
            {"orders": len(storm), "faulted_cancels": faulted}, measured_in_cycles=False))
        report.progress(f"drill: {outcomes[-1]}")
    finally:
        fake.clear_faults()
        arm_faults(fake)
    return outcomes


# The global drill's activations of the already active switch: one of the two at once, and one
# while the flatten is in flight.
GLOBAL_DRILL_REPEATED = 2


def global_switch_drill(deployment: Deployment, fake: FakeAlpacaControl, officer_token: str, tally: Tally,
                        threads: list[ClientThread], mark: Any, report: Report) -> tuple[KillSwitchDrill,
                                                                                          drills.DrillOutcome]:
    """Two officers activate the global switch at once (its first cancel-all answered 504; flatten on), the
    switch must leave nothing open in scope within 2 cycles of the broker answering, and it is activated once
    more while the flatten is in flight; then reset."""
    activated_progress = tally.orders_attempted
    fake.clear_faults()
    fake.set_fault("http_504", method="DELETE", path="/v2/orders", count=1)
    started = time.monotonic()
    try:
        answers = drills.activate_global_twice_at_once(deployment.web_urls, officer_token,
                                                       "chaos drill: halt all trading")
        took = time.monotonic() - started
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        activated_at = dt.datetime.fromisoformat(answers[0].json()["global"]["activated_at"])
        report.progress(f"kill switch active, activated twice at once (answers in {took:.2f}s)")
        cycles = drills.cycles_until(lambda: not drills.open_in_global_scope(fake))
        outcome = drills.DrillOutcome(
            "the global switch (first cancel-all answered 504, activated twice at once) leaves nothing open in scope",
            cycles, "" if cycles is not None else f"still open: {drills.open_in_global_scope(fake)[:5]}")
    finally:
        arm_faults(fake)
    time.sleep(1.0)
    again, _ = officer_controls(deployment.web_urls[1], officer_token, "activate",
                                "chaos drill: activated again while the flatten is in flight")
    assert again.status_code == 200, again.text
    time.sleep(1.5)  # long enough for every client to be denied a few times
    wait_for_milestone(tally, clients=threads, **mark(0.5))
    reset_progress = tally.orders_attempted
    response, _ = officer_controls(deployment.web_urls[1], officer_token, "deactivate",
                                   "chaos drill over: trading may resume")
    assert response.status_code == 200, response.text
    reset_at = RiskEvent.objects.filter(kind=RiskEventKind.KILL_SWITCH_RESET, strategy__isnull=True).latest("at").at
    report.progress("kill switch reset")
    return KillSwitchDrill(activated_at, reset_at, took, activated_progress, reset_progress), outcome


def run_burst(deployment: Deployment, clients: list[ApiClient], drill_client: ApiClient, officer: str,
              officer_token: str, report: Report) -> Burst:
    """The clients trade while a worker dies mid-sync, processes die after a cancel's and a switch's commit,
    the kill switch is drilled, and an asset lookup fails."""
    tally = Tally()
    partial_fills: queue.Queue[str] = queue.Queue()
    stepper = MarketStepper(fake_url=deployment.fake_url, partial_fills=partial_fills)
    started = time.monotonic()
    deadline = started + BURST_BUDGET_S

    def mark(fraction: float) -> dict[str, Any]:
        return {"orders": int(ORDERS * fraction), "at": started + BURST_BUDGET_S * fraction}

    threads = [
        ClientThread(client=client, web_urls=deployment.web_urls, orders=ORDERS // len(clients),
                     seed=SEED * 100 + index, tally=tally, deadline=deadline, partial_fills=partial_fills)
        for index, client in enumerate(clients)
    ]
    stepper.start()
    for thread in threads:
        thread.start()
    kill: WorkerKill | None = None
    drill: KillSwitchDrill | None = None
    outage: OutageEntry | None = None
    intent_drills: list[drills.DrillOutcome] = []
    fake = FakeAlpacaControl(deployment.fake_url)
    try:
        if wait_for_milestone(tally, clients=threads, **mark(0.25)):
            kill = kill_a_worker_mid_sync(deployment, tally, deadline)
            report.progress(f"worker kill: {kill}")
        if wait_for_milestone(tally, clients=threads, **mark(0.35)):
            intent_drills += crash_drills(deployment, fake, clients, drill_client, officer, report)
        if wait_for_milestone(tally, clients=threads, **mark(0.45)):
            drill, outcome = global_switch_drill(deployment, fake, officer_token, tally, threads, mark, report)
            intent_drills.append(outcome)
            arm_slow_gateway(fake)
        if wait_for_milestone(tally, clients=threads, **mark(0.7)):
            # Only the outage's own failures while it is measured: a random read fault (a 429, which the
            # adapter does not retry) could otherwise land on the retry that the broker must answer.
            fake.clear_faults()
            try:
                outage = first_order_in_a_new_symbol_during_an_outage(deployment, clients[0])
            finally:
                arm_faults(fake)
                arm_slow_gateway(fake)
            report.progress(f"new symbol during an asset-lookup outage: {outage}")
        # A client checks the deadline before each order; one order answers within ANSWER_TIMEOUT_S.
        join_until = deadline + 35
        for thread in threads:
            thread.join(timeout=max(0.1, join_until - time.monotonic()))
    finally:
        stepper.stop.set()
        stepper.join(timeout=10)
    crashed = [f"{t.name}: {t.error!r}" for t in [*threads, stepper] if t.error is not None]
    assert not crashed, crashed
    assert not any(t.is_alive() for t in threads), "a client thread did not finish by its deadline"
    return Burst(tally, stepper, kill, drill, outage, time.monotonic() - started, intent_drills)


def scenario_invariants(evidence: invariants.Evidence, burst: Burst) -> list[invariants.Invariant]:
    sync_runs = JobRun.objects.get(name="order_sync").runs + JobRun.objects.get(name="reconcile").runs
    results = invariants.check_all(evidence, sync_runs=sync_runs)
    kill = burst.kill
    if kill is not None:
        results.append(dataclasses.replace(
            kill.ledger_whole, name="a worker SIGKILLed mid-sync left nothing half-applied (ledger whole)"
        ))
    results.append(invariants.Invariant("the worker was SIGKILLed mid-sync and a new one took over",
                                        bool(kill and kill.mid_sync), 1, "" if kill and kill.mid_sync else f"{kill}"))
    # SPEC 5: never a 500. A broker that cannot say whether a symbol is tradable calls for a
    # problem+json answer (a 503 that stores nothing, so the client retries with the same id, is the
    # natural one; a stored 400 denial would also be documented), and the retry goes through.
    outage = burst.outage
    outage_ok = (outage is not None and outage.during in {400, 503} and "problem+json" in outage.during_content_type
                 and outage.after in {200, 201})
    results.append(invariants.Invariant(
        "the first order in a new symbol during an asset-lookup outage gets a problem+json answer, never a 500",
        outage_ok, 2, "" if outage_ok else f"{outage}"))
    # SPEC 3.4 (issue #10): the decided state at the broker within 2 sync cycles of the broker answering again.
    expected = {"a cancel committed", "a strategy kill switch committed", "a storm of cancels", "the global switch"}
    ran = {name for name in expected for d in burst.intent_drills if d.name.startswith(name)}
    results.append(invariants.Invariant("every intent drill ran (cancel crash, switch crash, cancel storm, "
                                        "global switch)",
                                        ran == expected, len(burst.intent_drills),
                                        "" if ran == expected else f"missing: {sorted(expected - ran)}"))
    for outcome in burst.intent_drills:
        results.append(invariants.Invariant(
            f"{outcome.name} within {drills.MAX_CYCLES} sync cycles of the broker answering again"
            if outcome.measured_in_cycles else f"{outcome.name} (at least one cancel faulted; see the cancel "
                                               "invariant for the outcome)", outcome.held, 1,
            "" if outcome.held else (outcome.detail or f"took {outcome.cycles} cycles")))
    repeated = RiskEvent.objects.filter(kind=RiskEventKind.KILL_SWITCH_ACTIVATED, strategy__isnull=True,
                                        old__active=True).count()
    results.append(invariants.Invariant("a repeated activation of the global switch is audited", repeated >= 2,
                                        repeated, "" if repeated >= 2 else f"{repeated} repeated-activation events"))
    return results


def test_under_broker_faults_a_killed_worker_and_a_kill_switch_drill_the_books_still_match_the_broker(
    deployment: Deployment, request: pytest.FixtureRequest
) -> None:
    report = Report(request.config)
    durations: dict[str, float] = {"start-up": deployment.start_up_s}
    fake = FakeAlpacaControl(deployment.fake_url)
    officer, officer_token, clients, drill_client = create_people()
    warm_up(deployment, clients)
    report.progress("deployment up and warm; arming faults")

    arm_faults(fake)
    burst = run_burst(deployment, clients, drill_client, officer, officer_token, report)
    durations["burst"] = burst.duration_s
    report.progress(f"burst over: {burst.tally.orders_attempted} orders attempted; faults off, converging")

    fake.clear_faults()
    fake.step()  # the last market orders fill; nothing moves at the fake after this
    settle_s = LATEST_GATEWAY_S + 2 * float(SYNC_EVERY_S)  # the last send a slow gateway held, then 2 syncs
    durations["convergence"], left = converge(fake, CONVERGE_BUDGET_S, settle_s=settle_s)
    report.progress(f"converged in {durations['convergence']:.1f}s ({len(left)} orders still diverging)")
    reconcile = services.positions_reconcile(label="job:chaos-final-check")
    durations["scenario"] = report.elapsed()

    fake_state, fake_requests = fake.state(), fake.requests
    # Kept beside the process logs (pytest's tmp dir) for a post-mortem of a failed run.
    evidence_dir = deployment.stack.log_dir
    (evidence_dir / "fake-state.json").write_text(json.dumps(fake_state))
    (evidence_dir / "fake-requests.json").write_text(json.dumps(fake_requests))
    drill = burst.drill
    evidence = invariants.gather(
        fake_state=fake_state, fake_requests=fake_requests, initial_cash=CASH, tally=burst.tally, reconcile=reconcile,
        kill_window=invariants.KillWindow(drill.activated_at, drill.reset_at, officer,
                                          repeated=GLOBAL_DRILL_REPEATED) if drill else None,
    )
    results = scenario_invariants(evidence, burst)

    report_figures(report, burst=burst, fake_state=fake_state, fake_requests=fake_requests, durations=durations,
                   local=evidence.local_orders)
    report.add(f"evidence (process logs, fake state and request log): {evidence_dir}")
    held = sum(r.held for r in results)
    report.add(f"invariants: {len(results)} checked, {held} held, {len(results) - held} broken")
    for result in results:
        report.add(f"  [{'held' if result.held else 'BROKEN'}] {result.name} ({result.checked:,} checked)"
                   + (f" -- {result.detail}" if result.detail else ""))

    dead = deployment.stack.died_unexpectedly()
    assert not dead, dead
    broken = [f"{r.name}: {r.detail}" for r in results if not r.held]
    assert not broken, "\n".join(broken)
