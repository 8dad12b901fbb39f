"""The suite never queues Celery messages where `make run`'s worker would find them."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings


def test_a_task_a_test_queues_on_the_embedded_default_stays_out_of_var():
    if not settings.CELERY_BROKER_URL.startswith("filesystem://"):
        pytest.skip("the embedded default's queue only (CI queues on its own Redis database)")
    from risk.tasks import deliver_alert

    queue = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_out"])
    before = set(queue.iterdir())
    deliver_alert.delay(0)

    assert not queue.is_relative_to(settings.VAR_DIR)
    assert len(set(queue.iterdir()) - before) == 1  # it was queued, in the suite's own folder
