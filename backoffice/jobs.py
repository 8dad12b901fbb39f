"""The periodic jobs an officer must trust: how often each runs, and when it is stale.

One rule for /v1/health and the admin dashboard: a job is stale when it has
not succeeded for STALE_AFTER_INTERVALS of its own intervals.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings

from core.jobs import job_freshness

STALE_AFTER_INTERVALS = 3

# (JobRun name, label, the setting that says how often it runs)
JOBS = (
    ("order_sync", "Order status sync", "ORDER_SYNC_INTERVAL_S"),
    ("risk_eval", "Equity snapshot", "RISK_EVAL_INTERVAL_S"),
    ("reconcile", "Reconciliation", "RECONCILE_INTERVAL_S"),
)


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

    @property
    def age(self) -> str:
        return age_display(self.age_s)


def job_status(name: str, last_success: dt.datetime | None, now: dt.datetime) -> JobStatus | None:
    """The freshness of one of JOBS (None for another job): no query, for lists that have the rows."""
    for job, label, setting in JOBS:
        if job == name:
            every = int(getattr(settings, setting))
            age = (now - last_success).total_seconds() if last_success else None
            stale = age is None or age > every * STALE_AFTER_INTERVALS
            return JobStatus(name=name, label=label, last_success=last_success, age_s=age, every_s=every, stale=stale)
    return None


def job_statuses(now: dt.datetime) -> list[JobStatus]:
    freshness = job_freshness()
    return [job_status(name, freshness.get(name), now) for name, _, _ in JOBS]  # type: ignore[misc]
