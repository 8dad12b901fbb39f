"""Order entry: validate, serialise per account, pre-trade check, store, send.

``order_send`` is the one place a broker call happens inside a transaction
(see there for why).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from brokers import types as bt
from brokers.exceptions import BrokerError, BrokerRejected
from brokers.registry import get_broker, get_market_data
from core.actors import actor_label
from core.exceptions import BusinessRefusal
from core.sql import instance_from_json, prepared_cursor
from orders import selectors
from orders.models import Order, OrderOrigin
from orders.services.execution import _apply_broker_order
from orders.services.transitions import S, _transition, order_create_logged
from risk import checks
from risk.models import RiskState, Strategy
from risk.selectors import kill_switch_active_share_locked, kill_switch_rows_share_locked_sql

logger = logging.getLogger(__name__)
lock_logger = logging.getLogger("orders.entry.lock")


class InvalidOrder(BusinessRefusal):
    """Input that is malformed for the broker (e.g. an untradable symbol): 400, nothing stored."""

    slug = "invalid-order"
    title = "Invalid order"

    def __init__(self, message: str, *, field: str = "symbol") -> None:
        super().__init__(message)
        self.field = field

    def problem_extra(self) -> dict[str, Any]:
        return {"errors": {self.field: [str(self)]}}


class LookupBudgetSpent(BusinessRefusal):
    """The client may not make the broker look up another new symbol now: 429, nothing stored."""

    status_code = 429
    slug = "throttled"


class BrokerUnreachable(BusinessRefusal):
    """The broker could not answer a question order entry needs (e.g. the asset lookup): 503, nothing stored.

    Nothing was stored: the client retries with the same client_order_id.
    """

    status_code = 503
    slug = "broker-unavailable"
    title = "Broker unavailable"
    headers = {"Retry-After": "2"}


class IdempotencyConflict(BusinessRefusal):
    """The client_order_id is taken by an order with another payload: 409."""

    status_code = 409
    slug = "idempotency-conflict"

    def __init__(self, order: Order) -> None:
        super().__init__(f"client_order_id {order.client_order_id} is already used by another order")
        self.order = order


@dataclass(frozen=True)
class OrderRequest:
    strategy: Strategy
    symbol: str
    side: str
    qty: Decimal
    type: str
    time_in_force: str = "day"
    limit_price: Decimal | None = None
    stop_loss: Decimal | None = None
    extended_hours: bool = False
    client_order_id: str | None = None
    stop_price: Decimal | None = None
    take_profit: Decimal | None = None

    def fingerprint(self) -> str:
        def canon(value: Any) -> Any:
            if isinstance(value, Decimal):
                return format(value.normalize(), "f")
            return value

        payload = {
            "strategy": self.strategy.slug,
            "symbol": self.symbol,
            "side": self.side,
            "qty": canon(self.qty),
            "type": self.type,
            "time_in_force": self.time_in_force,
            "limit_price": canon(self.limit_price),
            "stop_loss": canon(self.stop_loss),
            "extended_hours": self.extended_hours,
        }
        # Only when set: the fingerprints of orders stored before stop orders existed stay valid.
        for name in ("stop_price", "take_profit"):
            if getattr(self, name) is not None:
                payload[name] = canon(getattr(self, name))
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class SubmitOutcome:
    order: Order
    replayed: bool


def replay_or_conflict(existing: Order, fingerprint: str) -> SubmitOutcome:
    """The stored order again for a retried request (same payload), or 409 for another payload under its id."""
    if existing.fingerprint != fingerprint:
        raise IdempotencyConflict(existing)
    return SubmitOutcome(order=existing, replayed=True)


def _fetch_prices(symbols: set[str]) -> dict[str, bt.LastTrade]:
    """Last trades for ``symbols``: one market-data call."""
    try:
        return get_market_data().latest_trades(symbols)
    except BrokerError as exc:
        # No price means the check denies with stale_price; it never guesses.
        logger.warning("market data unavailable: %s", exc)
        return {}


def _ensure_equity() -> None:
    """A fresh deployment has no equity reading until the risk job runs: take one now."""
    if RiskState.current().equity is not None:
        return
    try:
        account = get_broker().get_account()
    except BrokerError as exc:
        logger.warning("account equity unavailable: %s", exc)
        return
    from risk.services import equity_record

    equity_record(equity=account.equity, day_start_equity=account.last_equity, job="order_entry", account=account)


def order_submit(
    *, acting_user: Any, request: OrderRequest, may_ask_broker: Callable[[], bool] | None = None
) -> SubmitOutcome:
    """validate -> serialise per account -> pre-trade check -> store -> send.

    Returns the stored order (``pending`` already moved on by the send) and
    whether it was an idempotent replay. ``may_ask_broker``: the caller's
    budget for asset lookups the cache cannot answer (see selectors.symbol_is_tradable).
    """
    client_order_id = request.client_order_id or uuid.uuid4().hex
    # A retry's stored order, and the symbols to price: one statement.
    reads = selectors.entry_reads(client_order_id=client_order_id, symbol=request.symbol)
    if reads.existing_id is not None:
        return replay_or_conflict(Order.objects.get(pk=reads.existing_id), request.fingerprint())
    if request.extended_hours and (request.type != "limit" or request.time_in_force != "day"):
        # The broker's own rule for the extended session; refused here so nothing is stored.
        raise InvalidOrder(
            "an extended_hours order must be a limit order with time_in_force day", field="extended_hours"
        )
    try:
        asset = selectors.asset_flags(request.symbol, may_ask_broker=may_ask_broker)
    except selectors.LookupRefused:
        raise LookupBudgetSpent(
            f"too many new symbols to look up at the broker; retry {request.symbol} later"
        ) from None
    except BrokerError as exc:
        raise BrokerUnreachable(f"the broker could not confirm {request.symbol} is tradable; retry") from exc
    if not asset.tradable:
        raise InvalidOrder(f"{request.symbol} is not a tradable asset at the broker")

    # The order's symbol and every held or working one, priced before the lock.
    priced = reads.symbols
    prices = _fetch_prices(priced)
    clock = selectors.market_clock()  # cached for a minute across processes
    label = actor_label(acting_user)
    intent = checks.OrderIntent(
        strategy=request.strategy.slug,
        symbol=request.symbol,
        side=request.side,
        qty=request.qty,
        type=request.type,
        limit_price=request.limit_price,
        stop_loss=request.stop_loss,
        extended_hours=request.extended_hours,
        stop_price=request.stop_price,
        take_profit=request.take_profit,
    )
    try:
        try:
            order = _check_and_store(
                request=request, intent=intent, client_order_id=client_order_id, prices=prices, priced=priced,
                clock=clock, asset=asset, acting_user=acting_user, label=label,
            )
        except _EquityUnknown:
            _ensure_equity()  # a fresh deployment's first order: read the account, outside the lock
            order = _check_and_store(
                request=request, intent=intent, client_order_id=client_order_id, prices=prices, priced=priced,
                clock=clock, asset=asset, acting_user=acting_user, label=label, ask_for_equity=False,
            )
    except IntegrityError:
        # The unique client_order_id decides between concurrent duplicates (they all
        # passed the lookup above, then queued on the account lock): the later ones
        # replay the order the first committed.
        existing = Order.objects.filter(client_order_id=client_order_id).first()
        if existing is None:
            raise
        return replay_or_conflict(existing, request.fingerprint())

    if order.status == S.PENDING:
        order = order_send(order_id=order.pk, label=label)
    return SubmitOutcome(order=order, replayed=False)


class _EquityUnknown(Exception):
    """No equity reading yet (a fresh deployment, before the risk job ran): read it outside the lock, then retry."""


def _check_and_store(
    *,
    request: OrderRequest,
    intent: checks.OrderIntent,
    client_order_id: str,
    prices: dict[str, bt.LastTrade],
    priced: set[str],
    clock: checks.MarketClock,
    asset: selectors.AssetFlags,
    acting_user: Any,
    label: str,
    ask_for_equity: bool = True,
) -> Order:
    """The serialised part: lock the account, read the snapshot, check, store the order with its audit row."""
    locked_at: float | None = None
    try:
        with transaction.atomic():
            # The per-account serialisation point: two orders that each fit a
            # limit but not together cannot both read the same exposure. The
            # snapshot is read by the NEXT statement, so it sees everything
            # committed while this one waited for the lock.
            _lock_account()
            locked_at = time.perf_counter()
            now = timezone.now()
            rows = selectors.snapshot_rows(strategy_id=request.strategy.pk, intent=intent, now=now)
            if rows.state.equity is None and ask_for_equity:
                raise _EquityUnknown
            snapshot = selectors.snapshot_from_rows(
                rows, intent=intent, prices=prices, now=now, clock=clock, asset=asset
            )
            late = set(snapshot.unpriced_symbols) - priced
            if late:
                # An order that committed after our prices were fetched works in a
                # symbol they do not cover. Priced now (one more call, only in this
                # race, inside the lock so the exposure read stays the one checked)
                # rather than denying stale_price or counting that order at $0.
                prices = {**prices, **_fetch_prices(late)}
                snapshot = selectors.snapshot_from_rows(
                    rows, intent=intent, prices=prices, now=now, clock=clock, asset=asset
                )
            violations = checks.evaluate(intent, snapshot)
            order = Order(
                client_order_id=client_order_id,
                strategy=rows.strategy,
                submitted_by=acting_user if getattr(acting_user, "is_authenticated", False) else None,
                symbol=request.symbol,
                side=request.side,
                qty=request.qty,
                type=request.type,
                limit_price=request.limit_price,
                stop_price=request.stop_price,
                time_in_force=request.time_in_force,
                stop_loss=request.stop_loss,
                take_profit=request.take_profit,
                extended_hours=request.extended_hours,
                fingerprint=request.fingerprint(),
                status=S.DENIED if violations else S.PENDING,
                violations=[v.as_dict() for v in violations],
                created_at=now,
            )
            reason = (
                "denied by pre-trade check: " + ", ".join(v.code for v in violations)
                if violations
                else "passed pre-trade check"
            )
            # A duplicate client_order_id raises IntegrityError here (the caller replays).
            order_create_logged(order, actor=acting_user, label=label, reason=reason)
    finally:
        if locked_at is not None and settings.ORDER_ENTRY_LOCK_TIMING:
            # From the lock granted to the COMMIT that releases it (benchmarks; off by default).
            lock_logger.info("account lock held %.3f ms", (time.perf_counter() - locked_at) * 1000)
    return order


def _lock_account() -> None:
    """The per-account serialisation point: the RiskState row, FOR UPDATE (nothing read: the snapshot reads it)."""
    if connection.vendor == "postgresql":  # the statement as the ORM writes it, without compiling it per order
        table = connection.ops.quote_name(RiskState._meta.db_table)
        with prepared_cursor() as cursor:
            cursor.execute(f"SELECT id FROM {table} WHERE id = 1 FOR UPDATE")
            if cursor.fetchone() is not None:
                return
    locked = RiskState.objects.select_for_update().filter(pk=1).values_list("pk", flat=True)
    if not list(locked):  # created by a migration; a flushed test database may lack it
        RiskState.current()
        list(locked.all())


def _broker_request(order: Order) -> bt.OrderRequest:
    return bt.OrderRequest(
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=bt.Side(order.side),
        qty=order.qty,
        type=bt.OrderType(order.type),
        time_in_force=bt.TimeInForce(order.time_in_force),
        limit_price=order.limit_price,
        extended_hours=order.extended_hours,
        stop_price=order.stop_price,
        # The stop the pre-trade check counted on goes to the broker with the entry, as its leg (oto;
        # bracket with a take_profit), so the broker holds it from the moment the entry fills.
        stop_loss=order.stop_loss if order.origin == OrderOrigin.CLIENT else None,
        take_profit=order.take_profit if order.origin == OrderOrigin.CLIENT else None,
    )


def _replaced_is_working(replacement: Order) -> bool:
    """An amend goes out only while the order it replaces is still working unfilled (locked until the send ends)."""
    original = Order.objects.select_for_update().get(pk=replacement.replaces_id)
    return original.status == S.SUBMITTED and not original.filled_qty and original.broker_order_id is not None


def _send(order: Order) -> bt.BrokerOrder:
    """A new order's submit, or an amend's replace of the order it replaces (orders.services.amend)."""
    if order.replaces_id is None:
        return get_broker().submit_order(_broker_request(order))
    original = Order.objects.get(pk=order.replaces_id)
    assert original.broker_order_id is not None  # _replaced_is_working checked it
    return get_broker().replace_order(original.broker_order_id, bt.ReplaceRequest(
        client_order_id=order.client_order_id, qty=order.qty, limit_price=order.limit_price,
        stop_price=order.stop_price,
    ))


# The send's locks in ONE statement (PostgreSQL; issue 19): the kill-switch rows FOR SHARE, then the
# order's row FOR UPDATE, returned with its strategy. Only the order's row is locked (OF o): the
# strategy row stays free, or every send of one strategy would wait for the one before it to finish
# its broker round trip. Each lock returns the row's latest committed version once granted (READ
# COMMITTED re-reads a row that changed while the statement waited), as two statements would.
_SEND_LOCK_SQL = """
WITH switch AS ({switch})
SELECT row_to_json(o)::text, row_to_json(s)::text, (SELECT COALESCE(bool_or(active), false) FROM switch)
FROM {orders} o JOIN {strategies} s ON s.id = o.strategy_id
WHERE o.id = %(order)s
FOR UPDATE OF o
"""


@functools.cache
def _send_lock_sql() -> str:
    """_SEND_LOCK_SQL for PostgreSQL, written once per process."""
    quote = connection.ops.quote_name
    orders = quote(Order._meta.db_table)
    return _SEND_LOCK_SQL.format(
        switch=kill_switch_rows_share_locked_sql(f"(SELECT strategy_id FROM {orders} WHERE id = %(order)s)"),
        orders=orders, strategies=quote(Strategy._meta.db_table),
    )


def _lock_for_send(order_id: uuid.UUID) -> tuple[Order, bool]:
    """The order to send, locked, and whether a kill switch that covers it is active (its rows share-locked)."""
    if connection.vendor != "postgresql":  # SQLite: the IMMEDIATE transaction already serialises writers
        order = Order.objects.select_for_update().select_related("strategy").get(pk=order_id)
        return order, kill_switch_active_share_locked(strategy_id=order.strategy_id)
    with prepared_cursor() as cursor:
        cursor.execute(_send_lock_sql(), {"order": order_id})
        row = cursor.fetchone()
    if row is None:
        raise Order.DoesNotExist(order_id)
    order = instance_from_json(Order, row[0])
    assert order is not None
    order.strategy = instance_from_json(Strategy, row[1])
    return order, row[2]


def order_send(*, order_id: uuid.UUID, label: str) -> Order:
    """Send a ``pending`` order to the broker, fenced against the kill switch.

    This is the one place a broker call happens inside a transaction, on
    purpose: the share lock on the kill-switch rows is held across the call,
    so an activation that commits cannot be overtaken by a send that read the
    switch as inactive a moment earlier ("none may reach the broker after the
    activation commits"). The order row is locked too, so the resolver never
    looks an order up while its send is in flight.
    """
    with transaction.atomic():
        order, halted = _lock_for_send(order_id)
        if order.status != S.PENDING:
            return order
        if halted and order.origin != OrderOrigin.FLATTEN:
            _transition(order, S.CANCELLED, label=label, reason="kill switch active before the send: never sent")
            return order
        if order.replaces_id is not None and not _replaced_is_working(order):
            _transition(order, S.CANCELLED, label=label,
                        reason="the order it amends is no longer working at the broker: never sent")
            return order
        order.sent_at = timezone.now()
        try:
            broker_order = _send(order)
        except BrokerRejected as exc:
            order.reject_reason = exc.message[:1000]
            _transition(order, S.REJECTED, label=label, reason=f"rejected by the broker: {exc.message[:200]}")
        except BrokerError as exc:
            # Timeout, 5xx, 429, dropped connection: the broker may or may not
            # have the order. It is resolved by client_order_id, never resent
            # under another id.
            _transition(order, S.UNKNOWN, label=label, reason=f"send outcome unknown: {type(exc).__name__}")
        except Exception as exc:  # a bug must not leave the send half-recorded
            logger.exception("unexpected error sending order %s", order.client_order_id)
            _transition(order, S.UNKNOWN, label=label, reason=f"send outcome unknown: {type(exc).__name__}")
        else:
            order.broker_order_id = broker_order.broker_order_id
            # Only what the send and the broker's answer changed is written (not every column).
            _apply_broker_order(order, broker_order, label=label, also_changed=("sent_at",))
    return order
