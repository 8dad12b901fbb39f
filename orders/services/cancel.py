"""Cancels: a client's cancel and each attempt to get it to the broker; settling ambiguous sends.

The kill switch's cancels and flatten, and the sync's push of every stored
cancel, are in ``orders.services.intent``.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from brokers import types as bt
from brokers.exceptions import BrokerError, BrokerRateLimited, BrokerRejected
from brokers.registry import get_broker
from core.actors import actor_label
from core.exceptions import BusinessRefusal
from orders.models import Order
from orders.services.execution import _apply_broker_order
from orders.services.transitions import S, _transition
from orders.states import TERMINAL

logger = logging.getLogger(__name__)


class OrderNotCancellable(BusinessRefusal):
    """The order is terminal: 409."""

    status_code = 409
    slug = "order-terminal"

    @property
    def detail(self) -> str:
        return f"The order cannot be cancelled: {self}."


def order_cancel(*, acting_user: Any, order: Order, reason: str = "cancel requested") -> Order:
    """Request a cancel: pending_cancel now (the stored intent), the broker's cancel right after commit.

    Whatever happens to that call, the status sync sends the cancel again
    each cycle until the broker confirms (adr/0011). Asking again for an order
    already pending_cancel sends the cancel again now (idempotent: one state
    change, one more attempt).

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
        if order.status != S.PENDING_CANCEL:
            request_cancel(order, label=label, reason=reason, actor=acting_user)
    if order.broker_order_id:
        order_cancel_attempt(order_id=order.pk, label=label, force=True)
    # Without a broker id (an ambiguous send) the sync finds the order by client_order_id first.
    return Order.objects.get(pk=order.pk)


def request_cancel(order: Order, *, label: str, reason: str, actor: Any = None) -> None:
    """Move a locked working order to pending_cancel: the stored intent the sync drives (adr/0011)."""
    order.cancel_requested_at = timezone.now()
    order.cancel_next_attempt_at = None
    _transition(order, S.PENDING_CANCEL, label=label, reason=reason, actor=actor)

# --- Driving a cancel to the broker (adr/0011) ---------------------------------

# How a cancel the broker refused (422: filled, or already being cancelled) is recorded: not a failure.
REFUSED = "refused by the broker: "
# The first retry waits this long; each failure doubles it, up to settings.CANCEL_RETRY_MAX_S.
CANCEL_RETRY_FIRST_S = 1.0


def cancel_backoff(attempts: int) -> dt.timedelta:
    """How long after the ``attempts``-th failed cancel the next one is due.

    Doubling from one second, never beyond CANCEL_RETRY_MAX_S (by default one
    sync interval): a cancel is a safety action, so once the broker answers
    again it goes out within a cycle.
    """
    cap = float(settings.CANCEL_RETRY_MAX_S)
    return dt.timedelta(seconds=min(cap, CANCEL_RETRY_FIRST_S * 2.0 ** max(0, attempts - 1)))


def retry_at(exc: BrokerError, *, attempts: int, now: dt.datetime) -> dt.datetime:
    """When a broker call that failed with ``exc`` may be tried again: the back-off, or the broker's reset."""
    at = now + cancel_backoff(attempts)
    if isinstance(exc, BrokerRateLimited) and exc.reset_at is not None:
        at = max(at, exc.reset_at)  # the broker said when it listens again
    return at


def describe_failure(exc: BrokerError) -> str:
    """One line for officers (admin, API): the kind of failure and the adapter's message (no secrets in it)."""
    return f"{type(exc).__name__}: {exc}"[:300]


def _claim_cancel_attempt(order_id: uuid.UUID, *, now: dt.datetime, force: bool) -> bool:
    """Compare-and-set: this process sends the order's next cancel; False when it is not due or taken.

    Until the attempt reports, it counts as failed: the next one is due after
    the back-off, so a second cycle does not send it again meanwhile, and a
    process killed mid-attempt delays the cancel by one back-off at most.
    """
    due = Order.objects.filter(pk=order_id, status=S.PENDING_CANCEL, broker_order_id__isnull=False)
    if not force:
        due = due.filter(Q(cancel_next_attempt_at__isnull=True) | Q(cancel_next_attempt_at__lte=now))
    attempts = due.values_list("cancel_attempts", flat=True).first()
    if attempts is None:
        return False
    return bool(due.filter(cancel_attempts=attempts).update(
        cancel_attempts=F("cancel_attempts") + 1,
        cancel_last_attempt_at=now,
        cancel_next_attempt_at=now + cancel_backoff(attempts + 1),
    ))


def order_cancel_attempt(
    *, order_id: uuid.UUID, label: str, force: bool = False, confirm: bool = True
) -> str | None:
    """Send one cancel for a ``pending_cancel`` order the broker has, and record how it went.

    Due orders only, unless ``force`` (a person asked again). The attempt is
    claimed first (compare-and-set), so two cycles, or a cycle and the API,
    do not both send it. Success or failure, the order stays pending_cancel
    until the broker says cancelled or filled; the next attempt is scheduled
    by the back-off (a 429 waits for its reset). With ``confirm`` the order is
    looked up afterwards, so the caller sees what it became; the sync does not
    need to (its next listing shows it). Returns None when no cancel was
    sent (not due, or another process has it), else the attempt's error
    ("" when the broker took the cancel).
    """
    now = timezone.now()
    if not _claim_cancel_attempt(order_id, now=now, force=force):
        return None
    order = Order.objects.get(pk=order_id)
    assert order.broker_order_id is not None  # claimed only with a broker id
    broker = get_broker()
    error, next_at = "", now + cancel_backoff(order.cancel_attempts)
    broker_order: bt.BrokerOrder | None = None
    try:
        broker.cancel_order(order.broker_order_id)
    except BrokerRejected as exc:
        # Not cancelable now: it filled, or the broker is already cancelling it. What it
        # became comes from the lookup below or the next listing; the intent stands.
        error = f"{REFUSED}{exc.message}"[:300]
        confirm = True
    except BrokerError as exc:
        logger.warning("cancel of %s: %s; the sync sends it again", order.client_order_id, exc)
        error, next_at = describe_failure(exc), retry_at(exc, attempts=order.cancel_attempts, now=now)
        confirm = False
    if confirm:
        try:
            broker_order = broker.get_order(order.broker_order_id)
        except BrokerError:
            broker_order = None
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order_id)
        locked.cancel_last_error = error
        locked.cancel_next_attempt_at = next_at
        if broker_order is None or not _apply_broker_order(locked, broker_order, label=label):
            locked.save(update_fields=["cancel_last_error", "cancel_next_attempt_at", "updated_at"])
    return error


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
        order_cancel_attempt(order_id=order.pk, label=label)
    return order
