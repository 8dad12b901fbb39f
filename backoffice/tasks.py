"""Beat: the watch over the risk jobs. Tasks call a service, nothing more."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from backoffice.eod import eod_reports_run
from backoffice.jobs import risk_jobs_watch


@shared_task(soft_time_limit=20, time_limit=30)
def watch_risk_jobs() -> list[str]:
    """Alert once for each risk job that is disabled or stale (and once when it runs again)."""
    return [status.name for status in risk_jobs_watch(timezone.now()) if status.down]


@shared_task(soft_time_limit=60, time_limit=90)
def produce_end_of_day_reports() -> list[str]:
    """After the close: store the day's report once, and e-mail every report not yet sent."""
    return [f"{day:%Y-%m-%d}" for day in eod_reports_run(now=timezone.now())]
