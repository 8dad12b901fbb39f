"""Risk state: strategies, limits, kill switches, the circuit breaker, equity, audit.

Percentages are stored as percent (3.00 means 3 %), the unit a risk officer
types and reads; the pre-trade check divides by 100 in one place.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal
from typing import TypedDict

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

PERCENT = [MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))]


class Digits(TypedDict):
    """A DecimalField's size, spread into the field: ``models.DecimalField(**MONEY)``."""

    max_digits: int
    decimal_places: int


MONEY: Digits = {"max_digits": 20, "decimal_places": 2}


def trading_day(now: dt.datetime) -> dt.date:
    """The exchange's trading day (America/New_York, STYLE 4) that ``now`` falls in."""
    return now.astimezone(zoneinfo.ZoneInfo(settings.TRADING_DAY_TIME_ZONE)).date()


def percent_field(default: str, help_text: str) -> models.DecimalField:
    return models.DecimalField(
        max_digits=6, decimal_places=2, default=Decimal(default), validators=PERCENT, help_text=help_text
    )


class Mode(models.TextChoices):
    PAPER = "PAPER", "Paper"
    LIVE = "LIVE", "Live"


class Strategy(models.Model):
    """A trading strategy: the unit that API clients are granted and limits apply to."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200, blank=True)
    mode = models.CharField(max_length=5, choices=Mode.choices, default=Mode.PAPER, editable=False)
    paused = models.BooleanField(default=False, help_text="A paused strategy's new orders are denied.")
    # Defaults are no tighter than the portfolio's, so a fresh strategy can trade a normal order at once.
    max_allocation_amount = models.DecimalField(
        **MONEY, null=True, blank=True, validators=[MinValueValidator(Decimal("0.01"))],
        help_text="Dollar cap on this strategy's exposure (positions plus working orders). Blank: use the percent.",
    )
    max_allocation_pct = percent_field(
        "80", "Cap on this strategy's exposure as percent of equity (used when no dollar cap is set)."
    )
    max_daily_loss_pct = percent_field(
        "3", "Daily loss (realised today plus unrealised) as percent of day-start equity."
    )
    max_orders_per_second = models.PositiveIntegerField(default=5, validators=[MinValueValidator(1)])
    max_orders_per_minute = models.PositiveIntegerField(default=120, validators=[MinValueValidator(1)])
    clients = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        related_name="strategies",
        blank=True,
        help_text="API client users allowed to trade this strategy.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "strategies"
        ordering = ["slug"]
        permissions = [
            ("transition_mode", "Can move a strategy between PAPER and LIVE"),
            ("pause_strategy", "Can pause and resume a strategy"),
        ]

    def __str__(self) -> str:
        return self.slug

    def save(self, *args: object, **kwargs: object) -> None:
        creating = self._state.adding
        super().save(*args, **kwargs)  # type: ignore[arg-type]
        if creating:
            # Every strategy has its kill-switch row from birth: order senders
            # lock it, so it must exist before the first order can be sent.
            KillSwitch.objects.get_or_create(strategy=self)

    @property
    def status(self) -> str:
        return "paused" if self.paused else "active"


class MarketClosedPolicy(models.TextChoices):
    DENY = "deny", "Deny"
    ALLOW = "allow", "Allow (the broker queues it)"


# The longest duplicate-order window a limit may set; order entry's snapshot read relies on it.
MAX_DUPLICATE_ORDER_WINDOW_S = 3600


class RiskLimits(models.Model):
    """Portfolio and order limits: one row (pk=1), created by a migration, edited through limit_update."""

    max_daily_drawdown_pct = percent_field("3", "Daily drawdown at which the circuit breaker trips (reduce-only).")
    daily_drawdown_warning_pct = percent_field("2", "Daily drawdown at which the circuit breaker warns.")
    max_total_drawdown_pct = percent_field("10", "Drawdown from peak equity that activates the global kill switch.")
    max_capital_deployed_pct = percent_field("80", "Positions plus working orders as percent of equity.")
    max_open_positions = models.PositiveIntegerField(default=20, validators=[MinValueValidator(1)])
    max_risk_per_trade_pct = percent_field("2", "Risk of one order as percent of equity.")
    max_notional = models.DecimalField(
        **MONEY,
        default=Decimal("25000"),
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text="Largest notional (qty x price) of one order, in dollars.",
    )
    max_price_deviation_pct = percent_field("5", "How far a limit price may be from the last trade price.")
    min_stock_price = models.DecimalField(
        **MONEY,
        default=Decimal("5.00"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Orders that add exposure in stocks below this price are denied.",
    )
    assumed_stop_distance_pct = percent_field(
        "5", "Stop distance assumed for risk per trade (the floor of a declared stop_loss's risk)."
    )
    # Market access (SEC 15c3-5, FIA).
    max_order_qty = models.DecimalField(
        max_digits=20,
        decimal_places=8,
        default=Decimal("10000"),
        validators=[MinValueValidator(Decimal("0.00000001"))],
        help_text="Largest quantity (shares) of one order.",
    )
    max_symbol_concentration_pct = percent_field(
        "30", "One symbol's positions at market plus working orders that add exposure, as percent of equity."
    )
    duplicate_order_window_s = models.PositiveIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_DUPLICATE_ORDER_WINDOW_S)],
        help_text="Window (seconds) in which identical orders of a strategy are counted.",
    )
    duplicate_order_max = models.PositiveIntegerField(
        default=5,
        validators=[MinValueValidator(1)],
        help_text="Identical orders (strategy, symbol, side, qty, type, limit price) allowed within the window.",
    )
    allow_short_selling = models.BooleanField(
        default=True,
        help_text="Off: a sell that would open or increase a short position is denied.",
    )
    market_closed_policy = models.CharField(
        max_length=5,
        choices=MarketClosedPolicy.choices,
        default=MarketClosedPolicy.DENY,
        help_text="When the broker's clock says closed: deny the order, or allow it (the broker queues it).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "risk limits"
        verbose_name_plural = "risk limits"

    def __str__(self) -> str:
        return "Portfolio and order limits"

    def clean(self) -> None:
        errors = {}
        if self.daily_drawdown_warning_pct >= self.max_daily_drawdown_pct:
            errors["daily_drawdown_warning_pct"] = "The warning level must be below the daily drawdown limit."
        if self.max_daily_drawdown_pct >= self.max_total_drawdown_pct:
            errors["max_daily_drawdown_pct"] = "The daily drawdown limit must be below the total drawdown limit."
        if errors:
            raise ValidationError(errors)

    @classmethod
    def current(cls) -> RiskLimits:
        return cls.objects.get_or_create(pk=1)[0]


class RestrictedSymbol(models.Model):
    """A symbol no order may trade; added and removed by officers with a reason (restricted_symbol_add/remove)."""

    symbol = models.CharField(max_length=16, unique=True)
    reason = models.TextField()
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["symbol"]
        verbose_name = "restricted symbol"

    def __str__(self) -> str:
        return self.symbol


class KillSwitchSource(models.TextChoices):
    API = "api", "API"
    ADMIN = "admin", "Admin"
    CIRCUIT_BREAKER = "circuit_breaker", "Circuit breaker"
    RECONCILIATION = "reconciliation", "Reconciliation"
    COMMAND = "command", "Management command"


class FourEyesRequestFields(models.Model):
    """Where a four-eyes request waits for its second officer (``risk.approvals``, prefix ``reset_``).

    A model whose action needs two officers inherits these three fields; a
    model that already had them under other names (RiskState's
    ``breaker_reset_*``) names its prefix in its ``risk.approvals.FourEyes``.
    """

    reset_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reset_requested_at = models.DateTimeField(null=True, blank=True)
    reset_reason = models.TextField(blank=True)

    class Meta:
        abstract = True

    @property
    def reset_pending(self) -> bool:
        return self.reset_requested_by_id is not None


class KillSwitch(FourEyesRequestFields):
    """One row per scope: the global switch (strategy NULL) and one per strategy.

    Four-eyes: the first officer's reset request waits in the inherited
    ``reset_*`` fields for a second officer.
    """

    strategy = models.OneToOneField(
        Strategy, null=True, blank=True, on_delete=models.CASCADE, related_name="kill_switch"
    )
    active = models.BooleanField(default=False)
    activated_at = models.DateTimeField(null=True, blank=True)
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    source = models.CharField(max_length=20, choices=KillSwitchSource.choices, blank=True)
    reason = models.TextField(blank=True)
    # How driving the switch's cancels to the broker is going (adr/0011): each sync cycle cancels
    # every open broker order in scope while the switch is active; these show the last attempt.
    cancel_attempts = models.PositiveIntegerField(default=0)
    cancel_last_attempt_at = models.DateTimeField(null=True, blank=True)
    cancel_next_attempt_at = models.DateTimeField(null=True, blank=True)
    cancel_last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        verbose_name = "kill switch"
        verbose_name_plural = "kill switches"
        constraints = [
            models.UniqueConstraint(
                fields=["strategy"], condition=Q(strategy__isnull=True), name="one_global_kill_switch"
            ),
        ]
        permissions = [
            ("reset_killswitch", "Can reset a kill switch"),
            ("activate_global_killswitch", "Can activate the global kill switch"),
        ]

    def __str__(self) -> str:
        return f"kill switch ({self.scope_label})"

    @property
    def scope(self) -> str:
        return "global" if self.strategy_id is None else "strategy"

    @property
    def scope_label(self) -> str:
        return "global" if self.strategy_id is None else f"strategy {self.strategy}"


class BreakerState(models.TextChoices):
    CLOSED = "closed", "Closed"
    WARNING = "warning", "Warning"
    TRIPPED = "tripped", "Tripped (reduce-only)"


class RiskState(models.Model):
    """The account's risk picture: one row (pk=1).

    Order entry locks this row (SELECT ... FOR UPDATE) for the few milliseconds
    of its check: it is the per-account serialisation point that stops two
    concurrent orders from both squeezing under a limit that only one fits.
    """

    equity = models.DecimalField(**MONEY, null=True, blank=True)
    day_start_equity = models.DecimalField(**MONEY, null=True, blank=True)
    peak_equity = models.DecimalField(**MONEY, null=True, blank=True)
    equity_at = models.DateTimeField(null=True, blank=True)
    breaker_state = models.CharField(max_length=10, choices=BreakerState.choices, default=BreakerState.CLOSED)
    breaker_since = models.DateTimeField(default=timezone.now)
    breaker_reason = models.TextField(blank=True)
    breaker_reset_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    breaker_reset_requested_at = models.DateTimeField(null=True, blank=True)
    breaker_reset_reason = models.TextField(blank=True)
    # The high-water mark restarts when an officer resets the drawdown kill
    # switch or the breaker (the loss is acknowledged): who, when, why.
    peak_reset_at = models.DateTimeField(default=timezone.now)
    peak_reset_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    peak_reset_reason = models.TextField(blank=True)
    # A breaker reset acknowledges today's loss so far: the daily drawdown is
    # measured from this equity until the trading day ends.
    daily_base_equity = models.DecimalField(**MONEY, null=True, blank=True)
    daily_base_on = models.DateField(null=True, blank=True)
    # The broker account as last read with the equity (market-access checks read these, not the broker).
    buying_power = models.DecimalField(**MONEY, null=True, blank=True)
    account_status = models.CharField(max_length=40, blank=True)
    trading_blocked = models.BooleanField(default=False)
    account_blocked = models.BooleanField(default=False)

    class Meta:
        verbose_name = "circuit breaker"
        verbose_name_plural = "circuit breaker"
        permissions = [("reset_circuit_breaker", "Can reset a tripped circuit breaker")]

    def __str__(self) -> str:
        return f"circuit breaker: {self.breaker_state}"

    @classmethod
    def current(cls) -> RiskState:
        return cls.objects.get_or_create(pk=1)[0]

    def daily_drawdown_base(self, today: dt.date) -> Decimal | None:
        """The equity the daily drawdown is measured from: the day start, or today's breaker re-base."""
        if self.daily_base_on == today and self.daily_base_equity:
            return self.daily_base_equity
        return self.day_start_equity


