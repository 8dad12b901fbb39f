"""The Celery app: worker and beat load Django settings (and so validate them) first."""

import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backoffice.settings")

app = Celery("backoffice")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def reconcile_at_start(sender: object = None, **kwargs: object) -> None:
    """Reconciliation runs at worker start, not only on the minute (SPEC 3.4)."""
    from orders.tasks import reconcile_positions

    reconcile_positions.delay()
