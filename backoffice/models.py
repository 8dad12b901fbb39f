"""The back office's own records: the end-of-day report (it reads orders and risk, so it lives at the top)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class EndOfDayReport(models.Model):
    """One trading day, per strategy: P&L, orders, fills, denials by code, breaches, breaks, control events.

    Produced once by the beat job after the close and never changed; ``emailed_at`` is the
    stored intent of the e-mail to the officers: empty until a send succeeds, so the job
    retries it on its next run.
    """

    trading_day = models.DateField(unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    rows = models.JSONField(default=list, help_text="one entry per strategy, then the account's")
    emailed_at = models.DateTimeField(null=True, blank=True)
    emailed_to = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-trading_day"]
        verbose_name = "end-of-day report"

    def __str__(self) -> str:
        return f"End of day {self.trading_day:%Y-%m-%d}"
