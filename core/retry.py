"""Retry timing for tasks that talk to the outside world (the broker)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

MAX_DELAY_S = 60.0


def retry_delay(exc: Exception, retries: int) -> float:
    """Exponential backoff (1, 2, 4 ... s), or the remote side's own rate-limit reset when it names one.

    The reset is read from the error's ``reset_at`` (``brokers.exceptions.BrokerRateLimited``
    carries one), so this bottom layer needs no import of the broker package.
    """
    reset_at: dt.datetime | None = getattr(exc, "reset_at", None)
    if reset_at is not None:
        return min(MAX_DELAY_S, max(0.5, (reset_at - timezone.now()).total_seconds()))
    return min(MAX_DELAY_S, float(2**retries))
