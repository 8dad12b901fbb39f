"""The risk officer's dashboard: what the admin index shows and its JSON refresh serves.

Every read here costs what the book and the chart window cost, never what
history costs: ``risk_picture`` (positions, working orders through their
partial index), ``job_freshness`` (three rows), open breaks (status index),
the kill-switch rows (one per strategy), and ``equity_series``, which
downsamples EquitySnapshot in SQL to the last snapshot of each bucket (a
minute today, a trading day over the last 30 days).

Chart geometry uses floats: they are pixel coordinates, not risk arithmetic.

One concern (the dashboard's reads and their presentation); formatting and
the SVG primitives live in ``backoffice/formatting.py`` and ``charts.py``.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, F, Max, Model, Q, Subquery
from django.db.models.functions import Trunc
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from backoffice.charts import Chart, Series, bar_chart, line_chart
from backoffice.formatting import money, percent, signed_money
from backoffice.jobs import JobStatus, age_display, job_statuses
from orders.models import BreakStatus, ReconciliationBreak, ReconciliationRun
from orders.risk_picture import LimitUse, RiskPicture, risk_picture
from orders.selectors import trading_day_start, working_orders
from orders.states import OrderStatus
from risk import services
from risk.approvals import FourEyes
from risk.models import (
    BreakerState,
    EquitySnapshot,
    KillSwitch,
    RiskEvent,
    RiskLimits,
    RiskState,
    Strategy,
    trading_day,
)

ZERO = Decimal(0)
HUNDRED = Decimal(100)
HISTORY_DAYS = 30
OPEN_BREAKS_SHOWN = 5
RECENT_EVENTS_SHOWN = 8

# The panels the page renders once and the JSON endpoint re-renders; the
# browser swaps each ``[data-panel=name]`` element's content.
PANELS = ("banner", "status", "gauges", "operations", "charts", "strategies", "events")


# --- Selectors ------------------------------------------------------------------


@dataclass(frozen=True)
class EquityPoint:
    at: dt.datetime
    equity: Decimal
    day_start_equity: Decimal
    peak_equity: Decimal


def equity_series(*, since: dt.datetime, bucket: str, until: dt.datetime | None = None) -> list[EquityPoint]:
    """The last snapshot of each ``bucket`` ("day", "hour" or "minute") in [since, until), oldest first.

    A "day" is the exchange's trading day (America/New_York, like
    ``risk.models.trading_day``); hours and minutes are cut in UTC. The
    grouping runs in the database, so what crosses the wire is bounded by the
    number of buckets (30 days: 30 rows) whatever the snapshot rate, and the
    range scan on the ``at`` index never reaches older history.
    """
    zone = zoneinfo.ZoneInfo(settings.TRADING_DAY_TIME_ZONE) if bucket == "day" else dt.UTC
    window = Q(at__gte=since) & (Q(at__lt=until) if until else Q())
    last_of_each_bucket = (
        EquitySnapshot.objects.filter(window)
        .order_by()
        .annotate(bucket=Trunc("at", bucket, tzinfo=zone))
        .values("bucket")
        .annotate(last_at=Max("at"))
        .values("last_at")
    )
    rows = (
        EquitySnapshot.objects.filter(window, at__in=Subquery(last_of_each_bucket))
        .order_by("at", "id")
        .values_list("at", "equity", "day_start_equity", "peak_equity")
    )
    points: dict[dt.datetime, EquityPoint] = {}
    for at, equity, day_start, peak in rows:
        points[at] = EquityPoint(at=at, equity=equity, day_start_equity=day_start, peak_equity=peak)
    return list(points.values())


def equity_history(*, now: dt.datetime) -> list[EquityPoint]:
    """The last snapshot of each trading day of the last HISTORY_DAYS days, today's so far last.

    The days that are over never change, so their series is computed once
    per trading day and kept in the shared cache: the grouping scans every
    snapshot of the window (172,800 at one per 15 s; about 60 ms on
    PostgreSQL), which the dashboard cannot afford on every refresh. Today is
    read live.
    """
    today = trading_day_start(now)
    since = trading_day_start(today - dt.timedelta(days=HISTORY_DAYS))
    key = f"dashboard:equity-days:{since.isoformat()}:{today.isoformat()}"
    closed = cache.get(key)
    if closed is None:
        closed = equity_series(since=since, until=today, bucket="day")
        cache.set(key, closed, timeout=24 * 3600 + 300)
    return closed + equity_series(since=today, bucket="day")


@dataclass(frozen=True)
class DailyPnl:
    """One trading day's equity change: its close against the previous day's close."""

    day: dt.date
    starts: dt.datetime  # the trading day's midnight (America/New_York), as aware UTC
    pnl: Decimal


def daily_pnl(history: list[EquityPoint]) -> list[DailyPnl]:
    """Day-over-day change of the daily closes (the first day against its own start equity)."""
    days = []
    previous: Decimal | None = None
    for point in history:
        reference = previous if previous is not None else point.day_start_equity
        days.append(DailyPnl(day=trading_day(point.at), starts=trading_day_start(point.at),
                             pnl=point.equity - reference))
        previous = point.equity
    return days


@dataclass(frozen=True)
class PendingReset:
    """A four-eyes request awaiting its second officer, whatever it resets."""

    key: str
    what: str
    requested_by: Any
    requested_at: dt.datetime | None
    reason: str
    url: str

    @classmethod
    def of(cls, four_eyes: FourEyes, obj: Model, *, key: str, what: str, url: str) -> PendingReset:
        return cls(key=key, what=what, requested_by=four_eyes.requested_by(obj),
                   requested_at=four_eyes.requested_at(obj), reason=four_eyes.reason(obj), url=url)


@dataclass(frozen=True)
class RiskAlerts:
    """What every admin page shouts about: active kill switches, pending resets, a non-closed breaker."""

    switches: list[KillSwitch]
    breaker: RiskState | None
    jobs: list[JobStatus] = field(default_factory=list)

    @property
    def jobs_down(self) -> list[JobStatus]:
        """Risk jobs that are disabled or stale: the controls they drive are not running."""
        return [job for job in self.jobs if job.down]

    @property
    def global_switch(self) -> KillSwitch | None:
        return next((s for s in self.switches if s.strategy_id is None and s.active), None)

    @property
    def strategy_switches(self) -> list[KillSwitch]:
        return [s for s in self.switches if s.strategy_id is not None and s.active]

    @property
    def pending_switch_resets(self) -> list[KillSwitch]:
        return [s for s in self.switches if s.reset_pending]

    @property
    def pending_resets(self) -> list[PendingReset]:
        """Every reset awaiting a second officer, kill switches and the breaker alike (risk.approvals)."""
        pending = [
            PendingReset.of(
                services.KILL_SWITCH_RESET, s, key=f"kill-switch-{s.pk}", what=f"{s.scope_label} kill switch",
                url=reverse("admin:risk_killswitch_change", args=[s.pk]),
            )
            for s in self.pending_switch_resets
        ]
        if self.breaker is not None and services.BREAKER_RESET.pending(self.breaker):
            pending.append(PendingReset.of(services.BREAKER_RESET, self.breaker, key="circuit-breaker",
                                           what="circuit breaker",
                                           url=reverse("admin:risk_riskstate_change", args=[self.breaker.pk])))
        return pending

    @property
    def breaker_alert(self) -> bool:
        return self.breaker is not None and self.breaker.breaker_state != BreakerState.CLOSED

    @property
    def any(self) -> bool:
        return bool(self.global_switch or self.strategy_switches or self.breaker_alert or self.jobs_down)


def risk_alerts() -> RiskAlerts:
    """Four small queries; run on every admin page for the banner."""
    switches = list(
        KillSwitch.objects.filter(Q(active=True) | Q(reset_requested_by__isnull=False))
        .select_related("strategy", "activated_by", "reset_requested_by")
        .order_by(F("strategy__slug").asc(nulls_first=True))
    )
    breaker = RiskState.objects.select_related("breaker_reset_requested_by").filter(pk=1).first()
    return RiskAlerts(switches=switches, breaker=breaker, jobs=job_statuses(timezone.now()))


# --- Gauges ---------------------------------------------------------------------


@dataclass(frozen=True)
class Gauge:
    """A bar of a current value against its limit, with the warning level marked when there is one."""

    key: str
    label: str
    value: Decimal
    limit: Decimal
    value_display: str
    limit_display: str
    warn: Decimal | None = None
    detail: str = ""
    # A third of the bar's length beyond the limit stays visible, so an
    # overshoot shows how far past the line it is.
    scale: Decimal = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", max(self.limit * Decimal("1.25"), self.value, Decimal("0.0001")))

    def _pct(self, value: Decimal) -> str:
        return f"{min(HUNDRED, value / self.scale * HUNDRED):.2f}"

    @property
    def fill_pct(self) -> str:
        return self._pct(self.value)

    @property
    def limit_pct(self) -> str:
        return self._pct(self.limit)

    @property
    def warn_pct(self) -> str | None:
        return None if self.warn is None else self._pct(self.warn)

    @property
    def utilisation(self) -> Decimal:
        return self.value / self.limit * HUNDRED if self.limit else ZERO

    @property
    def level(self) -> str:
        if self.value >= self.limit:
            return "breach"
        if (self.warn is not None and self.value >= self.warn) or self.utilisation >= 75:
            return "warn"
        return "ok"


def _current(item: LimitUse) -> Decimal:
    return item.current if item.current is not None else ZERO


def gauges(picture: RiskPicture, limits: RiskLimits) -> list[Gauge]:
    daily = picture.daily_drawdown
    total = picture.total_drawdown
    deployed_pct = _current(picture.limit("max_capital_deployed"))
    open_positions = _current(picture.limit("max_open_positions"))
    return [
        Gauge(
            key="daily_drawdown",
            label="Daily drawdown",
            value=daily,
            limit=limits.max_daily_drawdown_pct,
            warn=limits.daily_drawdown_warning_pct,
            value_display=percent(daily),
            limit_display=percent(limits.max_daily_drawdown_pct),
            detail=(f"warning at {percent(limits.daily_drawdown_warning_pct)}; "
                    "at the limit the breaker trips (reduce-only)"),
        ),
        Gauge(
            key="total_drawdown",
            label="Total drawdown (from peak)",
            value=total,
            limit=limits.max_total_drawdown_pct,
            value_display=percent(total),
            limit_display=percent(limits.max_total_drawdown_pct),
            detail="at the limit the global kill switch activates",
        ),
        Gauge(
            key="capital_deployed",
            label="Capital deployed",
            value=deployed_pct,
            limit=limits.max_capital_deployed_pct,
            value_display=f"{percent(deployed_pct)} ({money(picture.capital_deployed)})",
            limit_display=percent(limits.max_capital_deployed_pct),
            detail="positions at the last price plus working orders that add exposure"
            + (f"; no fresh price for {', '.join(picture.unpriced_symbols)}: new exposure is denied stale_price"
               if picture.unpriced_symbols else ""),
        ),
        Gauge(
            key="open_positions",
            label="Open positions",
            value=open_positions,
            limit=Decimal(limits.max_open_positions),
            value_display=f"{open_positions:.0f}",
            limit_display=str(limits.max_open_positions),
            detail="symbols held or with working orders that add exposure",
        ),
    ]


# --- Charts ---------------------------------------------------------------------


def _f(value: Decimal) -> float:
    return float(value)


def charts(*, now: dt.datetime, state: RiskState, limits: RiskLimits) -> list[Chart]:
    exchange = zoneinfo.ZoneInfo(settings.TRADING_DAY_TIME_ZONE)
    zone_name = now.astimezone(exchange).tzname() or "ET"
    day_start = trading_day_start(now)
    warn = limits.daily_drawdown_warning_pct / HUNDRED
    daily = limits.max_daily_drawdown_pct / HUNDRED
    total = limits.max_total_drawdown_pct / HUNDRED

    today = equity_series(since=day_start, bucket="minute")
    if state.equity is not None and state.equity_at and (not today or state.equity_at > today[-1].at):
        today.append(
            EquityPoint(
                at=state.equity_at,
                equity=state.equity,
                day_start_equity=state.day_start_equity or state.equity,
                peak_equity=state.peak_equity or state.equity,
            )
        )
    today_chart_end = max(now, day_start + dt.timedelta(hours=1))
    hours_so_far = (today_chart_end - day_start).total_seconds() / 3600
    every = 1 if hours_so_far <= 6 else 2 if hours_so_far <= 12 else 3
    hours = [day_start + dt.timedelta(hours=h) for h in range(0, 25, every)]
    base = today[-1] if today else None
    today_thresholds: list[tuple[str, str, Series]] = []
    if base is not None:
        start_value = _f(base.day_start_equity)
        today_thresholds = [
            ("Day start", "day-start", [(day_start, start_value)]),
            (f"Warning −{limits.daily_drawdown_warning_pct}%", "warn",
             [(day_start, _f(base.day_start_equity * (1 - warn)))]),
            (f"Breaker −{limits.max_daily_drawdown_pct}%", "breach",
             [(day_start, _f(base.day_start_equity * (1 - daily)))]),
        ]
        floor = _f(base.peak_equity * (1 - total))
        # The total-drawdown floor is drawn today only when it is within reach;
        # otherwise it would flatten the intraday line into nothing.
        if floor >= start_value * (1 - 2 * float(daily)):
            today_thresholds.append((f"Kill switch −{limits.max_total_drawdown_pct}%", "kill", [(day_start, floor)]))
    today_chart = line_chart(
        key="today",
        title="Equity today",
        subtitle=f"since {day_start.astimezone(exchange):%a %d %b} 00:00 {zone_name}, last snapshot of each minute",
        equity=[(p.at, _f(p.equity)) for p in today],
        thresholds=today_thresholds,
        start=day_start,
        end=today_chart_end,
        x_ticks=[(h, f"{h.astimezone(exchange):%H:%M}") for h in hours],
        gap=dt.timedelta(minutes=20),
    )

    # The history: one point per trading day (its last snapshot; today's latest reading for today).
    today_start = day_start
    since = trading_day_start(today_start - dt.timedelta(days=HISTORY_DAYS))
    history = equity_history(now=now)
    if today:
        history = [p for p in history if p.at < today_start] + [today[-1]]
    days = [trading_day_start(today_start - dt.timedelta(days=d)) for d in range(HISTORY_DAYS, -1, -5)]
    day_ticks = [(d, f"{d.astimezone(exchange):%d %b}") for d in days]
    history_chart = line_chart(
        key="history",
        title=f"Equity, last {HISTORY_DAYS} days and today",
        subtitle=f"each trading day's last snapshot (days cut at 00:00 {zone_name}); "
                 "the peak is the high-water mark the total drawdown is measured from",
        equity=[(p.at, _f(p.equity)) for p in history],
        thresholds=[
            ("Peak", "peak", [(p.at, _f(p.peak_equity)) for p in history]),
            (f"Breaker −{limits.max_daily_drawdown_pct}%", "breach",
             [(p.at, _f(p.day_start_equity * (1 - daily))) for p in history]),
            (f"Kill switch −{limits.max_total_drawdown_pct}%", "kill",
             [(p.at, _f(p.peak_equity * (1 - total))) for p in history]),
        ] if history else [],
        start=since,
        end=today_start + dt.timedelta(days=1),  # the axis of the daily P&L bars below: the days line up
        x_ticks=day_ticks,
        # A missing weekend is no hole; a run of missing days (the jobs were down) is.
        gap=dt.timedelta(days=4),
        point_titles=[f"{p.at.astimezone(exchange):%a %d %b %H:%M} {zone_name}: {money(p.equity)}"
                      for p in history],
    )
    pnl_chart = bar_chart(
        key="daily-pnl",
        title=f"Daily P&L, last {HISTORY_DAYS} days and today",
        subtitle=f"each trading day's close against the previous day's close (days cut at 00:00 {zone_name})",
        bars=[(d.starts, d.starts + dt.timedelta(days=1), d.pnl, f"{d.day:%a %d %b}") for d in daily_pnl(history)],
        start=since,
        end=today_start + dt.timedelta(days=1),
        x_ticks=day_ticks,
    )
    return [today_chart, history_chart, pnl_chart]


# --- The dashboard ----------------------------------------------------------------


@dataclass
class StrategyRow:
    """A strategy with its limits in use: the same figures as /v1/risk's ``strategies``."""

    strategy: Strategy
    usage: dict[str, Any]

    @property
    def allocation_used(self) -> str:
        return money(self.usage["allocation_used"])

    @property
    def allocation(self) -> str:
        return money(self.usage["allocation"])

    @property
    def daily_pnl(self) -> str:
        return signed_money(self.usage["daily_pnl"])

    @property
    def daily_loss_limit(self) -> str:
        return money(self.usage["daily_loss_limit"])

    @property
    def allocation_pct(self) -> Decimal | None:
        allocation = self.usage["allocation"]
        return self.usage["allocation_used"] / allocation * HUNDRED if allocation else None

    @property
    def allocation_level(self) -> str:
        pct = self.allocation_pct
        return "breach" if pct is not None and pct >= HUNDRED else "warn" if pct is not None and pct >= 80 else "ok"

    @property
    def loss_level(self) -> str:
        loss, limit = -self.usage["daily_pnl"], self.usage["daily_loss_limit"]
        return "breach" if limit and loss >= limit else "warn" if limit and loss >= limit * Decimal("0.8") else "ok"

    @property
    def throttle_level(self) -> str:
        used, limit = self.usage["orders_last_minute"], self.usage["max_orders_per_minute"]
        return "breach" if used >= limit else "warn" if used >= limit * 0.8 else "ok"


