"""The periodic jobs an officer must trust: how often each runs, when it is stale, who disabled it.

The risk jobs (sync, equity and circuit breaker, reconciliation) are controls
like the kill switch: disabling or rescheduling one goes through
:func:`risk_job_update` (a reason, a risk event, an alert), and while one is
disabled or stale every admin page shows a banner, ``/v1/health`` says
``degraded`` and an alert goes out (:func:`risk_jobs_watch`).

One rule for /v1/health, the admin banner and the dashboard: a job is stale
when it has not succeeded for STALE_AFTER_INTERVALS of its own intervals.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django_celery_beat.models import PeriodicTask

from core.jobs import job_freshness
from risk import alerts
from risk.models import AlertLevel, RiskEventKind
from risk.services import RiskActionError, actor_label, risk_event_record

STALE_AFTER_INTERVALS = 3


@dataclass(frozen=True)
class RiskJob:
    name: str  # the JobRun name
    label: str
    setting: str  # how often it runs
    task: str  # the Celery task beat sends


JOBS = (
    RiskJob("order_sync", "Order status sync", "ORDER_SYNC_INTERVAL_S", "orders.tasks.sync_orders"),
    RiskJob("risk_eval", "Equity snapshot", "RISK_EVAL_INTERVAL_S", "risk.tasks.evaluate_risk"),
    RiskJob("reconcile", "Reconciliation", "RECONCILE_INTERVAL_S", "orders.tasks.reconcile_positions"),
)
JOB_BY_TASK = {job.task: job for job in JOBS}
# The fields of a beat entry that decide whether and when a risk job runs.
SCHEDULE_FIELDS = ("enabled", "task", "interval", "crontab", "solar", "clocked", "start_time", "one_off",
                   "expires", "expire_seconds")


def age_display(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds} s ago"
    if seconds < 90 * 60:
        return f"{seconds // 60} min ago"
    if seconds < 36 * 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min ago"
    return f"{seconds // 86400} days ago"


@dataclass(frozen=True)
class JobStatus:
    name: str
    label: str
    last_success: dt.datetime | None
    age_s: float | None
    every_s: int
    stale: bool
    disabled: bool = False

    @property
    def age(self) -> str:
        return age_display(self.age_s)

    @property
    def down(self) -> bool:
        return self.stale or self.disabled

    @property
    def problem(self) -> str:
        if self.disabled:
            return "disabled in the schedule"
        return f"stale: last success {self.age}" if self.stale else ""


def job_status(name: str, last_success: dt.datetime | None, now: dt.datetime, *, disabled: bool = False
               ) -> JobStatus | None:
    """The freshness of one of JOBS (None for another job): no query, for lists that have the rows."""
    for job in JOBS:
        if job.name == name:
            every = int(getattr(settings, job.setting))
            age = (now - last_success).total_seconds() if last_success else None
            stale = age is None or age > every * STALE_AFTER_INTERVALS
            return JobStatus(name=name, label=job.label, last_success=last_success, age_s=age, every_s=every,
                             stale=stale, disabled=disabled)
    return None


def disabled_jobs() -> set[str]:
    """Risk jobs that have beat entries and none of them enabled (one query)."""
    entries: dict[str, bool] = {}
    for task, enabled in PeriodicTask.objects.filter(task__in=list(JOB_BY_TASK)).values_list("task", "enabled"):
        entries[task] = entries.get(task, False) or enabled
    return {JOB_BY_TASK[task].name for task, enabled in entries.items() if not enabled}


def job_statuses(now: dt.datetime) -> list[JobStatus]:
    freshness = job_freshness()
    disabled = disabled_jobs()
    return [
        job_status(job.name, freshness.get(job.name), now, disabled=job.name in disabled)  # type: ignore[misc]
        for job in JOBS
    ]


def risk_jobs_watch(now: dt.datetime) -> list[JobStatus]:
    """Alert once per job that is disabled or stale, and once when it runs again. Returns the statuses."""
    statuses = job_statuses(now)
    for status in statuses:
        key = f"job:{status.name}"
        if status.down:
            state = "disabled" if status.disabled else "stale"
            alerts.alert_raise(
                key=key, level=AlertLevel.CRITICAL, kind="risk_job", state=state,
                subject=f"Risk job {state}: {status.label}",
                message=f"{status.label} is {status.problem}; the controls it drives are not running.",
            )
        elif alerts.alert_clear(key=key):
            alerts.alert_raise(
                key=f"{key}:recovered", level=AlertLevel.INFO, kind="risk_job", state=now.isoformat(),
                subject=f"Risk job running again: {status.label}", message=f"last success {status.age}",
            )
    return statuses


def _schedule_of(task: PeriodicTask) -> dict[str, Any]:
    values = {}
    for name in SCHEDULE_FIELDS:
        value = getattr(task, name)
        values[name] = value if isinstance(value, (bool, int, type(None))) else str(value)
    return values


def is_risk_job(task: PeriodicTask) -> bool:
    return task.task in JOB_BY_TASK


@transaction.atomic
def risk_job_update(*, acting_user: Any, periodic_task: PeriodicTask, reason: str) -> PeriodicTask:
    """Save an officer's change to a risk job's beat entry: a reason, a risk event, an alert.

    ``periodic_task`` carries the new values (an admin form's instance); the
    stored row gives the old ones.
    """
    if not (acting_user.is_active and acting_user.has_perm("django_celery_beat.change_periodictask")):
        raise PermissionDenied("missing permission django_celery_beat.change_periodictask")
    reason = (reason or "").strip()
    if not reason:
        raise RiskActionError("a reason is required to change a risk job's schedule")
    stored = PeriodicTask.objects.select_for_update().get(pk=periodic_task.pk)
    job = JOB_BY_TASK.get(stored.task) or JOB_BY_TASK.get(periodic_task.task)
    before, after = _schedule_of(stored), _schedule_of(periodic_task)
    old = {k: v for k, v in before.items() if after[k] != v}
    new = {k: after[k] for k in old}
    periodic_task.save()
    if not new:
        return periodic_task
    label = job.label if job else periodic_task.name
    if new.get("enabled") is False:
        kind, state, level = RiskEventKind.JOB_DISABLED, "disabled", AlertLevel.CRITICAL
    elif new.get("enabled") is True:
        kind, state, level = RiskEventKind.JOB_ENABLED, "enabled", AlertLevel.WARNING
    else:
        kind, state, level = RiskEventKind.JOB_RESCHEDULED, f"rescheduled {sorted(new.items())}", AlertLevel.WARNING
    risk_event_record(kind=kind, acting_user=acting_user, reason=reason,
                      old={"job": periodic_task.name, **old}, new={"job": periodic_task.name, **new})
    changes = ", ".join(f"{k}: {old[k]} -> {new[k]}" for k in new)
    name = job.name if job else periodic_task.name
    alerts.alert_raise(
        # A disable is the condition the watch reports too: the same key and state, so it is said once.
        key=f"job:{name}" if state == "disabled" else f"job_change:{name}", level=level, kind="risk_job",
        state=state if state == "disabled" else f"{state} {reason}",
        subject=f"Risk job {state.split(' ')[0]}: {label}",
        message=f"{actor_label(acting_user)} changed {periodic_task.name} ({changes}): {reason}",
    )
    return periodic_task
