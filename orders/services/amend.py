"""Amend: a working order's qty, limit_price or stop_price replaced at the broker (PATCH /v1/orders/{id}, adr/0012).

An amend is an order of its own, the *replacement*: checked before the
pre-trade check as a new order would be (the order it replaces left out of the
exposure it is judged against), stored ``pending`` with ``replaces`` pointing
at the original, then sent by ``order_send`` as the broker's replace (Alpaca's
PATCH, never retried). Its ``client_order_id`` is the idempotency key, as for
a new order: the client's, or one derived from the original and the new
values, so a retried request finds the replacement it already made. An
ambiguous replace is resolved like an ambiguous send, by looking the
replacement's ``client_order_id`` up (found: it works; not found over the
horizon: closed as never received, and never sent again): one amend request
never replaces twice. The original closes when the broker says ``replaced``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.actors import actor_label
from core.exceptions import BusinessRefusal
from orders import selectors
from orders.models import Order
from orders.services.entry import (
    InvalidOrder,
    SubmitOutcome,
    _ensure_equity,
    _fetch_prices,
    _lock_account,
    order_send,
    replay_or_conflict,
)
from orders.services.transitions import S, _log_transition
from risk import checks

ZERO = Decimal(0)
# Which prices an amend may change, by order type (the broker's rule: a price the order does not have cannot be set).
PRICES_BY_TYPE: dict[str, tuple[str, ...]] = {
    "market": (),
    "limit": ("limit_price",),
    "stop": ("stop_price",),
    "stop_limit": ("limit_price", "stop_price"),
}


class OrderNotAmendable(BusinessRefusal):
    """The order is not working at the broker in a state that can be replaced: 409, nothing stored."""

    status_code = 409
    slug = "order-not-amendable"
    title = "Order cannot be amended"


@dataclass(frozen=True)
class AmendRequest:
    qty: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    client_order_id: str | None = None

    def changes(self) -> dict[str, Decimal]:
        return {name: value for name in ("qty", "limit_price", "stop_price")
                if (value := getattr(self, name)) is not None}

    def fingerprint(self, original: Order) -> str:
        payload = {"replaces": str(original.pk),
                   **{name: format(value.normalize(), "f") for name, value in self.changes().items()}}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _refuse_unless_amendable(order: Order, request: AmendRequest) -> None:
    if order.status != S.SUBMITTED or order.filled_qty or not order.broker_order_id:
        raise OrderNotAmendable(
            f"order is {order.status}{' with fills' if order.filled_qty else ''}: only a working order without "
            "fills that the broker has acknowledged can be amended; cancel it and submit a new one"
        )
    if order.replacements.exclude(status__in=[S.DENIED, S.REJECTED, S.CANCELLED]).exists():
        raise OrderNotAmendable("an amend of this order is already on its way to the broker")
    changes = request.changes()
    if not changes:
        raise InvalidOrder("give at least one of qty, limit_price, stop_price", field="non_field_errors")
    for name in ("limit_price", "stop_price"):
        if name in changes and name not in PRICES_BY_TYPE[order.type]:
            raise InvalidOrder(f"a {order.type} order has no {name} to amend", field=name)


def _without(working: list[dict[str, Any]], order: Order, *, since: dt.datetime | None) -> list[dict[str, Any]]:
    """The working-order rows (selectors._working_rows) less ``order``: an amend is judged instead of it, not on top."""
    remaining = order.qty - order.filled_qty
    price = order.limit_price if order.limit_price is not None else order.stop_price
    rows = []
    for row in working:
        if (row["strategy_id"], row["symbol"], row["side"]) == (order.strategy_id, order.symbol, order.side):
            row = dict(row)
            row["remaining"] = (row["remaining"] or ZERO) - remaining
            if price is None:
                row["unlimited"] -= 1
            elif row["limit_notional"] is not None:
                row["limit_notional"] -= remaining * price
            if row["remaining_since"] is not None and (since is None or order.created_at > since):
                row["remaining_since"] -= remaining
            if row["remaining"] <= 0:
                continue
        rows.append(row)
    return rows


def order_amend(*, acting_user: Any, order: Order, request: AmendRequest) -> SubmitOutcome:
    """Check the new values, store the replacement (with the original's audit row), send the broker's replace.

    Returns the replacement, and whether it is an idempotent replay.
    """
    fingerprint = request.fingerprint(order)
    client_order_id = request.client_order_id or f"amend-{fingerprint[:40]}"
    existing = Order.objects.filter(client_order_id=client_order_id).first()
    if existing is not None:
        return replay_or_conflict(existing, fingerprint)
    _refuse_unless_amendable(order, request)
    label = actor_label(acting_user)
    qty = request.qty if request.qty is not None else order.qty
    limit_price = request.limit_price if request.limit_price is not None else order.limit_price
    stop_price = request.stop_price if request.stop_price is not None else order.stop_price
    intent = checks.OrderIntent(
        strategy=order.strategy.slug, symbol=order.symbol, side=order.side, qty=qty, type=order.type,
        limit_price=limit_price, stop_loss=order.stop_loss, extended_hours=order.extended_hours,
        stop_price=stop_price, take_profit=order.take_profit,
    )
    priced = selectors.symbols_for_snapshot(order.symbol)
    prices = _fetch_prices(priced)
    clock = selectors.market_clock()
    asset = selectors.asset_flags(order.symbol)
    _ensure_equity()
    try:
        with transaction.atomic():
            _lock_account()
            original = Order.objects.select_for_update(of=("self",)).select_related("strategy").get(pk=order.pk)
            existing = Order.objects.filter(client_order_id=client_order_id).first()
            if existing is not None:  # a concurrent retry committed while we waited
                return replay_or_conflict(existing, fingerprint)
            _refuse_unless_amendable(original, request)
            now = timezone.now()
            rows = selectors.snapshot_rows(strategy_id=original.strategy_id, intent=intent, now=now)
            rows = dataclasses.replace(rows, working=_without(rows.working, original, since=rows.state.equity_at))
            snapshot = selectors.snapshot_from_rows(rows, intent=intent, prices=prices, now=now, clock=clock,
                                                    asset=asset)
            late = set(snapshot.unpriced_symbols) - priced
            if late:  # priced now, as order entry does (entry._check_and_store)
                prices = {**prices, **_fetch_prices(late)}
                snapshot = selectors.snapshot_from_rows(rows, intent=intent, prices=prices, now=now, clock=clock,
                                                        asset=asset)
            violations = checks.evaluate(intent, snapshot)
            replacement = Order.objects.create(
                client_order_id=client_order_id, strategy=original.strategy,
                submitted_by=acting_user if getattr(acting_user, "is_authenticated", False) else None,
                symbol=original.symbol, side=original.side, qty=qty, type=original.type, limit_price=limit_price,
                stop_price=stop_price, time_in_force=original.time_in_force, stop_loss=original.stop_loss,
                take_profit=original.take_profit, extended_hours=original.extended_hours, origin=original.origin,
                parent=original.parent, replaces=original, fingerprint=fingerprint,
                status=S.DENIED if violations else S.PENDING, violations=[v.as_dict() for v in violations],
                created_at=now,
            )
            changed = ", ".join(f"{name} {format(value.normalize(), 'f')}" for name, value in request.changes().items())
            if violations:
                reason = f"amend of {original.client_order_id} ({changed}) denied by pre-trade check: " + ", ".join(
                    v.code for v in violations
                )
            else:
                reason = f"amend of {original.client_order_id} ({changed}): passed pre-trade check"
            _log_transition(replacement, "", actor=acting_user, label=label, reason=reason)
            if not violations:
                # The original's own audit row: no state change yet (the broker's "replaced" closes it).
                _log_transition(original, original.status, actor=acting_user, label=label,
                                reason=f"amend requested: {replacement.client_order_id} ({changed}) replaces it")
    except IntegrityError:
        existing = Order.objects.filter(client_order_id=client_order_id).first()
        if existing is None:
            raise
        return replay_or_conflict(existing, fingerprint)
    if replacement.status == S.PENDING:
        replacement = order_send(order_id=replacement.pk, label=label)
    return SubmitOutcome(order=replacement, replayed=False)
