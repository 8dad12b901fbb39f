"""The beat schedule, created or updated by name in django-celery-beat's tables.

An officer's enable/disable in the admin survives: only the interval and the
task path are set on an existing entry, never ``enabled``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

# Alerts are first sent by their own task as they are raised; this job only re-drives the ones it lost.
ALERT_SWEEP_INTERVAL_S = 30
EOD_REPORT_INTERVAL_S = 300


def schedule() -> dict[str, tuple[str, int]]:
    jobs = {
        "order status sync": ("orders.tasks.sync_orders", settings.ORDER_SYNC_INTERVAL_S),
        "position reconciliation": ("orders.tasks.reconcile_positions", settings.RECONCILE_INTERVAL_S),
        "equity and circuit breaker": ("risk.tasks.evaluate_risk", settings.RISK_EVAL_INTERVAL_S),
        "alert delivery": ("risk.tasks.deliver_pending_alerts", ALERT_SWEEP_INTERVAL_S),
        "risk job watch": ("backoffice.tasks.watch_risk_jobs", ALERT_SWEEP_INTERVAL_S),
        # Runs all day; it acts once the close is past (EOD_REPORT_AFTER) and retries unsent e-mails.
        "end-of-day report": ("backoffice.tasks.produce_end_of_day_reports", EOD_REPORT_INTERVAL_S),
    }
    if settings.BROKER == "simulated":
        jobs["simulated market tick"] = ("brokers.tasks.simulated_market_tick", settings.SIM_TICK_INTERVAL_S)
    return jobs


@transaction.atomic
def setup_periodic_tasks() -> list[str]:
    names = []
    for name, (task, every) in schedule().items():
        interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=IntervalSchedule.SECONDS)
        entry, created = PeriodicTask.objects.get_or_create(
            name=name, defaults={"task": task, "interval": interval, "enabled": True}
        )
        if not created and (entry.task != task or entry.interval_id != interval.pk):
            entry.task, entry.interval = task, interval
            entry.save(update_fields=["task", "interval"])
        # Each run must finish before the next is due; a stale message is dropped, not queued up.
        PeriodicTask.objects.filter(pk=entry.pk).update(expires=None, expire_seconds=max(every, 5))
        names.append(name)
    return names
