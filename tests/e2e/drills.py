"""Issue #10's drills inside the chaos scenario, each measured in status-sync cycles (adr/0011).

- a cancel committed, then the process that decided it SIGKILLed before the broker heard of it;
- a strategy kill switch committed, then the process SIGKILLed before its first per-order cancel;
- the global kill switch whose first cancel-all is answered 504, activated twice at once, with flatten.

"Within 2 sync cycles of the broker answering again": the drill clears the
fake's faults (the broker answers again), counts the order-sync runs that
start from then (``JobRun.runs`` of ``order_sync``, beat's one-second job on
the deployment's workers) until the broker shows the decided state, and the
invariant is that count <= 2. The faults are armed again afterwards.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

from core.models import JobRun
from orders.models import Order, OrderOrigin
from risk.models import KillSwitch, Strategy
from tests.e2e.load import LAST_PRICES, ApiClient
from tests.fake_alpaca.control import FakeAlpacaControl
from tests.intent import OPEN, killed_right_after_the_commit

MAX_CYCLES = 2
CENT = Decimal("0.01")


@dataclass
class DrillOutcome:
    name: str
    cycles: int | None  # sync runs started after the broker answered again, until done; None: not done in time
    detail: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    measured_in_cycles: bool = True  # False: the drill's outcome is judged by the final invariants

    @property
    def held(self) -> bool:
        return self.cycles is not None and self.cycles <= MAX_CYCLES


def sync_runs() -> int:
    run = JobRun.objects.filter(name="order_sync").first()
    return run.runs if run else 0


def cycles_until(done: Callable[[], bool], *, timeout_s: float = 30.0) -> int | None:
    """Order-sync runs started from now until ``done()``; None if it never was within the timeout."""
    start = sync_runs()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return sync_runs() - start
        time.sleep(0.1)
    return None


def broker_status(fake: FakeAlpacaControl, client_order_id: str) -> str | None:
    order = fake.order(client_order_id=client_order_id)
    return order["status"] if order else None


def resting_order(web_url: str, client: ApiClient, client_order_id: str, *, strategy: str | None = None) -> dict:
    """A limit buy 3 % under the last price: it works at the broker and does not fill (prices are held)."""
    price = (LAST_PRICES["AAPL"] * Decimal("0.97")).quantize(CENT)
    body = {"client_order_id": client_order_id, "strategy": strategy or client.strategies[0], "symbol": "AAPL",
            "side": "buy", "qty": "1", "type": "limit", "limit_price": str(price)}
    response = requests.post(f"{web_url}/v1/orders", json=body, timeout=30,
                             headers={"Authorization": f"Token {client.token}"})
    assert response.status_code == 201 and response.json()["status"] == "submitted", response.text
    return response.json()


def cancel_committed_then_the_process_died(
    fake: FakeAlpacaControl, web_url: str, client: ApiClient, *, env: dict[str, str], log_dir: Path
) -> DrillOutcome:
    fake.clear_faults()
    order = resting_order(web_url, client, "drill-cancel-crash")
    killed_right_after_the_commit(fake, f"""
        from orders import services
        from orders.models import Order
        services.order_cancel(acting_user=None, order=Order.objects.get(pk="{order['id']}"))
    """, method="DELETE", path=f"/v2/orders/{order['broker_order_id']}", log_dir=log_dir, env=env)
    facts = {"local": Order.objects.get(pk=order["id"]).status, "broker": broker_status(fake, "drill-cancel-crash")}
    # The decision is stored and the broker never heard of it; the broker answers again from here.
    cycles = cycles_until(lambda: broker_status(fake, "drill-cancel-crash") in {"canceled", "filled"})
    # The killed process's DELETE was held unprocessed; the deployment's sync runs every second, so by
    # the time these facts are read its next cycle may already have sent the cancel (broker "canceled")
    # or even recorded it. What must hold: the decision was committed (never "working" again).
    ok = facts["local"] in {"pending_cancel", "cancelled"} and facts["broker"] in {"new", "pending_cancel", "canceled"}
    return DrillOutcome("a cancel committed just before its process was SIGKILLed reaches the broker",
                        cycles if ok else None, "" if ok else f"after the kill: {facts}", facts)


def strategy_switch_committed_then_the_process_died(
    fake: FakeAlpacaControl, web_url: str, client: ApiClient, strategy: Strategy, *, env: dict[str, str],
    log_dir: Path,
) -> DrillOutcome:
    fake.clear_faults()
    orders = [resting_order(web_url, client, f"drill-switch-crash-{i}", strategy=strategy.slug) for i in range(3)]
    killed_right_after_the_commit(fake, f"""
        from risk.models import Strategy
        from risk.services import killswitch_activate
        killswitch_activate(acting_user=None, strategy=Strategy.objects.get(pk={strategy.pk}),
                            reason="chaos drill: the process dies right after this commit")
    """, method="DELETE", path=[f"/v2/orders/{o['broker_order_id']}" for o in orders], log_dir=log_dir, env=env)
    ids = [o["client_order_id"] for o in orders]

    def still_open() -> list[str]:
        return [i for i in ids if broker_status(fake, i) in OPEN]

    facts = {"switch_active": KillSwitch.objects.get(strategy=strategy).active, "open_after_kill": len(still_open())}
    cycles = cycles_until(lambda: not still_open())
    # As above: the sync may already have cancelled some by the time the facts are read.
    ok = facts["switch_active"] is True
    return DrillOutcome("a strategy kill switch committed just before its process was SIGKILLed cancels its orders",
                        cycles if ok else None, "" if ok else f"after the kill: {facts}", facts)


def open_in_global_scope(fake: FakeAlpacaControl) -> list[str]:
    """Open broker orders that are not our flatten orders: what an active global switch must cancel."""
    flatten = set(Order.objects.filter(origin=OrderOrigin.FLATTEN).values_list("client_order_id", flat=True))
    return [o["client_order_id"] for o in fake.orders if o["status"] in OPEN and o["client_order_id"] not in flatten]


def activate_global_twice_at_once(web_urls: list[str], officer_token: str, reason: str) -> list[requests.Response]:
    """Two officers' requests (one per web process) at the same instant."""
    start = threading.Barrier(len(web_urls))
    answers: list[requests.Response] = []

    def activate(url: str) -> None:
        start.wait(timeout=10)
        answers.append(requests.post(
            f"{url}/v1/controls/kill-switch", json={"action": "activate", "scope": "global", "reason": reason},
            headers={"Authorization": f"Token {officer_token}"}, timeout=60,
        ))

    threads = [threading.Thread(target=activate, args=(url,)) for url in web_urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    return answers


# While the storm's cancels go out: every way a cancel can fail, often (on top of the scenario's faults).
STORM_FAULTS: list[dict[str, Any]] = [
    {"kind": kind, "probability": 0.1, **extra}
    for kind, extra in [("http_500", {}), ("http_504", {}), ("http_429", {"reset_in_s": 1}),
                        ("stall", {"seconds": 1.0}), ("slow", {"seconds": 1.0}), ("drop_connection", {}),
                        ("lose_response", {})]
]


def cancel_storm(fake: FakeAlpacaControl, web_url: str, client: ApiClient, *, orders: int = 20) -> list[str]:
    """Resting orders of the drill's strategy, each cancelled through the API while cancels fail often.

    Every answer to a working order must be a 202 (the decision is stored whatever the broker did); the invariant
    "every order the back office decided to cancel is cancelled or filled at the broker" then
    proves that the sync drove each one. Returns the storm's client_order_ids.
    """
    headers = {"Authorization": f"Token {client.token}"}
    price = (LAST_PRICES["AAPL"] * Decimal("0.97")).quantize(CENT)
    placed = []
    for index in range(orders):
        body = {"client_order_id": f"storm-{index}", "strategy": client.strategies[0], "symbol": "AAPL",
                "side": "buy", "qty": "1", "type": "limit", "limit_price": str(price)}
        response = requests.post(f"{web_url}/v1/orders", json=body, headers=headers, timeout=30)
        if response.status_code == 201 and response.json()["status"] in {"submitted", "unknown"}:
            placed.append(response.json())
    for rule in STORM_FAULTS:
        fake.set_fault(method="DELETE", path="/v2/orders/*", count=None, **rule)
    cancelled = []
    for order in placed:
        answer = requests.delete(f"{web_url}/v1/orders/{order['id']}", headers=headers, timeout=30)
        # 409: an ambiguous send already settled as never received (rejected): nothing to cancel.
        assert answer.status_code in {202, 409}, answer.text
        if answer.status_code == 202:
            cancelled.append(order["client_order_id"])
    return cancelled
