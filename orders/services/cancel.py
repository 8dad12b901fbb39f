"""Cancels: a client's cancel, settling ambiguous sends, the kill switch's cancels and flatten."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from brokers.exceptions import BrokerError, BrokerRejected
from brokers.registry import get_broker
from core.actors import actor_label
from core.exceptions import BusinessRefusal
from orders.models import Order, OrderOrigin, Position
from orders.services.entry import order_send
from orders.services.execution import _apply_broker_order, _record_fill
from orders.services.transitions import S, _log_transition, _transition
from orders.states import TERMINAL, WORKING
from risk import alerts

logger = logging.getLogger(__name__)


class OrderNotCancellable(BusinessRefusal):
    """The order is terminal: 409."""

    status_code = 409
    slug = "order-terminal"

    @property
    def detail(self) -> str:
        return f"The order cannot be cancelled: {self}."


def order_cancel(*, acting_user: Any, order: Order, reason: str = "cancel requested") -> Order:
    """Request a cancel: pending_cancel now, the broker's cancel after commit.

    Allowed to a client granted the order's strategy, to holders of
    orders.cancel_any_order (risk officers), and to the system (None).
    """
    if acting_user is not None and not (
        acting_user.has_perm("orders.cancel_any_order")
        or order.strategy.clients.filter(pk=acting_user.pk).exists()
    ):
        from django.core.exceptions import PermissionDenied

        raise PermissionDenied("You may not cancel orders of this strategy.")
    label = actor_label(acting_user)
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        if order.status in TERMINAL:
            raise OrderNotCancellable(f"order is {order.status}")
        if order.status == S.PENDING_CANCEL:
            return order
        _transition(order, S.PENDING_CANCEL, label=label, reason=reason, actor=acting_user)
    if order.broker_order_id:
        _cancel_at_broker(order, label=label)
    return Order.objects.get(pk=order.pk)


def _cancel_at_broker(order: Order, *, label: str) -> None:
    broker = get_broker()
    assert order.broker_order_id is not None  # the caller sends a cancel only for an order the broker has
    try:
        broker.cancel_order(order.broker_order_id)
    except BrokerRejected:
        pass  # not cancelable any more (filled, expired): the broker's order below says what it became
    except BrokerError as exc:
        logger.warning("cancel of %s at the broker: outcome unknown (%s); sync will converge", order.pk, exc)
        return
    try:
        broker_order = broker.get_order(order.broker_order_id)
    except BrokerError:
        return
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        if locked.status == S.PENDING_CANCEL and broker_order.status in {"new", "accepted", "partially_filled"}:
            # The broker refused and the order still works there: put it back to work.
            target = S.PARTIALLY_FILLED if broker_order.filled_qty > 0 else S.SUBMITTED
            fill = _record_fill(locked, broker_order.filled_qty, broker_order.filled_avg_price, timezone.now())
            _transition(
                locked, target, label=label, reason="cancel refused by the broker; order still working", fill=fill
            )
            return
        _apply_broker_order(locked, broker_order, label=label)


# --- Ambiguous sends ---------------------------------------------------------


def _within_horizon(order: Order, now: dt.datetime) -> bool:
    """Whether the broker could still act on the send (a slow gateway accepts minutes later)."""
    return now - (order.sent_at or order.created_at) < dt.timedelta(seconds=settings.UNKNOWN_ORDER_HORIZON_S)


def order_resolve(*, order_id: uuid.UUID, label: str = "job:order_sync") -> Order | None:
    """Settle an order whose send is ambiguous by asking the broker for its client_order_id.

    Found: the broker's state is applied. Not found: final only past
    UNKNOWN_ORDER_HORIZON_S after the send; until then the order stays as it
    is and the sync asks again next cycle. Past the horizon the order is
    closed as never received (rejected, or cancelled if a cancel was
    requested), marked ``never_received_at``, and NOT resent (a late market
    order is worse than none; the client may submit again with a new id). If
    the broker shows it after all, its late truth is adopted
    (``execution._adopt_late_truth``).
    """
    with transaction.atomic():
        order = Order.objects.select_for_update(skip_locked=True).filter(pk=order_id).first()
        if order is None or order.status not in {S.PENDING, S.UNKNOWN, S.PENDING_CANCEL}:
            return order
        try:
            broker_order = get_broker().get_order_by_client_id(order.client_order_id)
        except BrokerError as exc:
            logger.info("could not resolve %s yet: %s", order.client_order_id, exc)
            return order
        now = timezone.now()
        if broker_order is not None:
            if order.status == S.PENDING:
                _transition(order, S.UNKNOWN, label=label, reason="sender did not record the outcome")
            _apply_broker_order(order, broker_order, label=label)
            wants_cancel = order.status == S.PENDING_CANCEL
        elif _within_horizon(order, now):
            logger.info("%s not at the broker yet; asked again until the horizon", order.client_order_id)
            return order
        else:
            horizon = f"not found over UNKNOWN_ORDER_HORIZON_S={settings.UNKNOWN_ORDER_HORIZON_S}s"
            order.never_received_at = now
            if order.status == S.PENDING_CANCEL:
                reason = f"cancelled; the broker never received it ({horizon})"
                _transition(order, S.CANCELLED, label=label, reason=reason)
            else:
                order.reject_reason = f"the broker has no order with this client_order_id ({horizon}); not resent"
                _transition(order, S.REJECTED, label=label, reason=order.reject_reason)
            wants_cancel = False
    if wants_cancel and order.broker_order_id:
        _cancel_at_broker(order, label=label)
    return order


# --- Kill switch -------------------------------------------------------------


def orders_cancel_for_kill_switch(*, strategy_id: int | None, label: str) -> None:
    """Cancel every working order in scope at the broker; flatten if configured.

    Global: the one cancel-all call goes out first, before anything is
    recorded locally (every millisecond before it is a chance to fill).
    Strategy: one cancel per working order of it (the broker has no
    per-strategy cancel). Local orders then go pending_cancel; the sync
    records what each became.
    """
    scope = Order.objects.filter(status__in=WORKING).exclude(origin=OrderOrigin.FLATTEN)
    if strategy_id is not None:
        scope = scope.filter(strategy_id=strategy_id)
    broker = get_broker()
    try:
        if strategy_id is None:
            broker.cancel_all_orders()
        else:
            for broker_order_id in scope.exclude(broker_order_id=None).exclude(status=S.PENDING).values_list(
                "broker_order_id", flat=True
            ):
                with contextlib.suppress(BrokerRejected):  # already done at the broker; sync records what it became
                    broker.cancel_order(broker_order_id)
    except BrokerError as exc:
        # Once per failure kind while it lasts: the sync retries the cancels every cycle.
        alerts.alert_raise(
            key=f"kill_switch_cancel_failed:{'global' if strategy_id is None else strategy_id}",
            level="critical", kind="kill_switch", subject="Kill switch: broker cancel failed",
            message=f"{type(exc).__name__}; the sync will retry the cancels", state=type(exc).__name__,
        )
    with transaction.atomic():
        for order in scope.select_for_update().exclude(status__in=[S.PENDING, S.PENDING_CANCEL]):
            _transition(order, S.PENDING_CANCEL, label=label, reason="kill switch activated")
    if settings.KILL_SWITCH_FLATTEN:
        positions_flatten(strategy_id=strategy_id, label=label)


def positions_flatten(*, strategy_id: int | None, label: str) -> list[Order]:
    """Close ledger positions with market orders of our own, so the ledger sees every fill."""
    positions = Position.objects.exclude(qty=0).select_related("strategy")
    if strategy_id is not None:
        positions = positions.filter(strategy_id=strategy_id)
    sent = []
    for position in positions:
        side = "sell" if position.qty > 0 else "buy"
        with transaction.atomic():
            order = Order.objects.create(
                client_order_id=f"flatten-{uuid.uuid4().hex}",
                strategy=position.strategy,
                symbol=position.symbol,
                side=side,
                qty=abs(position.qty),
                type="market",
                time_in_force="day",
                origin=OrderOrigin.FLATTEN,
                fingerprint="flatten",
                status=S.PENDING,
            )
            _log_transition(order, "", actor=None, label=label, reason="flatten on kill switch")
        sent.append(order_send(order_id=order.pk, label=label))
    return sent
