"""Every state change of an order: submit, send, broker updates, cancel, resolve, sync, reconcile.

Each function owns its transaction and writes the OrderTransition row of every
state change inside it. Broker calls happen outside the transaction that
stored the order, with one deliberate exception, ``order_send`` (see there).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from brokers import types as bt
from brokers.exceptions import BrokerError, BrokerRejected
from brokers.registry import get_broker, get_market_data
from orders import selectors
from orders.models import (
    BreakStatus,
    Fill,
    Order,
    OrderOrigin,
    OrderTransition,
    Position,
    ReconciliationBreak,
    ReconciliationRun,
)
from orders.states import TERMINAL, WORKING, OrderStatus, from_broker_status
from risk import alerts, checks
from risk.models import KillSwitchSource, RiskEvent, RiskEventKind, RiskState, Strategy
from risk.services import actor_label, killswitch_activate

logger = logging.getLogger(__name__)
S = OrderStatus
PRICE_PLACES = Decimal("0.00000001")
CLOSED_LISTING_WINDOW = dt.timedelta(minutes=15)
MONEY_PLACES = Decimal("0.01")


class InvalidOrder(Exception):
    """Input that is malformed for the broker (e.g. an untradable symbol): 400, nothing stored."""

    def __init__(self, message: str, *, field: str = "symbol") -> None:
        super().__init__(message)
        self.field = field


class BrokerUnreachable(Exception):
    """The broker could not answer a question order entry needs (e.g. the asset lookup): 503, nothing stored."""


class IdempotencyConflict(Exception):
    """The client_order_id is taken by an order with another payload: 409."""

    def __init__(self, order: Order) -> None:
        super().__init__(f"client_order_id {order.client_order_id} is already used by another order")
        self.order = order


class OrderNotCancellable(Exception):
    """The order is terminal: 409."""


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
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class SubmitOutcome:
    order: Order
    replayed: bool


# --- Transitions -------------------------------------------------------------


def _log_transition(order: Order, from_status: str, *, actor: Any, label: str, reason: str) -> None:
    user = actor if getattr(actor, "is_authenticated", False) else None
    OrderTransition.objects.create(
        order=order, from_status=from_status, to_status=order.status, actor=user, actor_label=label, reason=reason
    )


def _transition(order: Order, target: str, *, label: str, reason: str = "", actor: Any = None) -> None:
    """Move ``order`` (locked by the caller) to ``target`` through its django-fsm method, and log it."""
    source = order.status
    getattr(order, f"to_{target}")()  # raises TransitionNotAllowed for an edge not in the table
    order.save()
    _log_transition(order, source, actor=actor, label=label, reason=reason)


# --- Submit ------------------------------------------------------------------


def _replay(existing: Order, request: OrderRequest) -> SubmitOutcome:
    if existing.fingerprint != request.fingerprint():
        raise IdempotencyConflict(existing)
    return SubmitOutcome(order=existing, replayed=True)


def _fetch_prices(symbol: str) -> dict[str, bt.LastTrade]:
    """Last trades for the order's symbol and every held symbol: one market-data call, before any lock."""
    try:
        return get_market_data().latest_trades(selectors.symbols_for_snapshot(symbol))
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


