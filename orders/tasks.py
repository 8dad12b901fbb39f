"""Status polling and reconciliation (Celery beat). Tasks call a service, nothing more."""

from __future__ import annotations

from celery import shared_task

from brokers.exceptions import BrokerError
from core.jobs import JobBusy, exclusive_job
from core.retry import retry_delay
from orders import day_start, services


@shared_task(bind=True, max_retries=3, soft_time_limit=50, time_limit=60)
def sync_orders(self) -> dict[str, int] | str:  # noqa: ANN001
    try:
        with exclusive_job("order_sync", ttl_s=90):
            result = services.orders_sync()
    except JobBusy:
        return "busy"
    except BrokerError as exc:
        raise self.retry(exc=exc, countdown=retry_delay(exc, self.request.retries)) from exc
    if result.fills:
        # A fill re-evaluates the circuit breaker with fresh equity.
        from risk.tasks import evaluate_risk

        evaluate_risk.delay()
    return {"checked": result.checked, "changed": result.changed, "broker_calls": result.broker_calls}


@shared_task(bind=True, max_retries=3, soft_time_limit=110, time_limit=120)
def reconcile_positions(self) -> dict[str, int] | str:  # noqa: ANN001
    try:
        with exclusive_job("reconcile", ttl_s=150):
            result = services.positions_reconcile()
            # Within a minute of the trading day's start, while the market is closed.
            day_start.positions_mark_day_start()
    except JobBusy:
        return "busy"
    except BrokerError as exc:
        raise self.retry(exc=exc, countdown=retry_delay(exc, self.request.retries)) from exc
    return {"breaks": len(result.breaks)}
