"""Plumbing every order service shares: the one way an order changes state, and its audit row."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.db import connection
from django_fsm import ConcurrentTransition

from core.sql import insert_values, mark_saved, placeholders, prepared_cursor
from orders.events import event_record
from orders.models import Fill, Order, OrderEvent, OrderTransition
from orders.states import OrderStatus

S = OrderStatus
PRICE_PLACES = Decimal("0.00000001")
MONEY_PLACES = Decimal("0.01")


def _audit_row(order: Order, from_status: str, *, actor: Any, label: str, reason: str) -> OrderTransition:
    user = actor if getattr(actor, "is_authenticated", False) else None
    return OrderTransition(
        order=order, from_status=from_status, to_status=order.status, actor=user, actor_label=label, reason=reason
    )


def _audited_write(
    transition: OrderTransition, *, fill: Fill | None, write_order: tuple[str, list[Any]] | None = None
) -> None:
    """PostgreSQL: the transition and its feed entry (after ``write_order``, the order's own write) in ONE statement.

    Data-modifying CTEs all run, in one snapshot, inside the caller's
    transaction: the audit rows are written with the change or not at all,
    as with the ORM's separate INSERTs (orders.events.event_record: the feed
    entry carries the writing transaction's id).
    """
    order = transition.order
    table, columns, values = insert_values(transition)
    prefix, params, source = "", [], ""
    if write_order is not None:
        # The audit rows are written only if the order's write hit its row (FROM new_order).
        prefix, params, source = f"new_order AS ({write_order[0]}), ", list(write_order[1]), " FROM new_order"
    event_table = connection.ops.quote_name(OrderEvent._meta.db_table)
    sql = (
        f"WITH {prefix}new_transition AS ("
        f"INSERT INTO {table} ({columns}) SELECT {placeholders(values)}{source} RETURNING id) "
        f"INSERT INTO {event_table} (order_id, strategy_id, transition_id, fill_id, txid, at) "
        "SELECT %s, %s, new_transition.id, %s, pg_current_xact_id()::text::bigint, %s FROM new_transition "
        "RETURNING transition_id"
    )
    with prepared_cursor() as cursor:
        cursor.execute(sql, [*params, *values, order.pk, order.strategy_id, fill.pk if fill else None, transition.at])
        row = cursor.fetchone()
    if row is None:
        # The compare-and-set UPDATE found the order in another state (ConcurrentTransitionMixin's rule).
        raise ConcurrentTransition("Cannot save object! The state has been changed since fetched from the database!")
    transition.pk = row[0]
    mark_saved(transition)


def _log_transition(
    order: Order, from_status: str, *, actor: Any, label: str, reason: str, fill: Fill | None = None
) -> None:
    """The audit row of a state change, and its entry in the clients' event feed (with the fill it came with)."""
    row = _audit_row(order, from_status, actor=actor, label=label, reason=reason)
    if connection.vendor == "postgresql":
        _audited_write(row, fill=fill)
        return
    row.save()
    event_record(order=order, transition=row, fill=fill)


def order_create_logged(order: Order, *, actor: Any, label: str, reason: str) -> None:
    """INSERT a new order with its creation's audit row and feed entry (one statement on PostgreSQL)."""
    if connection.vendor != "postgresql":
        order.save(force_insert=True)
        _log_transition(order, "", actor=actor, label=label, reason=reason)
        return
    table, columns, values = insert_values(order)
    _audited_write(
        _audit_row(order, "", actor=actor, label=label, reason=reason),
        fill=None,
        write_order=(f"INSERT INTO {table} ({columns}) VALUES ({placeholders(values)}) RETURNING id", values),
    )
    mark_saved(order)


def _transition(
    order: Order,
    target: str,
    *,
    label: str,
    reason: str = "",
    actor: Any = None,
    fill: Fill | None = None,
    fields: Iterable[str] | None = None,
) -> None:
    """Move ``order`` (locked by the caller) to ``target`` through its django-fsm method, and log it.

    ``fields``: the columns the caller changed besides the state; only those
    are written (UPDATE ... SET of what changed). None writes every column.
    """
    source = order.status
    getattr(order, f"to_{target}")()  # raises TransitionNotAllowed for an edge not in the table
    if fields is None:
        order.save()
        _log_transition(order, source, actor=actor, label=label, reason=reason, fill=fill)
        return
    written = {"status", "updated_at", *fields}  # updated_at is auto_now: written with the state
    if connection.vendor != "postgresql":
        order.save(update_fields=written)
        _log_transition(order, source, actor=actor, label=label, reason=reason, fill=fill)
        return
    # One statement: the UPDATE of what changed, compare-and-set on the source state as
    # ConcurrentTransitionMixin's save does, with the transition and its feed entry.
    quote = connection.ops.quote_name
    columns = [Order._meta.get_field(name) for name in sorted(written)]
    assignments = ", ".join(f"{quote(str(f.column))} = %s" for f in columns)
    values = [f.get_db_prep_save(f.pre_save(order, add=False), connection) for f in columns]
    update = f"UPDATE {quote(Order._meta.db_table)} SET {assignments} WHERE id = %s AND status = %s RETURNING id"
    _audited_write(
        _audit_row(order, source, actor=actor, label=label, reason=reason),
        fill=fill,
        write_order=(update, [*values, order.pk, source]),
    )
    order._update_initial_state()  # as after ConcurrentTransitionMixin's save: the new state is the stored one
