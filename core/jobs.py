"""An expiring, database-held lock per periodic job, and its bookkeeping.

Compare-and-set on the JobRun row (healthchecks' habit): the UPDATE that
takes the lock matches only when the lock is free or expired, so of two beat
ticks or two workers exactly one runs; 0 rows updated means someone else won.
It works the same on SQLite and PostgreSQL, across processes, and a worker
killed mid-run only blocks the job until ``locked_until`` passes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator

from django.db.models import F, Q
from django.utils import timezone

from core.models import JobRun


class JobBusy(Exception):
    """Another run of the job holds the lock."""


@contextlib.contextmanager
def exclusive_job(name: str, *, ttl_s: int) -> Iterator[str]:
    JobRun.objects.get_or_create(name=name)
    now = timezone.now()
    token = uuid.uuid4().hex
    taken = (
        JobRun.objects.filter(name=name)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
        .update(
            locked_until=now + dt.timedelta(seconds=ttl_s), lock_token=token, last_started_at=now, runs=F("runs") + 1
        )
    )
    if not taken:
        raise JobBusy(name)
    try:
        yield token
    except BaseException as exc:
        JobRun.objects.filter(name=name, lock_token=token).update(
            locked_until=None, last_failed_at=timezone.now(), last_error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        raise
    else:
        JobRun.objects.filter(name=name, lock_token=token).update(
            locked_until=None, last_succeeded_at=timezone.now(), last_error=""
        )


def job_freshness() -> dict[str, dt.datetime | None]:
    return dict(JobRun.objects.values_list("name", "last_succeeded_at"))
