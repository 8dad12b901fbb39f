"""What must hold after the chaos, checked against the broker's own records (the fake's state).

Each check returns an :class:`Invariant`: whether it held, how many things it
looked at, and the first offenders, so the scenario can print every result
before it fails on the first one that broke. docs/runbooks/execution-verification.md
explains each invariant and how an operator checks it by hand.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection

from orders.models import Fill, Order, OrderTransition, Position, ReconciliationBreak, ReconciliationRun
from orders.services import ReconcileResult
from orders.states import CORRECTIONS, TRANSITIONS, OrderStatus, from_broker_status
from risk.models import RiskEvent, RiskEventKind
from tests.e2e.load import Tally

S = OrderStatus
PRICE_PLACES = Decimal("0.00000001")
NEVER_AT_BROKER = {S.DENIED, S.CANCELLED, S.REJECTED}
AMBIGUOUS = {S.PENDING, S.UNKNOWN, S.PENDING_CANCEL}
# Alpaca's "open" side of its status words (what GET /v2/orders?status=open returns).
BROKER_OPEN = {"new", "partially_filled", "accepted", "pending_new", "accepted_for_bidding", "pending_cancel",
               "pending_replace", "held", "done_for_day", "stopped", "suspended", "calculated"}
SHOW = 5  # offenders shown per invariant


@dataclass
class Invariant:
    name: str
    held: bool
    checked: int
    detail: str = ""


@dataclass
class KillWindow:
    """From the activation's lock (activated_at) to the reset's audit row: no send may reach the broker."""

    activated_at: dt.datetime
    reset_at: dt.datetime
    officer: str
    repeated: int = 0  # activations of the already active switch during the drill


@dataclass
class Evidence:
    broker_orders: list[dict[str, Any]]
    submissions: dict[str, int]
    broker_positions: dict[str, Decimal]
    broker_cash: Decimal
    initial_cash: Decimal
    local_orders: list[dict[str, Any]]
    chains: dict[Any, list[tuple[str, str, str, str]]]  # order id -> [(from, to, actor_label, reason)]
    kill_window: KillWindow | None
    tally: Tally
    reconcile: ReconcileResult | None
    broker_requests: list[dict[str, Any]]
    by_client_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    broker_by_client_id: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_client_id = {o["client_order_id"]: o for o in self.local_orders}
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for order in self.broker_orders:
            grouped[order["client_order_id"]].append(order)
        self.broker_by_client_id = dict(grouped)


def local_orders() -> list[dict[str, Any]]:
    return list(
        Order.objects.values(
            "id", "client_order_id", "status", "broker_order_id", "filled_qty", "filled_avg_price", "created_at",
            "sent_at", "symbol", "side", "reject_reason", "origin",
        )
    )


def gather(*, fake_state: dict[str, Any], fake_requests: list[dict[str, Any]], initial_cash: Decimal, tally: Tally,
           kill_window: KillWindow | None, reconcile: ReconcileResult | None) -> Evidence:
    chains: dict[Any, list[tuple[str, str, str, str]]] = defaultdict(list)
    for order_id, source, target, label, reason in OrderTransition.objects.order_by("order_id", "id").values_list(
        "order_id", "from_status", "to_status", "actor_label", "reason"
    ):
        chains[order_id].append((source, target, label, reason))
    return Evidence(
        broker_orders=fake_state["orders"],
        submissions=fake_state["submissions"],
        broker_positions={p["symbol"]: Decimal(p["qty"]) for p in fake_state["positions"]},
        broker_cash=Decimal(fake_state["account"]["cash"]),
        initial_cash=initial_cash,
        local_orders=local_orders(),
        chains=dict(chains),
        kill_window=kill_window,
        tally=tally,
        reconcile=reconcile,
        broker_requests=fake_requests,
    )


def broker_expected_status(broker_order: dict[str, Any]) -> str:
    """Our state for the broker's order, as the sync maps it (a working order with fills is partially filled)."""
    target = from_broker_status(broker_order["status"])
    if target == S.SUBMITTED and Decimal(broker_order["filled_qty"]) > 0:
        target = S.PARTIALLY_FILLED
    return target