class EquitySnapshot(models.Model):
    at = models.DateTimeField(default=timezone.now, db_index=True)
    equity = models.DecimalField(**MONEY)
    day_start_equity = models.DecimalField(**MONEY)
    peak_equity = models.DecimalField(**MONEY)

    class Meta:
        ordering = ["-at"]
        get_latest_by = "at"

    def __str__(self) -> str:
        return f"{self.equity} at {self.at:%Y-%m-%d %H:%M:%S}"


class RiskEventKind(models.TextChoices):
    LIMIT_UPDATED = "limit_updated", "Limit updated"
    RESTRICTED_SYMBOL_ADDED = "restricted_symbol_added", "Restricted symbol added"
    RESTRICTED_SYMBOL_REMOVED = "restricted_symbol_removed", "Restricted symbol removed"
    STRATEGY_UPDATED = "strategy_updated", "Strategy updated"
    KILL_SWITCH_ACTIVATED = "kill_switch_activated", "Kill switch activated"
    KILL_SWITCH_RESET_REQUESTED = "kill_switch_reset_requested", "Kill switch reset requested"
    KILL_SWITCH_RESET_REJECTED = "kill_switch_reset_rejected", "Kill switch reset rejected"
    KILL_SWITCH_RESET = "kill_switch_reset", "Kill switch reset"
    BREAKER_CHANGED = "breaker_changed", "Circuit breaker changed"
    BREAKER_RESET_REQUESTED = "breaker_reset_requested", "Circuit breaker reset requested"
    BREAKER_RESET_REJECTED = "breaker_reset_rejected", "Circuit breaker reset rejected"
    BREAKER_RESET = "breaker_reset", "Circuit breaker reset"
    MODE_CHANGED = "mode_changed", "Strategy mode changed"
    STRATEGY_PAUSED = "strategy_paused", "Strategy paused"
    STRATEGY_RESUMED = "strategy_resumed", "Strategy resumed"
    RECONCILIATION_BREAK = "reconciliation_break", "Reconciliation break"
    BREAK_ACKNOWLEDGED = "break_acknowledged", "Reconciliation break acknowledged"
    BREAK_RESOLVED = "break_resolved", "Reconciliation break resolved"
    BREAK_CHANGED = "break_changed", "Reconciliation break changed"
    BREAK_CLOSED = "break_closed", "Reconciliation break closed (difference gone)"
    LEDGER_ADJUSTMENT_REQUESTED = "ledger_adjustment_requested", "Ledger adjustment requested"
    LEDGER_ADJUSTMENT_REJECTED = "ledger_adjustment_rejected", "Ledger adjustment rejected"
    LEDGER_ADJUSTED = "ledger_adjusted", "Ledger adjusted"
    JOB_DISABLED = "job_disabled", "Risk job disabled"
    JOB_ENABLED = "job_enabled", "Risk job enabled"
    JOB_RESCHEDULED = "job_rescheduled", "Risk job rescheduled"


