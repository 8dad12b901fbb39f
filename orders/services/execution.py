"""Broker updates: fills into the average-cost ledger, then the order's state, from the broker's truth."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from brokers import types as bt
from orders.day_start import position_mark_before_fill
from orders.events import event_record
from orders.models import Fill, Order, OrderOrigin, Position
from orders.services.transitions import MONEY_PLACES, PRICE_PLACES, S, _log_transition, _transition
from orders.states import TERMINAL, from_broker_status
from risk import alerts

logger = logging.getLogger(__name__)


def _signed(side: str, qty: Decimal) -> Decimal:
    return qty if side == "buy" else -qty


def _apply_fill_to_position(position: Position, side: str, qty: Decimal, price: Decimal) -> Decimal:
    """Average-cost ledger; returns the realised P&L of this fill."""
    delta = _signed(side, qty)
    old_qty = position.qty
    realised = Decimal(0)
    if old_qty == 0 or (old_qty > 0) == (delta > 0):
        new_qty = old_qty + delta
        position.avg_price = ((abs(old_qty) * position.avg_price + qty * price) / abs(new_qty)).quantize(PRICE_PLACES)
        position.qty = new_qty
        return realised
    closing = min(qty, abs(old_qty))
    direction = Decimal(1) if old_qty > 0 else Decimal(-1)
    realised = ((price - position.avg_price) * closing * direction).quantize(MONEY_PLACES)
    position.realized_pnl += realised
    new_qty = old_qty + delta
    if new_qty == 0:
        position.avg_price = Decimal(0)
    elif (new_qty > 0) != (old_qty > 0):  # crossed through zero: the rest opens at the fill price
        position.avg_price = price
    position.qty = new_qty
    return realised


def _record_fill(
    order: Order, cumulative_qty: Decimal, cumulative_avg: Decimal | None, at: dt.datetime
) -> Fill | None:
    """Turn an increase of the broker's cumulative filled qty into one fill row (returned). Idempotent."""
    if cumulative_qty <= order.filled_qty:
        return None
    avg = cumulative_avg if cumulative_avg is not None else order.filled_avg_price or order.limit_price or Decimal(0)
    delta_qty = cumulative_qty - order.filled_qty
    previous_cost = order.filled_qty * (order.filled_avg_price or Decimal(0))
    price = ((cumulative_qty * avg - previous_cost) / delta_qty).quantize(PRICE_PLACES)
    Position.objects.get_or_create(strategy_id=order.strategy_id, symbol=order.symbol)
    position = Position.objects.select_for_update().get(strategy_id=order.strategy_id, symbol=order.symbol)
    position_mark_before_fill(position, price=price, now=timezone.now())
    realised = _apply_fill_to_position(position, order.side, delta_qty, price)
    position.save()
    fill = Fill.objects.create(
        order=order,
        strategy_id=order.strategy_id,
        symbol=order.symbol,
        side=order.side,
        qty=delta_qty,
        price=price,
        cumulative_qty=cumulative_qty,
        realized_pnl=realised,
        at=at,
    )
    order.filled_qty = cumulative_qty
    order.filled_avg_price = avg.quantize(PRICE_PLACES)
    return fill


def _broker_says(broker_order: bt.BrokerOrder) -> str:
    reason = f"broker status {broker_order.status}"
    if broker_order.filled_qty:
        reason += f", filled {broker_order.filled_qty} @ {broker_order.filled_avg_price}"
    return reason


def _target_state(status: str, filled_qty: Decimal, broker_order: bt.BrokerOrder) -> str:
    """The local state the broker's report moves a working order to (``filled_qty``: after its fills)."""
    target = from_broker_status(broker_order.status)
    if target == S.SUBMITTED and filled_qty > 0:
        target = S.PARTIALLY_FILLED
    # A cancel request stays pending until the broker says cancelled (or the order
    # fills): the broker still saying "new" or "partially_filled" only means it has
    # not cancelled it yet, and the sync keeps sending the cancel (adr/0011). Fills
    # on the way are recorded all the same.
    if status == S.PENDING_CANCEL and target in {S.SUBMITTED, S.PARTIALLY_FILLED}:
        target = S.PENDING_CANCEL
    return target