def _ns(moment: dt.datetime) -> int:
    return (moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1) * 1000


def _broker_ns(text: str) -> int:
    """Alpaca's RFC 3339 with nanoseconds, as the fake writes it (always UTC, Z)."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    seconds = dt.datetime.fromisoformat(whole).replace(tzinfo=dt.UTC)
    return _ns(seconds) + int(fraction.ljust(9, "0") or 0)


def _first(items: list[str]) -> str:
    shown = "; ".join(items[:SHOW])
    return f"{len(items)}: {shown}{' ...' if len(items) > SHOW else ''}" if items else ""


# --- the invariants ------------------------------------------------------------


def one_local_order_per_broker_order(ev: Evidence) -> Invariant:
    problems = []
    broker_ids = {o["id"]: o for o in ev.broker_orders}
    for broker_order in ev.broker_orders:
        local = ev.by_client_id.get(broker_order["client_order_id"])
        if local is None:
            problems.append(f"broker order {broker_order['client_order_id']} has no local order")
        elif local["broker_order_id"] != broker_order["id"]:
            problems.append(f"{local['client_order_id']}: local broker_order_id {local['broker_order_id']} "
                            f"is not the broker's {broker_order['id']}")
    for local in ev.local_orders:
        at_broker = local["client_order_id"] in ev.broker_by_client_id
        if local["broker_order_id"] and local["broker_order_id"] not in broker_ids:
            problems.append(f"{local['client_order_id']} names broker order {local['broker_order_id']}, "
                            f"which the broker does not have")
        if not at_broker and local["status"] not in NEVER_AT_BROKER:
            problems.append(f"{local['client_order_id']} is {local['status']} but the broker never had it")
    return Invariant("every broker order has exactly one local order, and every sent local order is at the broker",
                     not problems, len(ev.broker_orders) + len(ev.local_orders), _first(problems))


def no_client_order_id_sent_twice(ev: Evidence) -> Invariant:
    problems = [f"{cid}: {len(orders)} broker orders" for cid, orders in ev.broker_by_client_id.items()
                if len(orders) != 1]
    problems += [f"{cid}: POSTed {count} times" for cid, count in ev.submissions.items() if count > 1]
    return Invariant("no client_order_id reached the broker twice (one POST, one broker order per id)",
                     not problems, len(ev.submissions), _first(problems))


def each_id_stored_once_by_the_api(ev: Evidence) -> Invariant:
    problems = [f"{cid}: {count} answers each stored an order" for cid, count in ev.tally.stores.items() if count > 1]
    for cid, kinds in ev.tally.duplicate_pairs.items():
        if sorted(kinds).count("replayed") != 1 or len(kinds) != 2:
            problems.append(f"concurrent pair {cid} answered {kinds} (want one store and one replay)")
    missing = [cid for cid in ev.tally.ids_answered if cid not in ev.by_client_id]
    problems += [f"{cid}: answered but not stored" for cid in missing]
    return Invariant("the API stored each client_order_id once (concurrent duplicates and retries were replays)",
                     not problems, len(ev.tally.ids_answered) + len(ev.tally.duplicate_pairs), _first(problems))


def divergences(broker_orders: list[dict[str, Any]], local_orders: list[dict[str, Any]]) -> list[str]:
    """Local orders not (yet) in the broker's state: still ambiguous, or another status, fill or average."""
    at_broker = {o["client_order_id"]: o for o in broker_orders}
    problems = []
    for local in local_orders:
        if local["status"] in AMBIGUOUS:
            problems.append(f"{local['client_order_id']} is still {local['status']}")
            continue
        broker_order = at_broker.get(local["client_order_id"])
        if broker_order is None:
            continue  # never at the broker: checked by the one-to-one invariant
        expected = broker_expected_status(broker_order)
        filled = Decimal(broker_order["filled_qty"])
        average = broker_order["filled_avg_price"]
        if local["status"] != expected:
            problems.append(f"{local['client_order_id']}: local {local['status']}, broker {broker_order['status']} "
                            f"(-> {expected})")
        elif local["filled_qty"] != filled:
            problems.append(f"{local['client_order_id']}: local filled {local['filled_qty']}, broker {filled}")
        elif average is not None and local["filled_avg_price"] != Decimal(average).quantize(PRICE_PLACES):
            problems.append(f"{local['client_order_id']}: local average {local['filled_avg_price']}, broker {average}")
    return problems


