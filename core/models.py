"""The models no app owns: the periodic jobs' lock and bookkeeping."""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.utils import timezone


class JobRun(models.Model):
    """Bookkeeping of each periodic job: an expiring lock and its last outcome.

    The lock lives in the database, not in a process, so two beat ticks or two
    workers cannot run the same job at once; it expires, so a worker killed
    mid-run does not block the job forever.
    """

    name = models.CharField(max_length=100, unique=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    lock_token = models.CharField(max_length=64, blank=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_succeeded_at = models.DateTimeField(null=True, blank=True)
    last_failed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    runs = models.PositiveBigIntegerField(default=0)

    class Meta:
        # Moved from the risk app with a state-only migration: the table keeps its name.
        db_table = "risk_jobrun"

    def __str__(self) -> str:
        return self.name

    def age(self, now: dt.datetime | None = None) -> dt.timedelta | None:
        if self.last_succeeded_at is None:
            return None
        return (now or timezone.now()) - self.last_succeeded_at