def broker_order_changes(
    *, status: str, filled_qty: Decimal, broker_order_id: str | None, never_received: bool,
    broker_order: bt.BrokerOrder,
) -> bool:
    """Whether _apply_broker_order would change a working order in this state: a fill, a transition, the broker's id.

    Read from the columns alone, so the sync locks and writes only the orders
    that changed (issue 19: a cycle over 10,000 unchanged orders writes none).
    """
    if never_received and status in TERMINAL:
        return True  # late truth: adopted (_adopt_late_truth)
    if broker_order.filled_qty > filled_qty or broker_order_id is None:
        return True
    if status in TERMINAL:
        return False
    return _target_state(status, filled_qty, broker_order) != status


# The columns _apply_broker_order itself may change on an order (late truth aside).
BROKER_TRUTH_FIELDS = ("filled_qty", "filled_avg_price", "broker_order_id", "broker_updated_at")


def _apply_broker_order(
    order: Order, broker_order: bt.BrokerOrder, *, label: str, also_changed: tuple[str, ...] | None = None
) -> bool:
    """Bring a locked local order to the broker's truth: fills first, then the state.

    Returns True when something changed (a fill, a transition, or the broker's
    id learnt: it is saved the first time any listing or lookup shows it, even
    when nothing else changed, so a cancel can be sent for the order).
    ``also_changed``: the columns the caller changed before; with it only
    those and BROKER_TRUTH_FIELDS are written. None writes every column.
    """
    fields = None if also_changed is None else (*BROKER_TRUTH_FIELDS, *also_changed)
    if order.status in TERMINAL and order.never_received_at is not None:
        return _adopt_late_truth(order, broker_order, label=label)
    fill = _record_fill(
        order, broker_order.filled_qty, broker_order.filled_avg_price, broker_order.updated_at or timezone.now()
    )
    changed = fill is not None
    if order.broker_order_id is None:
        # Saved even if nothing else changed: the id is what a cancel needs (adr/0011).
        order.broker_order_id = broker_order.broker_order_id
        changed = True
    order.broker_updated_at = broker_order.updated_at
    target = _target_state(order.status, order.filled_qty, broker_order)
    if order.status in TERMINAL:
        if fill is not None:
            logger.error("fill for terminal order %s recorded from broker truth", order.client_order_id)
        if changed:
            order.save()
        if fill is not None:
            event_record(order=order, fill=fill)
        return _record_legs(order, broker_order, label=label) or changed
    if target != order.status:
        source = order.status
        reason = _broker_says(broker_order)
        if broker_order.status.lower() == "replaced":
            successor = order.replacements.order_by("-created_at").first()
            reason += f": replaced by {successor.client_order_id if successor else broker_order.broker_order_id}"
        _transition(order, target, label=label, reason=reason, fill=fill, fields=fields)
        _record_legs(order, broker_order, label=label)
        _alert_if_unprotected(order, source=source)
        return True
    if changed:
        order.save()
    if fill is not None:
        event_record(order=order, fill=fill)  # a further partial fill: no state change, still an event
    return _record_legs(order, broker_order, label=label) or changed


def _leg_role(leg: Order) -> str:
    return "stop-loss" if leg.type in ("stop", "stop_limit") else "take-profit"


def _record_legs(entry: Order, broker_order: bt.BrokerOrder, *, label: str) -> bool:
    """The legs the broker placed with ``entry`` (locked) become orders of ours, the first time it shows them.

    A leg carries the client_order_id the broker gave it (Alpaca names legs
    itself), its broker id, and the entry as its parent. It is created
    ``pending`` with an audit row saying whose leg it is, then moved to the
    broker's state like any order (pending -> submitted for a held leg).
    Every later change comes from the listings, which show the legs under
    their entry (nested).
    """
    if not broker_order.legs:
        return False
    known = set(Order.objects.filter(client_order_id__in=[leg.client_order_id for leg in broker_order.legs])
                .values_list("client_order_id", flat=True))
    recorded = False
    for leg in broker_order.legs:
        if leg.client_order_id in known:
            continue
        child = Order.objects.create(
            parent=entry, client_order_id=leg.client_order_id, broker_order_id=leg.broker_order_id,
            strategy_id=entry.strategy_id, symbol=leg.symbol, side=leg.side.value, qty=leg.qty, type=leg.type.value,
            limit_price=leg.limit_price, stop_price=leg.stop_price, time_in_force=leg.time_in_force.value,
            origin=OrderOrigin.LEG, fingerprint="leg", status=S.PENDING, sent_at=entry.sent_at,
        )
        _log_transition(child, "", actor=None, label=label, reason=(
            f"{_leg_role(child)} leg of {entry.client_order_id} ({broker_order.order_class}), placed at the broker "
            "with its entry"
        ))
        _apply_broker_order(child, leg, label=label)
        recorded = True
    return recorded