def order_submit(*, acting_user: Any, request: OrderRequest) -> SubmitOutcome:
    """validate -> serialise per account -> pre-trade check -> store -> send.

    Returns the stored order (``pending`` already moved on by the send) and
    whether it was an idempotent replay.
    """
    client_order_id = request.client_order_id or uuid.uuid4().hex
    existing = Order.objects.filter(client_order_id=client_order_id).first()
    if existing is not None:
        return _replay(existing, request)
    if request.extended_hours and (request.type != "limit" or request.time_in_force != "day"):
        # The broker's own rule for the extended session; refused here so nothing is stored.
        raise InvalidOrder(
            "an extended_hours order must be a limit order with time_in_force day", field="extended_hours"
        )
    try:
        asset = selectors.asset_flags(request.symbol)
    except BrokerError as exc:
        raise BrokerUnreachable(f"the broker could not confirm {request.symbol} is tradable; retry") from exc
    if not asset.tradable:
        raise InvalidOrder(f"{request.symbol} is not a tradable asset at the broker")

    prices = _fetch_prices(request.symbol)
    clock = selectors.market_clock()  # cached for a minute across processes
    _ensure_equity()
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
    )
    try:
        with transaction.atomic():
            # The per-account serialisation point: two orders that each fit a
            # limit but not together cannot both read the same exposure.
            state = _lock_account()
            existing = Order.objects.filter(client_order_id=client_order_id).first()
            if existing is not None:  # a concurrent duplicate committed while we waited
                return _replay(existing, request)
            now = timezone.now()
            strategy = Strategy.objects.get(pk=request.strategy.pk)
            snapshot = selectors.build_snapshot(
                strategy=strategy, intent=intent, prices=prices, now=now, state=state, clock=clock, asset=asset
            )
            violations = checks.evaluate(intent, snapshot)
            order = Order.objects.create(
                client_order_id=client_order_id,
                strategy=strategy,
                submitted_by=acting_user if getattr(acting_user, "is_authenticated", False) else None,
                symbol=request.symbol,
                side=request.side,
                qty=request.qty,
                type=request.type,
                limit_price=request.limit_price,
                time_in_force=request.time_in_force,
                stop_loss=request.stop_loss,
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
            _log_transition(order, "", actor=acting_user, label=label, reason=reason)
    except IntegrityError:
        # The unique client_order_id is the last line of defence against duplicates.
        existing = Order.objects.filter(client_order_id=client_order_id).first()
        if existing is None:
            raise
        return _replay(existing, request)

    if order.status == S.PENDING:
        order = order_send(order_id=order.pk, label=label)
    return SubmitOutcome(order=order, replayed=False)


def _lock_account() -> RiskState:
    """The per-account serialisation point: the RiskState row, FOR UPDATE."""
    try:
        return RiskState.objects.select_for_update().get(pk=1)
    except RiskState.DoesNotExist:  # created by a migration; a flushed test database may lack it
        RiskState.current()
        return RiskState.objects.select_for_update().get(pk=1)


def _kill_switch_active_locked(strategy_id: int) -> bool:
    """Whether the global or the strategy's switch is active, holding both rows FOR SHARE (PostgreSQL).

    Many senders hold the share lock at once; ``killswitch_activate`` takes
    the row FOR UPDATE and so waits for every send in flight. On SQLite the
    IMMEDIATE transaction already serialises the send with the activation.
    """
    sql = "SELECT active FROM risk_killswitch WHERE strategy_id IS NULL OR strategy_id = %s"
    if connection.vendor == "postgresql":
        sql += " FOR SHARE"
    with connection.cursor() as cursor:
        cursor.execute(sql, [strategy_id])
        return any(active for (active,) in cursor.fetchall())


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
    )


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
        order = Order.objects.select_for_update().select_related("strategy").get(pk=order_id)
        halted = _kill_switch_active_locked(order.strategy_id)
        if order.status != S.PENDING:
            return order
        if halted and order.origin != OrderOrigin.FLATTEN:
            _transition(order, S.CANCELLED, label=label, reason="kill switch active before the send: never sent")
            return order
        order.sent_at = timezone.now()
        try:
            broker_order = get_broker().submit_order(_broker_request(order))
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
            _apply_broker_order(order, broker_order, label=label)
    return order


# --- Broker updates: fills, ledger, state -----------------------------------


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


