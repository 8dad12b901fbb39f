"""Intent reconciliation: every sync cycle pushes the broker toward what the back office decided (adr/0011).

What is decided is stored before anything is sent: an order's
``pending_cancel``, an active kill switch (and KILL_SWITCH_FLATTEN). The
broker calls made right after a decision are only the first attempt; each
status-sync cycle, after it has pulled the broker's state in, drives what is
still not true at the broker:

- every ``pending_cancel`` order the broker still has open gets its cancel
  again (per-order back-off stored on the order; a 429 waits for its reset);
- while a kill switch is active, every working order in its scope is moved
  to ``pending_cancel``, and every open broker order in scope is cancelled
  (global: one cancel-all, unless flatten orders of ours are working, which
  a cancel-all would kill; strategy: per order);
- with KILL_SWITCH_FLATTEN, positions are flattened from the broker's
  positions; a symbol with a flatten order still working gets no other, so
  repeated or overlapping activations never send more than flat; an order
  still working in the symbol (its cancel not yet confirmed) is assumed to
  fill the way that shrinks the position, so a flatten closes too little,
  never too much, and a later cycle closes the rest. A working protective
  leg (a stop of the position, adr/0012) is such an order: the position is
  not closed until the leg is cancelled (the switch's scope cancels it;
  ``positions_flatten`` cancels the positions' legs first), so a stop cannot
  fire after the flatten and open the opposite position.

It stops by itself: a cancelled or filled order leaves ``pending_cancel``, a
kill switch with nothing open in scope sends nothing, a flat book needs no
flatten, and a reset switch drives nothing more.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from brokers import types as bt
from brokers.exceptions import BrokerError, BrokerRejected
from brokers.registry import get_broker
from orders.models import Order, OrderOrigin, Position
from orders.services.cancel import REFUSED, describe_failure, order_cancel_attempt, request_cancel, retry_at
from orders.services.entry import order_send
from orders.services.transitions import S, _log_transition
from orders.states import WORKING
from risk import alerts
from risk.models import KillSwitch

logger = logging.getLogger(__name__)
ZERO = Decimal(0)
# Broker status words of an order that can still fill (Alpaca's "open" split).
OPEN_AT_BROKER = frozenset({
    "new", "partially_filled", "accepted", "pending_new", "accepted_for_bidding", "pending_cancel",
    "pending_replace", "held", "done_for_day", "stopped", "suspended", "calculated",
})


@dataclass
class DriveResult:
    cancels_sent: int = 0
    cancel_alls_sent: int = 0
    flatten_orders: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class OpenBrokerOrder:
    """One order of a sync cycle's open listing, as much of it as the drive needs."""

    broker_order_id: str
    client_order_id: str
    cancelling: bool  # the broker is already cancelling it (Alpaca's pending_cancel)
    symbol: str = ""
    side: str = ""
    remaining: Decimal = ZERO  # what it can still fill


def open_broker_orders(page: Iterable[bt.BrokerOrder]) -> list[OpenBrokerOrder]:
    return [OpenBrokerOrder(bo.broker_order_id, bo.client_order_id, bo.status.lower() == "pending_cancel",
                            bo.symbol, bo.side, max(bo.qty - bo.filled_qty, ZERO))
            for bo in page if bo.status.lower() in OPEN_AT_BROKER]


# --- The kill switch's scope ----------------------------------------------------


def _active_scopes() -> tuple[bool, list[int]]:
    """(global switch active, ids of the strategies whose switch is active)."""
    rows = list(KillSwitch.objects.filter(active=True).values_list("strategy_id", flat=True))
    return None in rows, [s for s in rows if s is not None]


def _in_scope(global_active: bool, strategy_ids: list[int]) -> Q | None:
    if global_active:
        return Q()
    if strategy_ids:
        return Q(strategy_id__in=strategy_ids)
    return None


