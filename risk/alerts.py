"""Alerts that arrive, once.

Every alert names the condition it is about (``key``: ``kill_switch:global``,
``circuit_breaker``, ``break:AAPL``, ``job:reconcile`` ...). A condition that
persists alerts once, and again only when its state changes, its level
escalates, a reminder falls due, or after it cleared (:func:`alert_clear`).

Raising an alert stores it in the transaction that made the decision (STYLE
13: an intent, not a call fired once); after commit a Celery task delivers
it, with retries, and a beat job re-drives any alert whose task was lost.
Channels: a log line, an e-mail to ADMINS, ``ALERT_WEBHOOK_URL`` (JSON with
the ``text`` that Slack, Mattermost and Teams incoming webhooks read, plus
structured fields) and every Apprise URL in ``ALERT_URLS``. A channel that
succeeded is never sent again; the URLs are never logged (they carry tokens).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import urllib.request
from typing import Any

from django.conf import settings
from django.core.mail import mail_admins
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from risk.models import ALERT_LEVEL_RANK, Alert, AlertCondition, AlertLevel

logger = logging.getLogger("risk.alerts")

WEBHOOK_TIMEOUT_S = 5
MAX_ATTEMPTS = 50  # about four hours of retries at the capped delay
DAILY = dt.timedelta(days=1)
_LOG_LEVEL = {AlertLevel.INFO: logging.INFO, AlertLevel.WARNING: logging.WARNING, AlertLevel.CRITICAL: logging.CRITICAL}


class AlertDeliveryFailed(Exception):
    """At least one channel could not be reached; the others are done."""


def _state_digest(state: str) -> str:
    # The state is compared, never shown: a long one is stored as its hash.
    return state if len(state) <= 200 else "sha256:" + hashlib.sha256(state.encode()).hexdigest()


def _channels() -> list[str]:
    channels = ["email"]
    if settings.ALERT_WEBHOOK_URL:
        channels.append("webhook")
    channels += [f"apprise:{index}" for index in range(len(settings.ALERT_URLS))]
    return channels


def alert_raise(
    *,
    key: str,
    level: str,
    kind: str,
    subject: str,
    message: str,
    symbol: str | None = None,
    strategy: str | None = None,
    state: str = "",
    remind_after: dt.timedelta | None = None,
) -> Alert | None:
    """Alert the officers about a condition, unless they were already told this.

    Returns the stored alert, or None when the condition is already alerted
    in this state and level (and no reminder is due). Call it inside the
    transaction that decided: a rollback takes the alert with it.
    """
    if level not in ALERT_LEVEL_RANK:
        raise ValueError(f"unknown alert level {level!r}")
    now = timezone.now()
    digest = _state_digest(state)
    with transaction.atomic():
        condition, created = AlertCondition.objects.get_or_create(
            key=key, defaults={"state": digest, "level": level, "first_raised_at": now, "last_alerted_at": now}
        )
        if not created:
            condition = AlertCondition.objects.select_for_update().get(pk=condition.pk)
            same = condition.active and condition.state == digest
            escalated = ALERT_LEVEL_RANK[level] > ALERT_LEVEL_RANK[condition.level]  # type: ignore[index]
            reminder_due = remind_after is not None and condition.last_alerted_at + remind_after <= now
            if same and not escalated and not reminder_due:
                return None
            if not condition.active:
                condition.first_raised_at = now
            condition.state, condition.level, condition.active = digest, level, True
            condition.last_alerted_at, condition.cleared_at = now, None
            condition.save()
        alert = Alert.objects.create(
            condition=condition, key=key, level=level, kind=kind, subject=subject[:300], message=message,
            symbol=symbol or "", strategy=strategy or "", pending_channels=_channels(), next_attempt_at=now,
        )
    alert_id, log_level = alert.pk, _LOG_LEVEL.get(level, logging.WARNING)  # type: ignore[call-overload]

    def after_commit() -> None:
        # The log is the channel that cannot be down: written as soon as the decision is.
        logger.log(log_level, "%s: %s", subject, message)
        _enqueue(alert_id)

    transaction.on_commit(after_commit)
    return alert


def alert_clear(*, key: str) -> bool:
    """The condition is over: the next raise alerts again. True when it was active."""
    return bool(
        AlertCondition.objects.filter(key=key, active=True).update(active=False, cleared_at=timezone.now())
    )


def alert(subject: str, message: str, *, level: int = logging.CRITICAL) -> None:
    """An alert without a condition of its own (kept for callers that have none): keyed by its subject."""
    name = AlertLevel.CRITICAL if level >= logging.CRITICAL else (
        AlertLevel.WARNING if level >= logging.WARNING else AlertLevel.INFO
    )
    alert_raise(key=f"adhoc:{subject}", level=name, kind="adhoc", subject=subject, message=message, state=message)


def _enqueue(alert_id: int) -> None:
    from risk.tasks import deliver_alert

    try:
        deliver_alert.delay(alert_id)
    except Exception as exc:  # noqa: BLE001  (the queue being down loses nothing: the beat job re-drives it)
        logger.error("alert %s not queued (%s); the alert delivery job will send it", alert_id, type(exc).__name__)


# --- Delivery ---------------------------------------------------------------


def webhook_payload(item: Alert) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "text": f"[{item.level.upper()}] {item.subject}: {item.message}" if item.message else item.subject,
        "subject": item.subject,
        "message": item.message,
        "level": item.level,
        "kind": item.kind,
        "key": item.key,
        "at": item.created_at.isoformat(),
    }
    if item.symbol:
        payload["symbol"] = item.symbol
    if item.strategy:
        payload["strategy"] = item.strategy
    return payload


def _send_email(item: Alert) -> None:
    mail_admins(f"[back office] {item.subject}", item.message or item.subject, fail_silently=False)


def _send_webhook(item: Alert) -> None:
    request = urllib.request.Request(
        settings.ALERT_WEBHOOK_URL,
        data=json.dumps(webhook_payload(item)).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S):
        pass


def _send_apprise(item: Alert, index: int) -> None:
    import apprise

    notifier = apprise.Apprise()
    if not notifier.add(settings.ALERT_URLS[index]):
        raise ValueError("the Apprise URL is not valid")
    notify_type = {
        AlertLevel.INFO: apprise.NotifyType.INFO,
        AlertLevel.WARNING: apprise.NotifyType.WARNING,
        AlertLevel.CRITICAL: apprise.NotifyType.FAILURE,
    }[item.level]  # type: ignore[index]
    if not notifier.notify(title=item.subject, body=item.message or item.subject, notify_type=notify_type):
        raise ConnectionError("the Apprise service did not accept the notification")


def _send(item: Alert, channel: str) -> None:
    if channel == "email":
        _send_email(item)
    elif channel == "webhook":
        if settings.ALERT_WEBHOOK_URL:
            _send_webhook(item)
    elif channel.startswith("apprise:"):
        index = int(channel.split(":", 1)[1])
        if index < len(settings.ALERT_URLS):
            _send_apprise(item, index)


def _retry_delay(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(300, 2 ** max(0, attempts - 1)))


def alert_deliver(*, alert_id: int) -> bool:
    """Try every channel still pending. True when the alert is fully delivered.

    The row is locked for the attempt (SKIP LOCKED: a second deliverer walks
    away), so the task and the beat job never send one channel twice at once.
    Raises AlertDeliveryFailed when a channel failed, for the task to retry.
    """
    with transaction.atomic():
        item = Alert.objects.select_for_update(skip_locked=True).filter(pk=alert_id).first()
        if item is None or item.delivered_at is not None:
            return item is not None
        failed: list[str] = []
        errors: list[str] = []
        for channel in item.pending_channels:
            try:
                _send(item, channel)
            except Exception as exc:  # noqa: BLE001  (one channel down must not stop the others)
                failed.append(channel)
                # The class name only: an exception's text can quote the URL and its token.
                errors.append(f"{channel.split(':')[0]}: {type(exc).__name__}")
        item.attempts += 1
        item.pending_channels = failed
        item.last_error = "; ".join(errors)
        if failed:
            item.next_attempt_at = timezone.now() + _retry_delay(item.attempts)
        else:
            item.delivered_at = timezone.now()
        item.save()
    if failed:
        logger.error("alert %s not delivered yet (attempt %s): %s", alert_id, item.attempts, item.last_error)
        raise AlertDeliveryFailed(item.last_error)
    return True


def alerts_deliver_pending(*, limit: int = 100) -> int:
    """The safety net: deliver the alerts that are due and undelivered (a lost task, a long outage)."""
    due = Alert.objects.filter(
        Q(delivered_at__isnull=True), next_attempt_at__lte=timezone.now(), attempts__lt=MAX_ATTEMPTS
    ).order_by("next_attempt_at").values_list("pk", flat=True)[:limit]
    delivered = 0
    for alert_id in list(due):
        try:
            delivered += alert_deliver(alert_id=alert_id)
        except AlertDeliveryFailed:
            continue
    return delivered