def local_state_is_the_brokers(ev: Evidence) -> Invariant:
    problems = divergences(ev.broker_orders, ev.local_orders)
    return Invariant("every local order's final state is the broker's (status, filled qty, average price)",
                     not problems, len(ev.local_orders), _first(problems))


def positions_reconcile_without_breaks(ev: Evidence) -> Invariant:
    if ev.reconcile is None:
        return Invariant("positions_reconcile finds zero breaks", False, 0, "reconciliation did not run")
    breaks = [str(b) for b in ev.reconcile.breaks]
    strays = [str(o) for o in ev.reconcile.run.unknown_broker_orders]
    return Invariant("positions_reconcile finds zero breaks and no open broker order unknown to us",
                     not breaks and not strays, ev.reconcile.run.positions_checked, _first(breaks + strays))


def every_change_is_audited(ev: Evidence) -> Invariant:
    problems = []
    for local in ev.local_orders:
        chain = ev.chains.get(local["id"], [])
        name = local["client_order_id"]
        if not chain:
            problems.append(f"{name}: no transition rows")
            continue
        if chain[0][0] != "" or chain[0][1] not in {S.PENDING, S.DENIED}:
            problems.append(f"{name}: first row {chain[0][0]!r} -> {chain[0][1]}")
        for (_, previous_to, _, _), (source, target, _, reason) in itertools.pairwise(chain):
            # A late-truth correction is an edge of CORRECTIONS, and only with its reason.
            late_truth = reason.startswith("late truth") and target in CORRECTIONS.get(source, frozenset())
            if source != previous_to:
                problems.append(f"{name}: row {source} -> {target} follows one that ended in {previous_to}")
            elif target not in TRANSITIONS.get(source, frozenset()) and not late_truth:
                problems.append(f"{name}: {source} -> {target} is not in the transition table")
        if chain[-1][1] != local["status"]:
            problems.append(f"{name}: last row ends in {chain[-1][1]}, the order is {local['status']}")
    checked = len(ev.local_orders)
    if ev.kill_window is not None:
        activated = list(RiskEvent.objects.filter(kind=RiskEventKind.KILL_SWITCH_ACTIVATED, strategy__isnull=True)
                         .order_by("at", "id").values_list("actor_label", "new"))
        resets = list(RiskEvent.objects.filter(kind=RiskEventKind.KILL_SWITCH_RESET, strategy__isnull=True)
                      .values_list("actor_label", flat=True))
        officer = ev.kill_window.officer
        first = {"active": True, "source": "api", "scope": "global"}
        # The drill activates the switch, then (adr/0011) activates it again while it is active: each
        # repeated activation is audited as such, and no other activation is.
        expected = [(officer, first)] + [(officer, {**first, "repeated": True})] * ev.kill_window.repeated
        if activated != expected:
            problems.append(f"kill switch activation events: {activated}")
        if resets != [officer]:
            problems.append(f"kill switch reset events: {resets}")
        by_drill = [
            (local["client_order_id"], label)
            for local in ev.local_orders
            for (_, target, label, reason) in ev.chains.get(local["id"], [])
            if target == S.PENDING_CANCEL and reason == "kill switch activated" and label != officer
        ]
        problems += [f"{cid}: kill-switch cancel attributed to {label}" for cid, label in by_drill]
        checked += 2
    return Invariant("every state change has its audit row (transition chains, kill-switch risk events)",
                     not problems, checked, _first(problems))


