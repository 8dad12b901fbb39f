"""Orders, their transition log, fills, the position ledger and reconciliation."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from orders.states import CORRECTIONS, TERMINAL, WORKING, OrderStatus, sources_of
from risk.models import MONEY, Digits, Strategy

QTY: Digits = {"max_digits": 20, "decimal_places": 8}
PRICE: Digits = {"max_digits": 20, "decimal_places": 8}
S = OrderStatus


class Side(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class OrderType(models.TextChoices):
    MARKET = "market", "Market"
    LIMIT = "limit", "Limit"
    STOP = "stop", "Stop"
    STOP_LIMIT = "stop_limit", "Stop limit"


class TimeInForce(models.TextChoices):
    DAY = "day", "Day"
    GTC = "gtc", "Good till cancelled"
    IOC = "ioc", "Immediate or cancel"
    FOK = "fok", "Fill or kill"


class OrderOrigin(models.TextChoices):
    CLIENT = "client", "API client"
    FLATTEN = "flatten", "Kill-switch flatten"
    # A stop-loss or take-profit leg the broker placed with its entry (oto / bracket).
    LEG = "leg", "Leg of an entry"


def _never_received(order: models.Model) -> bool:
    return getattr(order, "never_received_at", None) is not None


class Order(ConcurrentTransitionMixin, models.Model):
    """One order. Its state changes only through orders.services (django-fsm, protected)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client_order_id = models.CharField(max_length=128, unique=True)
    strategy = models.ForeignKey(Strategy, on_delete=models.PROTECT, related_name="orders")
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    symbol = models.CharField(max_length=16)
    side = models.CharField(max_length=4, choices=Side.choices)
    qty = models.DecimalField(**QTY)
    type = models.CharField(max_length=10, choices=OrderType.choices)
    limit_price = models.DecimalField(**PRICE, null=True, blank=True)
    # stop and stop_limit orders: the price whose trade turns the order into a market (stop) or limit order.
    stop_price = models.DecimalField(**PRICE, null=True, blank=True)
    time_in_force = models.CharField(max_length=3, choices=TimeInForce.choices, default=TimeInForce.DAY)
    stop_loss = models.DecimalField(**PRICE, null=True, blank=True)
    # With stop_loss the entry is sent as a bracket: a take-profit limit leg as well as the stop leg.
    take_profit = models.DecimalField(**PRICE, null=True, blank=True)
    # A leg's entry: legs are orders of their own (their broker's ids, their own states and audit rows).
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="legs")
    # An amend (PATCH /v1/orders/{id}) is a new order that replaces this one at the broker (Alpaca's replace).
    replaces = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="replacements"
    )
    extended_hours = models.BooleanField(default=False)
    origin = models.CharField(max_length=10, choices=OrderOrigin.choices, default=OrderOrigin.CLIENT)
    # Hash of the normalised request: a replay with the same id must carry the same payload.
    fingerprint = models.CharField(max_length=64)

    status = FSMField(default=S.PENDING, choices=S.choices, protected=True)
    filled_qty = models.DecimalField(**QTY, default=Decimal("0"))
    filled_avg_price = models.DecimalField(**PRICE, null=True, blank=True)
    broker_order_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    reject_reason = models.TextField(blank=True)
    violations = models.JSONField(default=list, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    broker_updated_at = models.DateTimeField(null=True, blank=True)
    # Stamped by each sync cycle that saw the order in a broker listing; the
    # orders a cycle did not see are the only ones it looks up one by one.
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # The cancel intent (SPEC 3.4, adr/0011): pending_cancel is the decision; these say how driving
    # it to the broker is going. Each sync cycle re-sends a due cancel until the broker confirms
    # cancelled or filled; a failed attempt moves the next one back (bounded; a 429 waits for the
    # broker's X-RateLimit-Reset).
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_attempts = models.PositiveIntegerField(default=0)
    cancel_last_attempt_at = models.DateTimeField(null=True, blank=True)
    cancel_next_attempt_at = models.DateTimeField(null=True, blank=True)
    cancel_last_error = models.CharField(max_length=300, blank=True)
    # Set when the back office closed the order because the broker showed no
    # order for its client_order_id: the one kind of terminal order the
    # broker's late truth may still correct (orders.states.CORRECTIONS).
    never_received_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="order_newest"),
            models.Index(fields=["strategy", "-created_at"], name="order_strategy_newest"),
            models.Index(fields=["symbol", "-created_at"], name="order_symbol_newest"),
            models.Index(fields=["status", "-created_at"], name="order_status_newest"),
            # The working set is small and read on every order entry and sync:
            # a partial index keeps that read independent of history size.
            models.Index(
                fields=["strategy", "symbol"], name="order_working", condition=Q(status__in=sorted(WORKING))
            ),
        ]
        permissions = [("cancel_any_order", "Can cancel any strategy's order")]

    def __str__(self) -> str:
        return f"{self.side} {self.qty} {self.symbol} ({self.client_order_id})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def remaining_qty(self) -> Decimal:
        return max(Decimal("0"), self.qty - self.filled_qty)

    # One transition method per target state; the sources come from the table.
    @transition(field=status, source=sources_of(S.SUBMITTED), target=S.SUBMITTED)
    def to_submitted(self) -> None: ...

    @transition(field=status, source=sources_of(S.PARTIALLY_FILLED), target=S.PARTIALLY_FILLED)
    def to_partially_filled(self) -> None: ...

    @transition(field=status, source=sources_of(S.PENDING_CANCEL), target=S.PENDING_CANCEL)
    def to_pending_cancel(self) -> None: ...

    @transition(field=status, source=sources_of(S.UNKNOWN), target=S.UNKNOWN)
    def to_unknown(self) -> None: ...

    @transition(field=status, source=sources_of(S.FILLED), target=S.FILLED)
    def to_filled(self) -> None: ...

    @transition(field=status, source=sources_of(S.CANCELLED), target=S.CANCELLED)
    def to_cancelled(self) -> None: ...

    @transition(field=status, source=sources_of(S.REJECTED), target=S.REJECTED)
    def to_rejected(self) -> None: ...

    @transition(field=status, source=sources_of(S.EXPIRED), target=S.EXPIRED)
    def to_expired(self) -> None: ...

    # Late-truth corrections: the sources come from CORRECTIONS, and only an
    # order closed as never received may take them.
    @transition(
        field=status, source=sources_of(S.SUBMITTED, CORRECTIONS), target=S.SUBMITTED, conditions=[_never_received]
    )
    def adopt_submitted(self) -> None: ...

    @transition(
        field=status,
        source=sources_of(S.PARTIALLY_FILLED, CORRECTIONS),
        target=S.PARTIALLY_FILLED,
        conditions=[_never_received],
    )
    def adopt_partially_filled(self) -> None: ...

    @transition(
        field=status,
        source=sources_of(S.PENDING_CANCEL, CORRECTIONS),
        target=S.PENDING_CANCEL,
        conditions=[_never_received],
    )
    def adopt_pending_cancel(self) -> None: ...

    @transition(field=status, source=sources_of(S.FILLED, CORRECTIONS), target=S.FILLED, conditions=[_never_received])
    def adopt_filled(self) -> None: ...

    @transition(
        field=status, source=sources_of(S.CANCELLED, CORRECTIONS), target=S.CANCELLED, conditions=[_never_received]
    )
    def adopt_cancelled(self) -> None: ...

    @transition(
        field=status, source=sources_of(S.REJECTED, CORRECTIONS), target=S.REJECTED, conditions=[_never_received]
    )
    def adopt_rejected(self) -> None: ...

    @transition(
        field=status, source=sources_of(S.EXPIRED, CORRECTIONS), target=S.EXPIRED, conditions=[_never_received]
    )
    def adopt_expired(self) -> None: ...