@dataclass
class Dashboard:
    now: dt.datetime
    picture: RiskPicture
    alerts: RiskAlerts
    state: RiskState
    limits: RiskLimits
    gauges: list[Gauge]
    charts: list[Chart]
    jobs: list[JobStatus]
    working_by_status: list[tuple[str, str, int]]
    open_breaks: list[ReconciliationBreak]
    open_breaks_count: int
    last_reconciliation: ReconciliationRun | None
    strategies: list[StrategyRow]
    recent_events: list[RiskEvent]
    global_switch_pk: int | None

    @property
    def equity(self) -> str:
        return money(self.picture.equity) if self.state.equity is not None else "—"

    @property
    def day_pnl(self) -> Decimal:
        return self.picture.equity - self.picture.day_start_equity

    @property
    def day_pnl_display(self) -> str:
        return signed_money(self.day_pnl)

    @property
    def day_pnl_pct_display(self) -> str:
        start = self.picture.day_start_equity
        pct = self.day_pnl / start * HUNDRED if start else ZERO
        return f"{'+' if pct > 0 else ''}{pct:.2f} %"

    @property
    def equity_age(self) -> str:
        at = self.picture.equity_at
        return age_display((self.now - at).total_seconds() if at else None)

    @property
    def equity_stale(self) -> bool:
        return any(job.stale for job in self.jobs if job.name == "risk_eval")

    @property
    def day_start_display(self) -> str:
        return money(self.picture.day_start_equity) if self.state.equity is not None else "—"

    @property
    def peak_display(self) -> str:
        return money(self.picture.peak_equity) if self.state.equity is not None else "—"

    @property
    def trading_day(self) -> str:
        exchange = zoneinfo.ZoneInfo(settings.TRADING_DAY_TIME_ZONE)
        return f"{self.now.astimezone(exchange):%a %d %b}"

    @property
    def breaker_level(self) -> str:
        return {BreakerState.CLOSED: "ok", BreakerState.WARNING: "warn"}.get(self.state.breaker_state, "breach")

    @property
    def risk_eval_every(self) -> int:
        return int(settings.RISK_EVAL_INTERVAL_S)

    @property
    def stale_jobs(self) -> list[JobStatus]:
        return [job for job in self.jobs if job.down]

    @property
    def working_total(self) -> int:
        return sum(count for _, _, count in self.working_by_status)

    @property
    def trading_mode(self) -> str:
        return settings.TRADING_MODE

    def as_json(self) -> dict[str, Any]:
        """The facts, for scripts and tests; the page itself uses the rendered panels."""
        return {
            "generated_at": self.now,
            "equity": self.picture.equity,
            "day_start_equity": self.picture.day_start_equity,
            "peak_equity": self.picture.peak_equity,
            "daily_drawdown": self.picture.daily_drawdown,
            "total_drawdown": self.picture.total_drawdown,
            "capital_deployed": self.picture.capital_deployed,
            "circuit_breaker": self.picture.circuit_breaker.state,
            "kill_switch": {
                "global_active": self.alerts.global_switch is not None,
                "strategies_active": [s.strategy.slug for s in self.alerts.strategy_switches],
                "resets_pending": [s.scope_label for s in self.alerts.pending_switch_resets],
            },
            "pending_resets": [p.what for p in self.alerts.pending_resets],
            "working_orders": self.working_total,
            "strategies": self.picture.strategies,
            "open_breaks": self.open_breaks_count,
            "jobs": {job.name: {"last_success": job.last_success, "stale": job.stale, "disabled": job.disabled}
                     for job in self.jobs},
        }