def _alert_if_unprotected(order: Order, *, source: str) -> None:
    """A stop-loss leg the broker ended (not our cancel) while its entry holds a position: say so, loudly.

    The entry's risk was judged to its stop; without the stop at the broker
    the position is unprotected, and the officer must know (docs/risk-policy.md).
    """
    entry = order.parent
    if (
        entry is None
        or _leg_role(order) != "stop-loss"
        or order.status not in (S.CANCELLED, S.REJECTED, S.EXPIRED)
        or source == S.PENDING_CANCEL
        or entry.filled_qty <= 0
    ):
        return
    alerts.alert_raise(
        key=f"stop_not_placed:{entry.client_order_id}", level="critical", kind="stop_not_placed",
        subject="Protective stop no longer at the broker",
        message=(
            f"the stop-loss leg {order.client_order_id} of {entry.client_order_id} ({entry.side} {entry.filled_qty} "
            f"{entry.symbol}, stop {order.stop_price}) is {order.status} at the broker: the position is unprotected"
        ),
        symbol=entry.symbol, strategy=entry.strategy.slug, state=str(order.status),
    )


def _adopt_late_truth(order: Order, broker_order: bt.BrokerOrder, *, label: str) -> bool:
    """The broker shows an order the back office closed as never received: adopt it (SPEC 3.2).

    The local order takes the broker's state through a correction edge
    (``orders.states.CORRECTIONS``; django-fsm refuses any other), its fills
    go into the ledger, the change is audited with the reason, and a CRITICAL
    alert goes out after commit. An order the back office had cancelled stays
    meant to be cancelled: still working at the broker, it becomes
    ``pending_cancel`` and its cancel is sent after commit (and re-sent by the
    sync until the broker confirms).
    """
    source = order.status
    fill = _record_fill(
        order, broker_order.filled_qty, broker_order.filled_avg_price, broker_order.updated_at or timezone.now()
    )
    order.broker_order_id = order.broker_order_id or broker_order.broker_order_id
    order.broker_updated_at = broker_order.updated_at
    target = from_broker_status(broker_order.status)
    if target == S.SUBMITTED and order.filled_qty > 0:
        target = S.PARTIALLY_FILLED
    if source == S.CANCELLED and target in {S.SUBMITTED, S.PARTIALLY_FILLED}:
        target = S.PENDING_CANCEL
    getattr(order, f"adopt_{target}")()  # TransitionNotAllowed for an edge CORRECTIONS does not list
    order.never_received_at = None  # the broker has shown it: adopted once, then an ordinary order
    order.save()
    shows = _broker_says(broker_order).removeprefix("broker status ")
    reason = f"late truth: broker shows {shows}; the order had been closed as never received ({source})"
    _log_transition(order, source, actor=None, label=label, reason=reason, fill=fill)
    summary = (
        f"order {order.client_order_id} ({order.side} {order.qty} {order.symbol}) had been closed as {source}, "
        f"never received; the broker shows it {broker_order.status}, filled {broker_order.filled_qty}. "
        f"It is now {order.status}{' and its fills are in the ledger' if order.filled_qty else ''}."
    )
    # Stored with the correction it reports (a ledger correction): one alert per adopted order.
    alerts.alert_raise(
        key=f"late_truth:{order.client_order_id}", level="critical", kind="ledger_correction",
        subject="Late truth: the broker shows an order closed as never received", message=summary,
        symbol=order.symbol, strategy=order.strategy.slug, state=str(order.status),
    )
    if order.status == S.PENDING_CANCEL:
        order_id = order.pk

        def cancel_after_commit() -> None:
            from orders.services.cancel import order_cancel_attempt  # cancel imports this module

            order_cancel_attempt(order_id=order_id, label=label)

        transaction.on_commit(cancel_after_commit)
    logger.warning("%s (a fill adopted now: %s)", summary, fill is not None)
    return True


def order_apply_broker_update(*, broker_order: bt.BrokerOrder, label: str) -> Order | None:
    """Apply one broker report (from polling or the trade_updates stream). Safe to repeat."""
    with transaction.atomic():
        order = Order.objects.select_for_update().filter(client_order_id=broker_order.client_order_id).first()
        if order is None or order.status == S.PENDING:
            return order  # a pending order is owned by its sender until it commits
        _apply_broker_order(order, broker_order, label=label)
        return order
