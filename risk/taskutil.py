"""Retry timing for tasks that talk to the broker."""

from __future__ import annotations

from django.utils import timezone

from brokers.exceptions import BrokerError, BrokerRateLimited

MAX_DELAY_S = 60.0


def retry_delay(exc: BrokerError, retries: int) -> float:
    """Exponential backoff (1, 2, 4 ... s), or the broker's own rate-limit reset when it names one."""
    if isinstance(exc, BrokerRateLimited) and exc.reset_at is not None:
        return min(MAX_DELAY_S, max(0.5, (exc.reset_at - timezone.now()).total_seconds()))
    return min(MAX_DELAY_S, float(2**retries))