class AppendOnlyError(Exception):
    pass


class RiskEvent(models.Model):
    """The audit trail of risk: append-only (saving an existing row or deleting raises)."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=40, choices=RiskEventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=100, help_text="The user, or the job that acted.")
    strategy = models.ForeignKey(Strategy, null=True, blank=True, on_delete=models.PROTECT, related_name="risk_events")
    reason = models.TextField(blank=True)
    old = models.JSONField(default=dict, blank=True)
    new = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["kind", "-at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} by {self.actor_label} at {self.at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args: object, **kwargs: object) -> None:
        if not self._state.adding:
            raise AppendOnlyError("risk events are append-only")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("risk events are append-only")


class AlertLevel(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


ALERT_LEVEL_RANK = {AlertLevel.INFO: 0, AlertLevel.WARNING: 1, AlertLevel.CRITICAL: 2}


class AlertCondition(models.Model):
    """What the officers were last told about one condition (a switch, the breaker, a break, a job).

    A condition that persists alerts once; it alerts again only when its state
    changes, its level escalates, a reminder falls due, or after it cleared.
    """

    key = models.CharField(max_length=200, unique=True)
    state = models.CharField(max_length=200, blank=True)
    level = models.CharField(max_length=10, choices=AlertLevel.choices)
    active = models.BooleanField(default=True)
    first_raised_at = models.DateTimeField(default=timezone.now)
    last_alerted_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_alerted_at"]

    def __str__(self) -> str:
        return f"{self.key}: {self.state or self.level}"


class Alert(models.Model):
    """One alert to deliver: stored with the decision that raised it, delivered by a retrying job.

    ``pending_channels`` lists the channels still to reach (``email``,
    ``webhook``, ``apprise:N``); a channel that succeeded is never sent again.
    """

    condition = models.ForeignKey(AlertCondition, null=True, on_delete=models.SET_NULL, related_name="alerts")
    key = models.CharField(max_length=200, db_index=True)
    level = models.CharField(max_length=10, choices=AlertLevel.choices)
    kind = models.CharField(max_length=40)
    subject = models.CharField(max_length=300)
    message = models.TextField(blank=True)
    symbol = models.CharField(max_length=16, blank=True)
    strategy = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    pending_channels = models.JSONField(default=list, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["next_attempt_at"], name="alert_undelivered", condition=Q(delivered_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"[{self.level}] {self.subject}"