def nothing_reached_the_broker_while_halted(ev: Evidence) -> Invariant:
    if ev.kill_window is None:
        return Invariant("nothing reached the broker while the kill switch was active", False, 0,
                         "the kill switch drill did not run")
    start, end = _ns(ev.kill_window.activated_at), _ns(ev.kill_window.reset_at)
    # The switch's own flatten orders (SPEC 4.4 step 3, KILL_SWITCH_FLATTEN=true) are the one exception.
    flatten = flatten_ids(ev)
    problems = [
        f"{o['client_order_id']} created at the broker {o['created_at']}"
        for o in ev.broker_orders
        if start < _broker_ns(o["created_at"]) < end and o["client_order_id"] not in flatten
    ]
    problems += [
        f"{o['client_order_id']} sent at {o['sent_at']:%H:%M:%S.%f}"
        for o in ev.local_orders
        if o["sent_at"] is not None and start < _ns(o["sent_at"]) < end and o["client_order_id"] not in flatten
    ]
    return Invariant("nothing but the switch's flatten orders reached the broker after the kill switch committed "
                     "(until its reset)", not problems, len(ev.broker_orders), _first(problems))


def flatten_ids(ev: Evidence) -> set[str]:
    return {o["client_order_id"] for o in ev.local_orders if o["origin"] == "flatten"}


def kill_switch_left_nothing_working(ev: Evidence) -> Invariant:
    """SPEC 4.4: one cancel-all call per activation, after which no order sent before the activation still works
    at the broker. SPEC 3.4: a cancel-all is sent again only after one failed (the broker answered an error, or no
    answer): never one more while the last one did its job."""
    if ev.kill_window is None:
        return Invariant("the kill switch cancelled everything working at the broker", False, 0, "no drill")
    start = _ns(ev.kill_window.activated_at)
    cancel_alls = [r for r in ev.broker_requests if r["method"] == "DELETE" and r["path"] == "/v2/orders"]
    failed = sum(1 for r in cancel_alls if r["fault"] is not None)
    activations = RiskEvent.objects.filter(kind=RiskEventKind.KILL_SWITCH_ACTIVATED, strategy__isnull=True).count()
    allowed = activations + failed
    problems = [f"{len(cancel_alls)} cancel-all calls (want 1 per activation, {activations}, plus one after each of "
                f"the {failed} that failed)"] if not 1 <= len(cancel_alls) <= allowed else []
    problems += [
        f"{o['client_order_id']} (sent before the activation) is still {o['status']}"
        for o in ev.broker_orders
        if _broker_ns(o["created_at"]) < start and o["status"] in BROKER_OPEN
    ]
    return Invariant("the kill switch cancelled everything working at the broker: one cancel-all per activation, "
                     "another only after a failed one", not problems, len(ev.broker_orders), _first(problems))


def every_cancel_reached_the_broker(ev: Evidence) -> Invariant:
    """SPEC 3.4 (adr/0011): every order the back office decided to cancel is closed at the broker in the end
    (cancelled, or filled if the fill won), whatever the broker did to the cancel the first time."""
    asked = {order_id for order_id, chain in ev.chains.items() if any(t == S.PENDING_CANCEL for _, t, _, _ in chain)}
    problems = []
    for local in ev.local_orders:
        if local["id"] not in asked:
            continue
        for broker_order in ev.broker_by_client_id.get(local["client_order_id"], []):
            if broker_order["status"] in BROKER_OPEN:
                problems.append(f"{local['client_order_id']} ({local['status']}) is {broker_order['status']} at the "
                                "broker")
    return Invariant("every order the back office decided to cancel is cancelled or filled at the broker",
                     not problems, len(asked), _first(problems))