def _mark_pending_cancel(scope: Q, *, label: str, reason: str) -> int:
    """Every working order in scope (not a flatten order, not a send in flight) becomes pending_cancel."""
    ids = list(
        Order.objects.filter(scope, status__in=WORKING).exclude(origin=OrderOrigin.FLATTEN)
        .exclude(status__in=[S.PENDING, S.PENDING_CANCEL]).values_list("id", flat=True)
    )
    marked = 0
    for order_id in ids:
        with transaction.atomic():
            # skip_locked: an order a sender or another cycle holds is marked by the next cycle.
            order = Order.objects.select_for_update(skip_locked=True).filter(pk=order_id).first()
            if order is None or order.status not in WORKING or order.status in {S.PENDING, S.PENDING_CANCEL}:
                continue
            request_cancel(order, label=label, reason=reason)
            marked += 1
    return marked


def _lock_global_switch() -> KillSwitch:
    """The kill-switch critical section: one cancel-all-or-flatten decision at a time.

    Senders hold this row FOR SHARE across their broker call (order_send), so
    FOR UPDATE here also waits out every send in flight.
    """
    KillSwitch.objects.get_or_create(strategy=None)
    return KillSwitch.objects.select_for_update().get(strategy__isnull=True)


def _cancel_all(switch: KillSwitch, *, now: dt.datetime, force: bool, result: DriveResult) -> bool:
    """One cancel-all call, recorded on the (locked) global switch row; False when not due or it failed."""
    if not force and switch.cancel_next_attempt_at is not None and switch.cancel_next_attempt_at > now:
        return False
    switch.cancel_attempts += 1
    switch.cancel_last_attempt_at = now
    try:
        get_broker().cancel_all_orders()
    except BrokerError as exc:
        switch.cancel_last_error = describe_failure(exc)
        switch.cancel_next_attempt_at = retry_at(exc, attempts=switch.cancel_attempts, now=now)
        result.errors.append(f"cancel-all: {switch.cancel_last_error}")
        ok = False
    else:
        switch.cancel_last_error = ""
        switch.cancel_next_attempt_at = None
        result.cancel_alls_sent += 1
        ok = True
    switch.save(update_fields=["cancel_attempts", "cancel_last_attempt_at", "cancel_last_error",
                               "cancel_next_attempt_at"])
    return ok


def _cancel_foreign(open_orders: list[OpenBrokerOrder], result: DriveResult) -> None:
    """Open broker orders no local order has (the broker's dashboard, another system): in the global scope."""
    ours = set(Order.objects.filter(client_order_id__in=[o.client_order_id for o in open_orders])
               .values_list("client_order_id", flat=True))
    broker = get_broker()
    for item in open_orders:
        if item.client_order_id in ours:
            continue
        try:
            broker.cancel_order(item.broker_order_id)
            result.cancels_sent += 1
        except BrokerRejected:
            pass  # no longer cancelable
        except BrokerError as exc:
            result.errors.append(f"cancel of foreign order {item.client_order_id}: {describe_failure(exc)}")


# --- Flatten ---------------------------------------------------------------------


@dataclass
class Working:
    """Remaining buy and sell quantity of the orders that may still fill (not flatten orders)."""

    buys: Decimal = ZERO
    sells: Decimal = ZERO

    def add(self, side: str, remaining: Decimal) -> None:
        if side == "buy":
            self.buys += remaining
        else:
            self.sells += remaining

    def shrink(self, position: Decimal) -> Decimal:
        """The position if every one of these orders that reduces it fills (never past zero)."""
        if position > 0:
            return max(position - self.sells, ZERO)
        if position < 0:
            return min(position + self.buys, ZERO)
        return position


