"""Alerts that arrive, once: a condition alerts once, again only when it changes or escalates."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail

from risk import alerts, services
from risk.models import Alert, AlertCondition

pytestmark = pytest.mark.django_db
D = Decimal


class Hook:
    """A real HTTP server on loopback that records what alerts post to it."""

    def __init__(self, port: int = 0, *, status: int = 200) -> None:
        received: list[dict] = []
        self.received = received
        answer = status

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(answer)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/T0k3nInThePath9"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    yield server
    server.close()


def raise_break(difference: str = "2", level: str = "warning") -> Alert | None:
    return alerts.alert_raise(
        key="break:AAPL", level=level, kind="reconciliation_break", subject="Reconciliation break: AAPL",
        message=f"broker and ledger differ by {difference}", symbol="AAPL", state=difference,
    )


def test_it_alerts_a_persisting_condition_once():
    results = [raise_break() for _ in range(10)]

    assert results[0] is not None and results[1:] == [None] * 9
    assert Alert.objects.count() == 1


def test_it_alerts_again_when_the_condition_changes_or_escalates():
    raise_break("2")
    raise_break("2")
    assert raise_break("3") is not None  # the difference changed
    assert raise_break("3", level="critical") is not None  # escalated
    assert raise_break("3", level="warning") is None  # a lower level says nothing new

    assert [a.message for a in Alert.objects.order_by("id")] == [
        "broker and ledger differ by 2", "broker and ledger differ by 3", "broker and ledger differ by 3",
    ]


def test_it_alerts_again_after_the_condition_cleared():
    raise_break()
    assert alerts.alert_clear(key="break:AAPL") is True
    assert alerts.alert_clear(key="break:AAPL") is False

    assert raise_break() is not None
    assert Alert.objects.count() == 2


def test_a_reminder_is_sent_once_it_falls_due():
    def remind() -> Alert | None:
        return alerts.alert_raise(
            key="break:AAPL", level="warning", kind="reconciliation_break", subject="still open", message="",
            state="2", remind_after=dt.timedelta(days=1),
        )

    assert remind() is not None
    assert remind() is None
    AlertCondition.objects.filter(key="break:AAPL").update(
        last_alerted_at=AlertCondition.objects.get().last_alerted_at - dt.timedelta(days=1, seconds=1)
    )
    assert remind() is not None
    assert remind() is None


def test_a_kill_switch_activation_and_its_reset_alert_once_each(officer, django_capture_on_commit_callbacks):
    services.killswitch_activate(acting_user=officer, reason="desk says stop")
    services.killswitch_activate(acting_user=officer, reason="again")  # already active: not re-alerted
    services.killswitch_reset(acting_user=officer, reason="all clear")

    assert [(a.key, a.level, a.subject) for a in Alert.objects.order_by("id")] == [
        ("kill_switch:global", "critical", "KILL SWITCH ACTIVATED (global)"),
        ("kill_switch:global", "warning", "Kill switch reset (global)"),
    ]


def test_the_webhook_gets_text_for_chat_tools_and_structured_fields(hook, settings):
    settings.ALERT_WEBHOOK_URL = hook.url
    settings.ADMINS = [("risk", "risk@example.com")]
    item = raise_break()

    assert alerts.alerts_deliver_pending() == 1

    assert len(hook.received) == 1
    payload = hook.received[0]
    assert payload["text"] == "[WARNING] Reconciliation break: AAPL: broker and ledger differ by 2"
    assert {k: payload[k] for k in ("subject", "level", "kind", "symbol", "key")} == {
        "subject": "Reconciliation break: AAPL", "level": "warning", "kind": "reconciliation_break",
        "symbol": "AAPL", "key": "break:AAPL",
    }
    assert "strategy" not in payload
    assert [m.subject.endswith("[back office] Reconciliation break: AAPL") for m in mail.outbox] == [True]
    item.refresh_from_db()
    assert item.delivered_at is not None and item.pending_channels == []


def test_a_webhook_that_is_down_is_retried_and_the_email_is_not_sent_twice(settings, caplog):
    down = Hook(status=503)
    settings.ALERT_WEBHOOK_URL = down.url
    settings.ADMINS = [("risk", "risk@example.com")]
    item = raise_break()

    with caplog.at_level(logging.ERROR, logger="risk.alerts"), pytest.raises(alerts.AlertDeliveryFailed):
        alerts.alert_deliver(alert_id=item.pk)
    item.refresh_from_db()
    assert item.pending_channels == ["webhook"] and item.delivered_at is None
    assert "T0k3nInThePath9" not in caplog.text + item.last_error  # the URL's token is never logged
    down.close()

    up = Hook(port=down.port)
    try:
        assert alerts.alert_deliver(alert_id=item.pk) is True
    finally:
        up.close()
    assert len(up.received) == 1
    assert len(mail.outbox) == 1
    item.refresh_from_db()
    assert item.attempts == 2 and item.delivered_at is not None


def test_alert_urls_fan_out_through_apprise(hook, settings):
    settings.ALERT_URLS = [f"json://127.0.0.1:{hook.port}/apprise"]
    services.killswitch_activate(acting_user=None, reason="total drawdown", job="risk_eval")

    assert alerts.alerts_deliver_pending() == 1

    assert len(hook.received) == 1
    assert hook.received[0]["title"] == "KILL SWITCH ACTIVATED (global)"
    assert hook.received[0]["type"] == "failure"