def no_flatten_crossed_zero(ev: Evidence) -> Invariant:
    """SPEC 3.4/4.4: flatten closes positions from the broker's truth; no position crosses zero.

    The broker's fills replayed in time order (an order's fills at its last fill time), per symbol: a fill of
    one of our flatten orders never takes the position past zero.
    """
    flatten = flatten_ids(ev)
    fills = sorted(
        (_broker_ns(o["filled_at"] or o["updated_at"]), o["symbol"], o["side"], Decimal(o["filled_qty"]),
         o["client_order_id"])
        for o in ev.broker_orders if Decimal(o["filled_qty"]) > 0
    )
    position: dict[str, Decimal] = defaultdict(Decimal)
    problems = []
    for _, symbol, side, qty, client_order_id in fills:
        before = position[symbol]
        position[symbol] += qty if side == "buy" else -qty
        if client_order_id in flatten and (before == 0 or (position[symbol] != 0 and (before > 0) != (
                position[symbol] > 0))):
            problems.append(f"{client_order_id} {side} {qty} {symbol}: position {before} -> {position[symbol]}")
    sent = sum(1 for o in ev.broker_orders if o["client_order_id"] in flatten)
    return Invariant("no flatten order took a position past zero (one flatten per symbol at a time)",
                     not problems and sent > 0, sent, _first(problems) or ("" if sent else "no flatten was sent"))