def flatten_plan(
    *,
    broker_positions: dict[str, Decimal],
    ledger: dict[tuple[int, str], Decimal],
    flattening: set[str],
    working: dict[tuple[int | None, str], Working],
) -> dict[tuple[int, str], Decimal]:
    """Signed quantities to send now (a sell is negative), per (strategy, symbol). Pure.

    ``ledger`` holds the positions in scope. A symbol in ``flattening`` (a
    flatten order of it is working: not yet known here to be filled,
    cancelled or never received) gets nothing: its fills may or may not be in
    the broker's position yet, and either guess can close twice. Once it is
    done, its fills are in both the broker's position and the ledger, and the
    next plan closes the rest. So a second plan right after the first sends
    nothing.

    Otherwise what is left to close is the broker's position, shared out to
    the strategies in scope holding that side, each at most its own ledger
    position, so neither can cross zero. ``working`` holds every other order
    that may still fill, per (strategy, symbol) (strategy None: an open
    broker order not working here): a client order whose cancel has not
    landed, a send whose outcome is not known. Each is assumed to fill the
    way that shrinks the position, the symbol's and its strategy's: the plan
    closes too little, never too much, and once those orders are done a later
    plan closes the rest.
    """
    plan: dict[tuple[int, str], Decimal] = {}
    for symbol in sorted({symbol for _, symbol in ledger} - flattening):
        in_symbol = Working()
        for (_, s), orders in working.items():
            if s == symbol:
                in_symbol.buys += orders.buys
                in_symbol.sells += orders.sells
        left = in_symbol.shrink(broker_positions.get(symbol, ZERO))
        for key in sorted(k for k in ledger if k[1] == symbol):
            if left == 0:
                break
            own = working.get(key, Working()).shrink(ledger[key])
            if own == 0 or (own > 0) != (left > 0):
                continue
            qty = min(abs(own), abs(left))
            signed = -qty if left > 0 else qty
            plan[key] = signed
            left += signed
    return plan


def _flatten_locked(
    *, strategy_ids: list[int] | None, label: str, open_orders: list[OpenBrokerOrder] | None = None
) -> list[uuid.UUID]:
    """Decide and store the flatten orders (pending); the caller holds the kill-switch lock and sends them.

    The working orders are read before the broker's positions: a client
    order that fills in between is then counted twice (assumed to fill, and
    in the position), which closes too little, never too much; a flatten
    order that fills in between still holds its symbol back. ``open_orders``
    (the cycle's open listing, read before this) adds the broker's open
    orders that are not working here (foreign ones, or ours closed here and
    still open there: late truth).
    """
    flattening: set[str] = set()
    working: dict[tuple[int | None, str], Working] = {}
    here: set[str] = set()
    for client_order_id, origin, strategy_id, symbol, side, qty, filled in Order.objects.filter(
        status__in=WORKING
    ).values_list("client_order_id", "origin", "strategy_id", "symbol", "side", "qty", "filled_qty"):
        here.add(client_order_id)
        if origin == OrderOrigin.FLATTEN:
            flattening.add(symbol)
        else:
            working.setdefault((strategy_id, symbol), Working()).add(side, qty - filled)
    for item in open_orders or []:
        if item.client_order_id not in here:
            if item.client_order_id.startswith("flatten-"):
                flattening.add(item.symbol)
            else:
                working.setdefault((None, item.symbol), Working()).add(item.side, item.remaining)
    broker_positions = {p.symbol: p.qty for p in get_broker().list_positions()}
    positions = Position.objects.exclude(qty=0)
    if strategy_ids is not None:
        positions = positions.filter(strategy_id__in=strategy_ids)
    ledger = {(p.strategy_id, p.symbol): p.qty for p in positions}
    plan = flatten_plan(broker_positions=broker_positions, ledger=ledger, flattening=flattening, working=working)
    created = []
    for (strategy_id, symbol), signed in sorted(plan.items()):
        order = Order.objects.create(
            client_order_id=f"flatten-{uuid.uuid4().hex}",
            strategy_id=strategy_id,
            symbol=symbol,
            side="buy" if signed > 0 else "sell",
            qty=abs(signed),
            type="market",
            time_in_force="day",
            origin=OrderOrigin.FLATTEN,
            fingerprint="flatten",
            status=S.PENDING,
        )
        _log_transition(order, "", actor=None, label=label,
                        reason="flatten on kill switch: the broker's position, less what working orders may close")
        created.append(order.pk)
    return created


