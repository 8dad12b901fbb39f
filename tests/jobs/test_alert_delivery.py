"""Alert delivery on a real Celery worker: a webhook that is down first gets the alert when it comes back."""

from __future__ import annotations

import socket

import pytest

from risk import alerts
from risk.models import Alert
from tests.jobs.test_worker import start_worker, wait_for  # noqa: F401  (start_worker is a fixture)
from tests.risk.test_alerts import Hook

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def webhook_port(settings, monkeypatch) -> int:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hooks/T0k3nInThePath9"
    settings.ALERT_WEBHOOK_URL = url
    monkeypatch.setenv("ALERT_WEBHOOK_URL", url)  # the worker is its own process: it reads the environment
    return port


def test_the_worker_retries_a_webhook_that_is_down_until_it_answers(webhook_port, start_worker):  # noqa: F811
    port = webhook_port
    start_worker()

    alerts.alert_raise(
        key="circuit_breaker", level="critical", kind="circuit_breaker", subject="Circuit breaker tripped",
        message="daily drawdown 3.10%", state="tripped",
    )
    item = Alert.objects.get()
    wait_for(lambda: Alert.objects.get(pk=item.pk).attempts >= 1, what="the first, failed, delivery attempt")
    assert Alert.objects.get(pk=item.pk).pending_channels == ["webhook"]  # nothing listens: connection refused

    hook = Hook(port=port)
    try:
        wait_for(lambda: Alert.objects.get(pk=item.pk).delivered_at is not None, timeout=90, what="the retry")
    finally:
        hook.close()

    assert len(hook.received) == 1
    assert hook.received[0]["text"] == "[CRITICAL] Circuit breaker tripped: daily drawdown 3.10%"
    assert Alert.objects.get(pk=item.pk).attempts >= 2
