"""Equity snapshot and circuit-breaker evaluation (Celery beat)."""

from __future__ import annotations

import logging

from celery import shared_task

from brokers.exceptions import BrokerError
from brokers.registry import get_broker
from core.jobs import JobBusy, exclusive_job
from core.retry import retry_delay
from risk import services

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