class OrderTransition(models.Model):
    """The audit row of every state change, written in the transaction that made it."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=20, blank=True)  # blank: the order was created
    to_status = models.CharField(max_length=20)
    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=100)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["order", "at"])]

    def __str__(self) -> str:
        return f"{self.from_status or 'new'} -> {self.to_status}"


class Fill(models.Model):
    """One increase of an order's cumulative filled quantity, recorded once."""

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="fills")
    strategy = models.ForeignKey(Strategy, on_delete=models.PROTECT, related_name="+")
    symbol = models.CharField(max_length=16)
    side = models.CharField(max_length=4, choices=Side.choices)
    qty = models.DecimalField(**QTY)
    price = models.DecimalField(**PRICE)
    cumulative_qty = models.DecimalField(**QTY)
    realized_pnl = models.DecimalField(**MONEY, default=Decimal("0"))
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            # The same broker update seen twice cannot become two fills.
            models.UniqueConstraint(fields=["order", "cumulative_qty"], name="one_fill_per_cumulative_qty"),
        ]
        indexes = [models.Index(fields=["strategy", "at"], name="fill_strategy_at")]

    def __str__(self) -> str:
        return f"{self.side} {self.qty} {self.symbol} @ {self.price}"


class Position(models.Model):
    """The ledger position of one strategy in one symbol, derived from fills."""

    strategy = models.ForeignKey(Strategy, on_delete=models.PROTECT, related_name="positions")
    symbol = models.CharField(max_length=16)
    qty = models.DecimalField(**QTY, default=Decimal("0"))  # signed: negative is short
    avg_price = models.DecimalField(**PRICE, default=Decimal("0"))
    realized_pnl = models.DecimalField(**MONEY, default=Decimal("0"))
    # The unrealised P&L this position carried when the trading day began
    # (0 for a position opened today): daily P&L counts its change, not the
    # whole gain or loss since entry. See orders/day_start.py.
    day_start_on = models.DateField(null=True, blank=True)
    day_start_unrealized_pnl = models.DecimalField(**MONEY, default=Decimal("0"))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["strategy__slug", "symbol"]
        constraints = [models.UniqueConstraint(fields=["strategy", "symbol"], name="one_position_per_strategy_symbol")]

    def __str__(self) -> str:
        return f"{self.strategy}: {self.qty} {self.symbol}"


