"""The simulated venue's book, kept in the database.

The web process, the Celery worker and beat are separate OS processes; keeping
the paper venue in the shared database (SQLite embedded, PostgreSQL in
production) is what lets all of them see one order book. Only
``brokers.simulated`` writes these rows; everything else reads them through
the ``BrokerClient`` interface.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from brokers.types import OrderType, Side, TimeInForce

# Quantities allow Alpaca's fractional shares; prices and averages keep more
# places than a quote so that the per-fill price the order pipeline derives from
# two cumulative averages (SPEC 3.3) stays exact to the cent.
MAX_DIGITS = 20
QTY_PLACES = 8
PRICE_PLACES = 4
AVERAGE_PRICE_PLACES = 8
MONEY_PLACES = 4

STARTING_CASH = Decimal("100000.0000")
DEFAULT_SEED = 20240601
# One standard deviation of a tick's return: 0.1%, small enough that a limit
# a few percent away from the market is not crossed by noise alone.
DEFAULT_VOLATILITY = Decimal("0.001")


class SimOrderStatus(models.TextChoices):
    """Alpaca's status words: the order pipeline maps these (SPEC 3.1)."""

    NEW = "new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    # A leg of an oto/bracket entry that has not filled yet: open, but not working.
    HELD = "held"
    # Replaced by another order (Alpaca's PATCH): closed; the replacement works on.
    REPLACED = "replaced"


OPEN_STATUSES = (SimOrderStatus.NEW, SimOrderStatus.ACCEPTED, SimOrderStatus.PARTIALLY_FILLED, SimOrderStatus.HELD)
CLOSED_STATUSES = (
    SimOrderStatus.FILLED,
    SimOrderStatus.CANCELED,
    SimOrderStatus.EXPIRED,
    SimOrderStatus.REJECTED,
    SimOrderStatus.REPLACED,
)

SIDE_CHOICES = [(side.value, side.value) for side in Side]
ORDER_TYPE_CHOICES = [(order_type.value, order_type.value) for order_type in OrderType]
TIME_IN_FORCE_CHOICES = [(tif.value, tif.value) for tif in TimeInForce]


class SimAsset(models.Model):
    symbol = models.CharField(max_length=16, unique=True)
    name = models.CharField(max_length=200, blank=True)
    tradable = models.BooleanField(default=True)
    # Alpaca's asset fields for the short-sale check.
    shortable = models.BooleanField(default=True)
    easy_to_borrow = models.BooleanField(default=True)

    class Meta:
        ordering = ["symbol"]
        verbose_name = "simulated asset"

    def __str__(self) -> str:
        return self.symbol


class SimPrice(models.Model):
    """The last trade of one symbol; ``updated_at`` is when it traded (its age is what risk checks)."""

    symbol = models.CharField(max_length=16, unique=True)
    price = models.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=PRICE_PLACES, validators=[MinValueValidator(Decimal("0.0001"))]
    )
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["symbol"]
        verbose_name = "simulated price"
        constraints = [models.CheckConstraint(condition=Q(price__gt=0), name="sim_price_positive")]

    def __str__(self) -> str:
        return f"{self.symbol} {self.price}"


class SimOrder(models.Model):
    broker_order_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Unique in the database, not only checked in Python: two processes that
    # submit the same id at once must not both get an order (Alpaca's 40010001).
    client_order_id = models.CharField(max_length=128, unique=True)
    symbol = models.CharField(max_length=16)
    side = models.CharField(max_length=4, choices=SIDE_CHOICES)
    qty = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=QTY_PLACES)
    type = models.CharField(max_length=16, choices=ORDER_TYPE_CHOICES)
    time_in_force = models.CharField(max_length=8, choices=TIME_IN_FORCE_CHOICES)
    limit_price = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=PRICE_PLACES, null=True, blank=True)
    stop_price = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=PRICE_PLACES, null=True, blank=True)
    # A stop (stop_limit) order works as a market (limit) order once a trade reached its stop price.
    stop_triggered = models.BooleanField(default=False)
    # oto / bracket: the entry's protective legs are orders of their own, held until it fills.
    order_class = models.CharField(max_length=8, blank=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="legs")
    replaces = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=24, choices=SimOrderStatus.choices, default=SimOrderStatus.NEW)
    # Cumulative, as Alpaca reports them.
    filled_qty = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=QTY_PLACES, default=Decimal("0"))
    filled_avg_price = models.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=AVERAGE_PRICE_PLACES, null=True, blank=True
    )
    submitted_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    filled_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["submitted_at", "id"]
        verbose_name = "simulated order"
        indexes = [
            # Every tick and every status poll reads the working orders in
            # submission order; a partial index keeps that read small however
            # many closed orders pile up.
            models.Index(
                fields=["submitted_at", "id"],
                condition=Q(status__in=["new", "accepted", "partially_filled"]),
                name="sim_order_open_idx",
            ),
            # Status polling lists orders closed since its last run.
            models.Index(fields=["status", "updated_at"], name="sim_order_status_updated_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(qty__gt=0), name="sim_order_qty_positive"),
            models.CheckConstraint(condition=Q(filled_qty__lte=models.F("qty")), name="sim_order_not_overfilled"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.qty} {self.symbol} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining_qty(self) -> Decimal:
        return self.qty - self.filled_qty


class SimPosition(models.Model):
    """One symbol's net position; the row is deleted when it goes flat, as Alpaca lists no flat positions."""

    symbol = models.CharField(max_length=16, unique=True)
    qty = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=QTY_PLACES)  # signed: negative is short
    avg_entry_price = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=AVERAGE_PRICE_PLACES)

    class Meta:
        ordering = ["symbol"]
        verbose_name = "simulated position"

    def __str__(self) -> str:
        return f"{self.symbol} {self.qty} @ {self.avg_entry_price}"


class SimAccount(models.Model):
    """The single paper account (id 1)."""

    cash = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=MONEY_PLACES, default=STARTING_CASH)
    # Equity at the start of ``last_equity_day`` (an America/New_York trading
    # day), Alpaca's ``last_equity``: the base of the daily drawdown.
    last_equity = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=MONEY_PLACES, default=STARTING_CASH)
    last_equity_day = models.DateField(null=True, blank=True)
    # Alpaca's account status fields, so the account_blocked check can be exercised against this venue.
    status = models.CharField(max_length=40, default="ACTIVE")
    trading_blocked = models.BooleanField(default=False)
    account_blocked = models.BooleanField(default=False)

    class Meta:
        verbose_name = "simulated account"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="sim_account_singleton")]

    def __str__(self) -> str:
        return f"cash {self.cash}"


class SimState(models.Model):
    """The market's own state (id 1). Its row lock is what serialises ticks."""

    seed = models.BigIntegerField(
        default=DEFAULT_SEED, help_text="Changing it restarts the random walk at tick 0: same seed, same path."
    )
    tick_count = models.PositiveBigIntegerField(default=0)
    volatility = models.DecimalField(
        max_digits=10,
        decimal_places=6,
        default=DEFAULT_VOLATILITY,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Standard deviation of one tick's return: 0.001 is 0.1%; 0 holds prices still.",
    )
    max_fill_qty_per_tick = models.DecimalField(
        max_digits=MAX_DIGITS,
        decimal_places=QTY_PLACES,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.00000001"))],
        help_text="Most of one order that fills per tick (partial fills); empty fills it all at once.",
    )
    last_tick_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "simulated market state"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="sim_state_singleton")]

    def __str__(self) -> str:
        return f"seed {self.seed}, tick {self.tick_count}"