def _record_fill(order: Order, cumulative_qty: Decimal, cumulative_avg: Decimal | None, at: dt.datetime) -> bool:
    """Turn an increase of the broker's cumulative filled qty into one fill row. Idempotent."""
    if cumulative_qty <= order.filled_qty:
        return False
    avg = cumulative_avg if cumulative_avg is not None else order.filled_avg_price or order.limit_price or Decimal(0)
    delta_qty = cumulative_qty - order.filled_qty
    previous_cost = order.filled_qty * (order.filled_avg_price or Decimal(0))
    price = ((cumulative_qty * avg - previous_cost) / delta_qty).quantize(PRICE_PLACES)
    Position.objects.get_or_create(strategy_id=order.strategy_id, symbol=order.symbol)
    position = Position.objects.select_for_update().get(strategy_id=order.strategy_id, symbol=order.symbol)
    realised = _apply_fill_to_position(position, order.side, delta_qty, price)
    position.save()
    Fill.objects.create(
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
    return True


def _apply_broker_order(order: Order, broker_order: bt.BrokerOrder, *, label: str) -> bool:
    """Bring a locked local order to the broker's truth: fills first, then the state.

    Returns True when something changed (a fill or a transition).
    """
    changed = _record_fill(
        order, broker_order.filled_qty, broker_order.filled_avg_price, broker_order.updated_at or timezone.now()
    )
    if order.broker_order_id is None:
        order.broker_order_id = broker_order.broker_order_id
    order.broker_updated_at = broker_order.updated_at
    target = from_broker_status(broker_order.status)
    if target == S.SUBMITTED and order.filled_qty > 0:
        target = S.PARTIALLY_FILLED
    if order.status in TERMINAL:
        if changed:
            logger.error("fill for terminal order %s recorded from broker truth", order.client_order_id)
            order.save()
        return changed
    # A cancel request stays pending until the broker confirms or refuses it:
    # the broker still saying "new" only means it has not processed it yet.
    if order.status == S.PENDING_CANCEL and target == S.SUBMITTED:
        target = S.PENDING_CANCEL
    if target != order.status:
        reason = f"broker status {broker_order.status}"
        if broker_order.filled_qty:
            reason += f", filled {broker_order.filled_qty} @ {broker_order.filled_avg_price}"
        _transition(order, target, label=label, reason=reason)
        return True
    if changed:
        order.save()
    return changed


def order_apply_broker_update(*, broker_order: bt.BrokerOrder, label: str) -> Order | None:
    """Apply one broker report (from polling or the trade_updates stream). Safe to repeat."""
    with transaction.atomic():
        order = Order.objects.select_for_update().filter(client_order_id=broker_order.client_order_id).first()
        if order is None or order.status == S.PENDING:
            return order  # a pending order is owned by its sender until it commits
        _apply_broker_order(order, broker_order, label=label)
        return order


# --- Cancel ------------------------------------------------------------------


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

        raise PermissionDenied("not allowed to cancel orders of this strategy")
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
            _record_fill(locked, broker_order.filled_qty, broker_order.filled_avg_price, timezone.now())
            _transition(locked, target, label=label, reason="cancel refused by the broker; order still working")
            return
        _apply_broker_order(locked, broker_order, label=label)


# --- Ambiguous sends ---------------------------------------------------------


def order_resolve(*, order_id: uuid.UUID, label: str = "job:order_sync") -> Order | None:
    """Settle an order whose send is ambiguous by asking the broker for its client_order_id.

    Found: the broker's state is applied. Not found after the grace period:
    the broker never took it; it is rejected and NOT resent (a late market
    order is worse than none; the client may submit again with a new id).
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
        if broker_order is not None:
            if order.status == S.PENDING:
                _transition(order, S.UNKNOWN, label=label, reason="sender did not record the outcome")
            _apply_broker_order(order, broker_order, label=label)
            wants_cancel = order.status == S.PENDING_CANCEL
        elif order.status == S.PENDING_CANCEL:
            _transition(order, S.CANCELLED, label=label, reason="cancelled; the broker never received it")
            wants_cancel = False
        else:
            order.reject_reason = "the broker has no order with this client_order_id; it was not resent"
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
        alerts.alert("Kill switch: broker cancel failed", f"{type(exc).__name__}: {exc}; sync will retry")
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


# --- Status polling ----------------------------------------------------------


@dataclass
class SyncResult:
    checked: int = 0
    changed: int = 0
    resolved: int = 0
    fills: int = 0
    broker_calls: int = 0
    # Open broker orders no local order has, when the caller asked (reconciliation reports them).
    unknown_open: list[dict[str, str]] = field(default_factory=list)


def _pages(broker_orders: Iterable[bt.BrokerOrder], size: int = 500) -> Iterable[list[bt.BrokerOrder]]:
    page: list[bt.BrokerOrder] = []
    for broker_order in broker_orders:
        page.append(broker_order)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


def _apply_page(page: list[bt.BrokerOrder], *, cycle_start: dt.datetime, label: str, result: SyncResult) -> None:
    """Apply one page of broker orders to the local orders they name, one short transaction each."""
    by_client_id = {bo.client_order_id: bo for bo in page}
    local = Order.objects.filter(client_order_id__in=by_client_id, status__in=WORKING).exclude(status=S.PENDING)
    for order_id, client_order_id in local.values_list("id", "client_order_id"):
        broker_order = by_client_id[client_order_id]
        with transaction.atomic():
            # skip_locked: an order being sent or cancelled right now is left to its owner.
            order = Order.objects.select_for_update(skip_locked=True).filter(pk=order_id).first()
            if order is None or order.status not in WORKING or order.status == S.PENDING:
                continue
            filled_before = order.filled_qty
            if _apply_broker_order(order, broker_order, label=label):
                result.changed += 1
                result.fills += int(order.filled_qty > filled_before)
    # Only ever forward: reconciliation runs a sync of its own, so two cycles
    # can overlap, and the older one's stamp landing last must not make the
    # newer one think these orders were in none of its listings.
    Order.objects.filter(client_order_id__in=by_client_id).filter(
        Q(last_seen_at__isnull=True) | Q(last_seen_at__lt=cycle_start)
    ).update(last_seen_at=cycle_start)


def _collect_unknown(page: list[bt.BrokerOrder], result: SyncResult) -> None:
    """Open broker orders no local order has (placed on the broker's dashboard, or by another system)."""
    ours = set(
        Order.objects.filter(client_order_id__in=[bo.client_order_id for bo in page]).values_list(
            "client_order_id", flat=True
        )
    )
    result.unknown_open += [
        {"client_order_id": bo.client_order_id, "symbol": bo.symbol, "broker_order_id": bo.broker_order_id}
        for bo in page
        if bo.client_order_id not in ours
    ]


def orders_sync(*, label: str = "job:order_sync", report_unknown_open: bool = False) -> SyncResult:
    """Move every local working order to the broker's state.

    Broker calls grow with pages of 500, not with orders: one paged listing
    of orders closed since the oldest working order was created, and one of
    open orders. Each page is applied as it arrives (memory stays one page
    whatever the size of the book), and every local order a listing named is
    stamped ``last_seen_at``. Only the working orders no listing named are
    looked up one by one: ambiguous sends past their grace period (by
    client_order_id), and orders sent well before the cycle that neither
    listing named (one older than CLOSED_LISTING_WINDOW that has closed).

    With ``report_unknown_open`` the open listing also collects the open
    broker orders this system does not know (reconciliation reports them),
    and is read even when nothing local is working.
    """
    broker = get_broker()
    calls_before = broker.counter.calls
    result = SyncResult()
    grace = dt.timedelta(seconds=settings.UNKNOWN_ORDER_GRACE_S)
    cycle_start = timezone.now()
    local = Order.objects.filter(status__in=WORKING)
    result.checked = local.count()  # the working set, through its partial index
    if not result.checked and not report_unknown_open:
        return result
    oldest = local.exclude(status=S.PENDING).order_by("created_at").values_list("created_at", flat=True).first()
    if oldest is not None or report_unknown_open:
        for page in _pages(broker.iter_orders(status="open")):
            if report_unknown_open:
                _collect_unknown(page, result)
            if result.checked:  # else listed only for the unknown-order report: nothing local to apply
                _apply_page(page, cycle_start=cycle_start, label=label, result=result)
    if oldest is not None:
        # The closed listing reaches back to the oldest working order, but no
        # further than CLOSED_LISTING_WINDOW: one day-old GTC order must not make
        # every cycle page through the day's history. An older order that
        # closed is in neither listing and is looked up by id below.
        closed_since = max(oldest - dt.timedelta(minutes=1), cycle_start - CLOSED_LISTING_WINDOW)
        for page in _pages(broker.iter_orders(status="closed", after=closed_since)):
            _apply_page(page, cycle_start=cycle_start, label=label, result=result)

    # An order sent while the listings were being read may be in neither; the
    # next cycle lists it. Only orders sent well before this cycle are looked up.
    settled = cycle_start - dt.timedelta(seconds=float(settings.ALPACA_TIMEOUT_S))
    unseen = local.filter(Q(last_seen_at__isnull=True) | Q(last_seen_at__lt=cycle_start))
    for order_id, status, created_at, sent_at, broker_order_id, client_order_id in unseen.values_list(
        "id", "status", "created_at", "sent_at", "broker_order_id", "client_order_id"
    ).iterator(chunk_size=500):
        ambiguous = status in {S.UNKNOWN, S.PENDING} or (status == S.PENDING_CANCEL and not broker_order_id)
        if ambiguous:
            if cycle_start - created_at >= grace:
                order_resolve(order_id=order_id, label=label)
                result.resolved += 1
        elif broker_order_id and (sent_at or created_at) < settled:
            try:
                logger.debug("sync lookup %s status=%s sent %.2fs before cycle", client_order_id, status,
                            (cycle_start - (sent_at or created_at)).total_seconds())
                order_apply_broker_update(broker_order=broker.get_order(broker_order_id), label=label)
                result.changed += 1
            except BrokerError as exc:
                logger.warning("order %s is in no listing and its lookup failed: %s", client_order_id, exc)
    result.broker_calls = broker.counter.calls - calls_before
    return result


# --- Reconciliation ----------------------------------------------------------


def _broker_positions() -> dict[str, Decimal]:
    return {p.symbol: p.qty for p in get_broker().list_positions()}


def _ledger_positions() -> dict[str, Decimal]:
    return {row["symbol"]: row["total"] for row in Position.objects.values("symbol").annotate(total=Sum("qty"))}


@dataclass
class _Cut:
    differences: dict[str, tuple[Decimal, Decimal]]  # symbol -> (broker, ledger)
    moving: list[str]
    checked: int
    unknown_open: list[dict[str, str]]


def _compare_at_a_cut(*, label: str, report_unknown_open: bool) -> _Cut:
    """Broker vs ledger at a consistent cut.

    Broker positions are read, the ledger is synced, and broker positions are
    read again. A symbol whose broker quantity did not move in between is
    judged (every fill before the second read is in the ledger); one that moved
    is trading right now and is reported as unconfirmed, never as a break. The
    sync's open listing can also yield the open broker orders we do not know.
    """
    before = _broker_positions()
    sync = orders_sync(label=label, report_unknown_open=report_unknown_open)
    ledger = _ledger_positions()
    after = _broker_positions()
    zero = Decimal(0)
    symbols = set(before) | set(after) | set(ledger)
    moving = sorted(s for s in symbols if before.get(s, zero) != after.get(s, zero))
    differences = {
        s: (after.get(s, zero), ledger.get(s, zero))
        for s in symbols
        if s not in moving and after.get(s, zero) != ledger.get(s, zero)
    }
    return _Cut(differences, moving, len(symbols), sync.unknown_open)


@dataclass
class ReconcileResult:
    run: ReconciliationRun
    breaks: list[ReconciliationBreak]


def _qty(value: Decimal) -> str:
    return format(value.normalize(), "f")


def positions_reconcile(*, label: str = "job:reconcile") -> ReconcileResult:
    """Broker positions vs the ledger summed over strategies, per symbol.

    A difference must hold at two consistent cuts in a row before it is
    recorded as a break: a fill the ledger has not polled yet is not a break.
    Breaks are stored, alerted and shown; never "fixed" here.
    """
    first = _compare_at_a_cut(label=label, report_unknown_open=True)
    differences, moving, checked = first.differences, first.moving, first.checked
    if differences:
        again = _compare_at_a_cut(label=label, report_unknown_open=False)
        differences = {s: v for s, v in again.differences.items() if s in differences}
        moving = sorted(set(moving) | set(again.moving))
        checked = again.checked
    unknown_broker_orders = first.unknown_open  # from the first cut's open listing, seconds old
    with transaction.atomic():
        run = ReconciliationRun.objects.create(
            positions_checked=checked, breaks_found=len(differences), unknown_broker_orders=unknown_broker_orders,
            unconfirmed_symbols=moving,
        )
        breaks = [
            ReconciliationBreak.objects.create(run=run, symbol=symbol, broker_qty=broker, ledger_qty=ledger)
            for symbol, (broker, ledger) in sorted(differences.items())
        ]
        for item in breaks:
            RiskEvent.objects.create(
                kind=RiskEventKind.RECONCILIATION_BREAK, actor_label=label,
                reason=f"{item.symbol}: broker {_qty(item.broker_qty)} vs ledger {_qty(item.ledger_qty)}",
                new={"symbol": item.symbol, "broker_qty": _qty(item.broker_qty), "ledger_qty": _qty(item.ledger_qty)},
            )
        if breaks or unknown_broker_orders:
            summary = "; ".join(
                f"{b.symbol}: broker {_qty(b.broker_qty)} vs ledger {_qty(b.ledger_qty)}" for b in breaks
            )
            if unknown_broker_orders:
                summary += f"; {len(unknown_broker_orders)} open broker orders unknown to this system"
            transaction.on_commit(lambda: alerts.alert("Reconciliation break", summary.strip("; ")))
        if breaks and settings.HALT_ON_RECONCILIATION_BREAK:
            killswitch_activate(
                acting_user=None,
                job="reconcile",
                source=KillSwitchSource.RECONCILIATION,
                reason=f"{len(breaks)} unresolved reconciliation break(s)",
            )
    return ReconcileResult(run=run, breaks=breaks)


@transaction.atomic
def break_handle(*, acting_user: Any, item: ReconciliationBreak, status: str, note: str) -> ReconciliationBreak:
    """Acknowledge or resolve a break, with a note, audited."""
    if not acting_user.has_perm("orders.change_reconciliationbreak"):
        from django.core.exceptions import PermissionDenied

        raise PermissionDenied("missing permission orders.change_reconciliationbreak")
    note = (note or "").strip()
    if not note:
        raise ValueError("a note is required")
    if status not in {BreakStatus.ACKNOWLEDGED, BreakStatus.RESOLVED}:
        raise ValueError("status must be acknowledged or resolved")
    item = ReconciliationBreak.objects.select_for_update().get(pk=item.pk)
    old = item.status
    item.status, item.note, item.handled_by, item.handled_at = status, note, acting_user, timezone.now()
    item.save()
    kind = RiskEventKind.BREAK_RESOLVED if status == BreakStatus.RESOLVED else RiskEventKind.BREAK_ACKNOWLEDGED
    RiskEvent.objects.create(
        kind=kind,
        actor=acting_user,
        actor_label=actor_label(acting_user),
        reason=note,
        old={"status": old, "symbol": item.symbol},
        new={"status": status},
    )
    return item