def _send_flatten(order_ids: list[uuid.UUID], *, label: str) -> None:
    # Committed as pending first: a crash before or during a send leaves an order the
    # sync resolves by client_order_id, and counts as in flight until then.
    for order_id in order_ids:
        order_send(order_id=order_id, label=label)


# --- Activation and every sync cycle -----------------------------------------------


def _drive_switches(
    *, global_active: bool, strategy_ids: list[int], open_orders: list[OpenBrokerOrder] | None, force: bool,
    label: str, result: DriveResult,
) -> bool:
    """Cancel what is open in the active switches' scope, and flatten if configured.

    ``open_orders`` is the cycle's open listing (None at an activation, which
    has not read one). Returns True when a global cancel-all stands for every
    per-order cancel this cycle (sent now, or waiting out its back-off).
    """
    scope = _in_scope(global_active, strategy_ids)
    if scope is None:
        return False
    now = timezone.now()
    flatten_ids: list[uuid.UUID] = []
    cancel_all = False
    with transaction.atomic():
        switch = _lock_global_switch() if global_active or settings.KILL_SWITCH_FLATTEN else None
        if switch is not None and global_active:
            ours_flatten = set(Order.objects.filter(origin=OrderOrigin.FLATTEN, status__in=WORKING)
                               .values_list("client_order_id", flat=True))
            to_cancel = None if open_orders is None else [
                o for o in open_orders if o.client_order_id not in ours_flatten and not o.cancelling
            ]
            if not ours_flatten:
                # One call cancels everything, orders we do not know included; nothing
                # open in scope, no call. A failed one waits out its back-off (a 429 its
                # reset) and is not replaced by a burst of per-order cancels.
                cancel_all = True
                if to_cancel is None or to_cancel:
                    _cancel_all(switch, now=now, force=force, result=result)
            elif to_cancel:
                # A cancel-all would kill our flatten orders: the others one by one.
                _cancel_foreign(to_cancel, result)
        if settings.KILL_SWITCH_FLATTEN:
            try:
                flatten_ids = _flatten_locked(strategy_ids=None if global_active else strategy_ids, label=label,
                                              open_orders=open_orders)
            except BrokerError as exc:
                result.errors.append(f"flatten: positions unavailable: {describe_failure(exc)}")
    _mark_pending_cancel(scope, label=label, reason="kill switch active")
    if not cancel_all:
        _drive_pending_cancels(scope, force=force, label=label, result=result, open_orders=open_orders)
    _send_flatten(flatten_ids, label=label)
    result.flatten_orders += len(flatten_ids)
    return cancel_all


def _drive_pending_cancels(
    scope: Q, *, force: bool, label: str, result: DriveResult, open_orders: list[OpenBrokerOrder] | None
) -> None:
    """One cancel for each due pending_cancel order the broker has and is not already cancelling."""
    now = timezone.now()
    due = Order.objects.filter(scope, status=S.PENDING_CANCEL, broker_order_id__isnull=False)
    if not force:
        due = due.filter(Q(cancel_next_attempt_at__isnull=True) | Q(cancel_next_attempt_at__lte=now))
    cancelling = {o.client_order_id for o in open_orders or [] if o.cancelling}
    for order_id, client_order_id in list(due.values_list("id", "client_order_id")):
        if client_order_id in cancelling:
            continue
        error = order_cancel_attempt(order_id=order_id, label=label, force=force, confirm=False)
        if error is not None:
            result.cancels_sent += 1
        if error and not error.startswith(REFUSED):
            result.errors.append(f"cancel of {client_order_id}: {error}")