def build(*, now: dt.datetime | None = None) -> Dashboard:
    now = now or timezone.now()
    picture = risk_picture(now=now)
    usage = {row["strategy"]: row for row in picture.strategies}
    state = RiskState.objects.select_related("peak_reset_by").get(pk=1)  # risk_picture made sure it exists
    limits = RiskLimits.current()
    labels = dict(OrderStatus.choices)
    by_status = dict(working_orders().order_by().values_list("status").annotate(n=Count("id")))
    open_breaks_qs = ReconciliationBreak.objects.filter(status__in=[BreakStatus.OPEN, BreakStatus.ACKNOWLEDGED])
    return Dashboard(
        now=now,
        picture=picture,
        alerts=risk_alerts(),
        state=state,
        limits=limits,
        gauges=gauges(picture, limits),
        charts=charts(now=now, state=state, limits=limits),
        jobs=job_statuses(now),
        working_by_status=[
            (status, labels[status], by_status[status]) for status in OrderStatus.values if status in by_status
        ],
        open_breaks=list(open_breaks_qs.select_related("run").order_by("-run__at", "symbol")[:OPEN_BREAKS_SHOWN]),
        open_breaks_count=open_breaks_qs.count(),
        last_reconciliation=ReconciliationRun.objects.order_by("-at").first(),
        strategies=[
            StrategyRow(strategy=strategy, usage=usage[strategy.slug])
            for strategy in Strategy.objects.select_related("kill_switch").order_by("slug")
            if strategy.slug in usage
        ],
        recent_events=list(RiskEvent.objects.select_related("strategy").order_by("-at", "-id")[:RECENT_EVENTS_SHOWN]),
        global_switch_pk=KillSwitch.objects.filter(strategy__isnull=True).values_list("pk", flat=True).first(),
    )


def render_panels(request: HttpRequest, context: dict[str, Any], names: tuple[str, ...] = PANELS) -> dict[str, str]:
    return {name: render_to_string(f"backoffice/dashboard/{name}.html", context, request=request) for name in names}
