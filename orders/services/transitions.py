"""Plumbing every order service shares: the one way an order changes state, and its audit row."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from orders.events import event_record
from orders.models import Fill, Order, OrderTransition
from orders.states import OrderStatus

S = OrderStatus
PRICE_PLACES = Decimal("0.00000001")
MONEY_PLACES = Decimal("0.01")


def _log_transition(
    order: Order, from_status: str, *, actor: Any, label: str, reason: str, fill: Fill | None = None
) -> None:
    """The audit row of a state change, and its entry in the clients' event feed (with the fill it came with)."""
    user = actor if getattr(actor, "is_authenticated", False) else None
    row = OrderTransition.objects.create(
        order=order, from_status=from_status, to_status=order.status, actor=user, actor_label=label, reason=reason
    )
    event_record(order=order, transition=row, fill=fill)


def _transition(
    order: Order, target: str, *, label: str, reason: str = "", actor: Any = None, fill: Fill | None = None
) -> None:
    """Move ``order`` (locked by the caller) to ``target`` through its django-fsm method, and log it."""
    source = order.status
    getattr(order, f"to_{target}")()  # raises TransitionNotAllowed for an edge not in the table
    order.save()
    _log_transition(order, source, actor=actor, label=label, reason=reason, fill=fill)