def orders_cancel_for_kill_switch(*, strategy_id: int | None, label: str) -> DriveResult:
    """An activation (or a repeated one), after its commit: cancel everything in scope now; flatten if configured.

    Global: the one cancel-all call goes out first, before anything is
    recorded locally (every millisecond before it is a chance to fill).
    Strategy: one cancel per working order of it (the broker has no
    per-strategy cancel). Whatever these first calls meet, the active switch
    is the stored intent and every sync cycle drives it again.
    """
    result = DriveResult()
    _drive_switches(global_active=strategy_id is None, strategy_ids=[] if strategy_id is None else [strategy_id],
                    open_orders=None, force=True, label=label, result=result)
    _alert_switch_failures(strategy_id, result)
    return result


def _alert_switch_failures(strategy_id: int | None, result: DriveResult) -> None:
    """Once per failure while it lasts (the sync keeps driving the cancels); cleared when a drive succeeds."""
    key = f"kill_switch_cancel_failed:{'global' if strategy_id is None else strategy_id}"
    if not result.errors:
        alerts.alert_clear(key=key)
        return
    alerts.alert_raise(
        key=key, level="critical", kind="kill_switch", subject="Kill switch: broker cancel failed",
        message="; ".join(result.errors)[:2000] + "; the sync sends the cancels again every cycle",
        state=",".join(sorted(set(re.findall(r"Broker[A-Za-z]+", " ".join(result.errors))))),
    )


def intents_drive(*, open_orders: list[OpenBrokerOrder], label: str) -> DriveResult:
    """One sync cycle's push toward what was decided; ``open_orders`` is this cycle's open listing."""
    result = DriveResult()
    global_active, strategy_ids = _active_scopes()
    cancel_all = _drive_switches(global_active=global_active, strategy_ids=strategy_ids, open_orders=open_orders,
                                 force=False, label=label, result=result)
    if global_active:
        _alert_switch_failures(None, result)
    elif len(strategy_ids) == 1:
        _alert_switch_failures(strategy_ids[0], result)
    if not cancel_all:
        # Every other pending_cancel order: a client's or an officer's cancel, a switch's since reset.
        _drive_pending_cancels(Q(), force=False, label=label, result=result, open_orders=open_orders)
    for error in result.errors:
        logger.warning("intent drive: %s", error)
    return result


def _cancel_legs_before_flatten(*, strategy_id: int | None, label: str) -> None:
    """The working legs of the positions to flatten: cancelled (and confirmed) before the plan is made.

    A stop leg left working could fire after the closing order and open the
    opposite position. The plan counts every leg still working as an order
    that may fill the way that shrinks the position, so a leg whose cancel is
    not confirmed holds its share of the flatten back until a later flatten.
    """
    scope = Q(origin=OrderOrigin.LEG) & (Q() if strategy_id is None else Q(strategy_id=strategy_id))
    _mark_pending_cancel(scope, label=label, reason="flatten: its position is being closed")
    for order_id in list(Order.objects.filter(scope, status=S.PENDING_CANCEL, broker_order_id__isnull=False)
                         .values_list("id", flat=True)):
        order_cancel_attempt(order_id=order_id, label=label, force=True)


def positions_flatten(*, strategy_id: int | None, label: str) -> list[Order]:
    """Flatten now (global, or one strategy); symbols with a flatten order working are left to it.

    The positions' protective legs are cancelled first; one whose cancel the
    broker has not confirmed holds its share back (see _cancel_legs_before_flatten).
    """
    _cancel_legs_before_flatten(strategy_id=strategy_id, label=label)
    with transaction.atomic():
        _lock_global_switch()
        order_ids = _flatten_locked(strategy_ids=None if strategy_id is None else [strategy_id], label=label)
    _send_flatten(order_ids, label=label)
    return list(Order.objects.filter(pk__in=order_ids))
