"""Equity snapshot and circuit-breaker evaluation (Celery beat)."""

from __future__ import annotations

import logging

from celery import shared_task

from brokers.exceptions import BrokerError
from brokers.registry import get_broker
from core.jobs import JobBusy, exclusive_job
from core.retry import retry_delay
from risk import alerts, services

logger = logging.getLogger(__name__)


@shared_task(bind=True, max_retries=3, soft_time_limit=30, time_limit=45)
def evaluate_risk(self) -> str:  # noqa: ANN001
    try:
        with exclusive_job("risk_eval", ttl_s=60):
            account = get_broker().get_account()
            services.equity_record(
                equity=account.equity, day_start_equity=account.last_equity, job="risk_eval", account=account
            )
    except JobBusy:
        return "busy"
    except BrokerError as exc:
        raise self.retry(exc=exc, countdown=retry_delay(exc, self.request.retries)) from exc
    return "ok"


@shared_task(bind=True, max_retries=8, soft_time_limit=40, time_limit=50)
def deliver_alert(self, alert_id: int) -> str:  # noqa: ANN001
    """Deliver one stored alert; a channel that is down is retried with backoff (the beat job goes on after)."""
    try:
        alerts.alert_deliver(alert_id=alert_id)
    except alerts.AlertDeliveryFailed as exc:
        raise self.retry(exc=exc, countdown=min(60.0, float(2**self.request.retries))) from exc
    return "ok"


@shared_task(soft_time_limit=50, time_limit=60)
def deliver_pending_alerts() -> str:
    """Beat: re-drive alerts whose task was lost or exhausted its retries."""
    try:
        with exclusive_job("alert_delivery", ttl_s=120):
            return f"delivered {alerts.alerts_deliver_pending()}"
    except JobBusy:
        return "busy"