def sync_calls_grow_with_pages(ev: Evidence, *, sync_runs: int) -> Invariant:
    """SPEC 3.4: a status sync costs a few listing pages, not one call per order.

    A lookup by id is expected after a client's own cancel (DELETE then GET of
    that order); any other GET /v2/orders/{id} is the sync asking for orders
    one by one. Allowed: a handful per run, for a genuine anomaly.
    """
    cancelled_by_id = {r["path"] for r in ev.broker_requests if r["method"] == "DELETE"}
    lookups = [r for r in ev.broker_requests
               if r["method"] == "GET" and r["path"].startswith("/v2/orders/") and r["path"] not in cancelled_by_id]
    listings = sum(1 for r in ev.broker_requests if r["method"] == "GET" and r["path"] == "/v2/orders")
    allowed = max(20, len(ev.broker_orders) // 100)
    detail = (f"{len(lookups):,} lookups by id against {listings:,} listing pages in {sync_runs:,} sync runs "
              f"(allowed {allowed}); the sync fetched orders one by one that its listings should have named "
              f"(see the workers' DEBUG 'sync lookup' lines)")
    return Invariant("status polling's broker calls grow with listing pages, not with orders (SPEC 3.4)",
                     len(lookups) <= allowed, len(lookups), "" if len(lookups) <= allowed else detail)


def no_false_reconciliation_break() -> Invariant:
    """No fill was ever lost (the final books match the broker's), so every break recorded was a false alarm.

    positions_reconcile promises to confirm a difference after one more sync
    before recording it; a break here is a CRITICAL alert (and, with
    HALT_ON_RECONCILIATION_BREAK, a global halt) for a ledger that was merely
    a poll behind the broker.
    """
    breaks = [f"{b.run.at:%H:%M:%S} {b}" for b in ReconciliationBreak.objects.select_related("run").order_by("run__at")]
    return Invariant("no reconciliation break was recorded for a ledger that was only a poll behind",
                     not breaks, ReconciliationRun.objects.count(), _first(breaks))


def broker_cash_and_positions_are_the_ledgers(ev: Evidence) -> Invariant:
    ledger_cash = ev.initial_cash
    ledger_positions: Counter[str] = Counter()
    fills = 0
    for side, symbol, qty, price in Fill.objects.values_list("side", "symbol", "qty", "price"):
        signed = qty if side == "buy" else -qty
        ledger_cash -= signed * price
        ledger_positions[symbol] += signed
        fills += 1
    problems = []
    if ledger_cash != ev.broker_cash:
        problems.append(f"cash: broker {ev.broker_cash}, ledger {ledger_cash}")
    for symbol in sorted(set(ev.broker_positions) | set(ledger_positions)):
        broker_qty, ledger_qty = ev.broker_positions.get(symbol, Decimal(0)), ledger_positions.get(symbol, Decimal(0))
        if broker_qty != ledger_qty:
            problems.append(f"{symbol}: broker {broker_qty}, ledger {ledger_qty}")
    return Invariant("cash and positions at the broker equal the ledger's fills", not problems, fills + 1,
                     _first(problems))


def ledger_positions_are_the_brokers(ev: Evidence) -> Invariant:
    """The position ledger (summed over strategies) equals the broker's position in every symbol.

    What reconciliation compares, checked here from the fake's own records: a
    fill the back office missed (an order booked rejected that the broker
    filled late) shows up as a symbol where the two differ.
    """
    ledger: Counter[str] = Counter()
    for symbol, qty in Position.objects.values_list("symbol", "qty"):
        ledger[symbol] += qty
    zero = Decimal(0)
    symbols = sorted(set(ev.broker_positions) | set(ledger))
    problems = [f"{symbol}: broker {ev.broker_positions.get(symbol, zero)}, ledger {ledger.get(symbol, zero)}"
                for symbol in symbols if ev.broker_positions.get(symbol, zero) != ledger.get(symbol, zero)]
    return Invariant("the position ledger equals the broker for every symbol at the end", not problems,
                     len(symbols), _first(problems))


def ledger_is_internally_consistent() -> Invariant:
    """Each order's filled_qty is the sum of its fills; each position is the sum of its fills.

    One statement each, so a check run while workers write reads one snapshot.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT o.client_order_id, o.filled_qty, COALESCE(f.total, 0)
            FROM orders_order o
            LEFT JOIN (SELECT order_id, SUM(qty) AS total FROM orders_fill GROUP BY order_id) f ON f.order_id = o.id
            WHERE o.filled_qty <> COALESCE(f.total, 0)
            """
        )
        orders = [f"{cid}: filled_qty {qty}, fills {total}" for cid, qty, total in cursor.fetchall()]
        cursor.execute(
            """
            SELECT p.strategy_id, p.symbol, p.qty, COALESCE(f.total, 0)
            FROM orders_position p
            LEFT JOIN (
                SELECT strategy_id, symbol, SUM(CASE WHEN side = 'buy' THEN qty ELSE -qty END) AS total
                FROM orders_fill GROUP BY strategy_id, symbol
            ) f ON f.strategy_id = p.strategy_id AND f.symbol = p.symbol
            WHERE p.qty <> COALESCE(f.total, 0)
            """
        )
        positions = [f"strategy {sid} {symbol}: position {qty}, fills {total}"
                     for sid, symbol, qty, total in cursor.fetchall()]
        cursor.execute("SELECT COUNT(*) FROM orders_order")
        checked = cursor.fetchone()[0]
    problems = orders + positions
    return Invariant("the ledger is whole: order filled_qty and positions equal their fills", not problems, checked,
                     _first(problems))


def api_answered_by_contract(ev: Evidence) -> Invariant:
    problems = list(ev.tally.unexpected)
    return Invariant("the API gave only documented answers (no 5xx, no dropped connection, 409 on reuse)",
                     not problems, sum(ev.tally.answers.values()), _first(problems))


def check_all(ev: Evidence, *, sync_runs: int) -> list[Invariant]:
    return [
        one_local_order_per_broker_order(ev),
        no_client_order_id_sent_twice(ev),
        each_id_stored_once_by_the_api(ev),
        local_state_is_the_brokers(ev),
        positions_reconcile_without_breaks(ev),
        every_change_is_audited(ev),
        nothing_reached_the_broker_while_halted(ev),
        kill_switch_left_nothing_working(ev),
        every_cancel_reached_the_broker(ev),
        no_flatten_crossed_zero(ev),
        broker_cash_and_positions_are_the_ledgers(ev),
        ledger_positions_are_the_brokers(ev),
        ledger_is_internally_consistent(),
        api_answered_by_contract(ev),
        sync_calls_grow_with_pages(ev, sync_runs=sync_runs),
        no_false_reconciliation_break(),
    ]