class ReconciliationRun(models.Model):
    at = models.DateTimeField(default=timezone.now, db_index=True)
    positions_checked = models.PositiveIntegerField(default=0)
    breaks_found = models.PositiveIntegerField(default=0)
    unknown_broker_orders = models.JSONField(default=list, blank=True)
    # Symbols trading while the run read the broker: not judged this time.
    unconfirmed_symbols = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-at"]
        get_latest_by = "at"

    def __str__(self) -> str:
        return f"reconciliation at {self.at:%Y-%m-%d %H:%M:%S}: {self.breaks_found} breaks"


class BreakStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed (difference gone)"


# A break in these states is the one open break of its symbol.
OPEN_BREAK_STATES = (BreakStatus.OPEN, BreakStatus.ACKNOWLEDGED)


class ReconciliationBreak(models.Model):
    """Broker and ledger disagree on a symbol: stored and shown, never silently fixed.

    One open break per symbol while the difference persists: each run updates
    it with the latest quantities; it closes itself (audited) when the
    difference disappears, or an officer resolves it (a note, or a ledger
    adjustment that makes the ledger equal the broker).
    """

    run = models.ForeignKey(ReconciliationRun, on_delete=models.PROTECT, related_name="breaks")
    last_run = models.ForeignKey(
        ReconciliationRun, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The last run that saw the difference.",
    )
    symbol = models.CharField(max_length=16)
    broker_qty = models.DecimalField(**QTY)
    ledger_qty = models.DecimalField(**QTY)
    status = models.CharField(max_length=12, choices=BreakStatus.choices, default=BreakStatus.OPEN)
    opened_at = models.DateTimeField(default=timezone.now)
    changed_at = models.DateTimeField(default=timezone.now, help_text="When the difference last changed.")
    closed_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-run__at", "symbol"]
        indexes = [models.Index(fields=["status", "symbol"])]
        constraints = [
            models.UniqueConstraint(
                fields=["symbol"], condition=Q(status__in=["open", "acknowledged"]), name="one_open_break_per_symbol"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.symbol}: broker {self.broker_qty} vs ledger {self.ledger_qty}"

    @property
    def difference(self) -> Decimal:
        return self.broker_qty - self.ledger_qty


class OrderEvent(models.Model):
    """One entry of the clients' event feed (GET /v1/events): a transition, a fill, or both.

    Written in the transaction that made the change. ``txid`` is the writing
    PostgreSQL transaction's id: the feed is ordered by (txid, id) and only
    serves events of transactions older than every transaction still running,
    so an event that commits late can never land behind a cursor a client
    already holds (ordering by id alone could: ids are taken at INSERT, not at
    COMMIT). On SQLite writers are serialised, so id order is commit order and
    txid stays 0.
    """

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    strategy = models.ForeignKey(Strategy, on_delete=models.PROTECT, related_name="+")
    transition = models.OneToOneField(
        OrderTransition, null=True, blank=True, on_delete=models.CASCADE, related_name="event"
    )
    fill = models.OneToOneField(Fill, null=True, blank=True, on_delete=models.PROTECT, related_name="event")
    txid = models.BigIntegerField(default=0)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["txid", "id"]
        indexes = [
            models.Index(fields=["txid", "id"], name="event_feed"),
            models.Index(fields=["strategy", "txid", "id"], name="event_strategy_feed"),
        ]

    def __str__(self) -> str:
        return f"event {self.pk} of {self.order_id}"


class AdjustmentStatus(models.TextChoices):
    PENDING = "pending", "Pending approval"
    APPLIED = "applied", "Applied"
    REJECTED = "rejected", "Rejected"


class LedgerAdjustment(models.Model):
    """An officer's entry that brings the ledger to the broker's truth for a break: a ledger entry of its own.

    It moves one strategy's position by ``qty`` (signed) at ``price`` through
    the same average-cost rule as a fill, and is listed with the position; the
    position is never edited silently. Under four-eyes (``risk.approvals``,
    prefix ``approval_``) a second officer approves it before it applies.
    """

    reconciliation_break = models.ForeignKey(ReconciliationBreak, on_delete=models.PROTECT, related_name="adjustments")
    strategy = models.ForeignKey(Strategy, on_delete=models.PROTECT, related_name="+")
    symbol = models.CharField(max_length=16)
    qty = models.DecimalField(**QTY, help_text="Signed: positive adds to the position, negative takes away.")
    price = models.DecimalField(**PRICE)
    reason = models.TextField()
    status = models.CharField(max_length=10, choices=AdjustmentStatus.choices, default=AdjustmentStatus.PENDING)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    # Four-eyes: the request that waits for a second officer.
    approval_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approval_requested_at = models.DateTimeField(null=True, blank=True)
    approval_reason = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    position_qty_before = models.DecimalField(**QTY, null=True, blank=True)
    position_qty_after = models.DecimalField(**QTY, null=True, blank=True)
    realized_pnl = models.DecimalField(**MONEY, default=Decimal("0"))

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("adjust_ledger", "Can adjust the ledger to resolve a reconciliation break")]

    def __str__(self) -> str:
        return f"ledger adjustment {self.qty:+} {self.symbol} @ {self.price} ({self.strategy})"

    @property
    def approval_requested_by_name(self) -> str | None:
        """Under four-eyes the officer who proposed it (its creator), when another one applied it."""
        if self.decided_by_id is None or self.decided_by_id == self.created_by_id:
            return None
        return self.created_by.get_username()
