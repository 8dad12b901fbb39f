"""CRITICAL alerts: a log line, an e-mail to ADMINS, and an optional webhook.

Alerts are sent after the state change has committed and never fail it: a
mail server or webhook that is down is logged, the kill switch stays active.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request

from django.conf import settings
from django.core.mail import mail_admins

logger = logging.getLogger("risk.alerts")


def _post_webhook(url: str, payload: dict[str, str]) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5):
            pass
    except Exception as exc:  # noqa: BLE001  (the alert must not take anything down with it)
        logger.error("alert webhook failed: %s", type(exc).__name__)


def alert(subject: str, message: str, *, level: int = logging.CRITICAL) -> None:
    logger.log(level, "%s: %s", subject, message)
    try:
        mail_admins(f"[back office] {subject}", message, fail_silently=True)
    except Exception as exc:  # noqa: BLE001  (a mail backend failure must not stop the other channels)
        logger.error("alert e-mail failed: %s", type(exc).__name__)
    if settings.ALERT_WEBHOOK_URL:
        payload = {"subject": subject, "message": message, "level": logging.getLevelName(level)}
        threading.Thread(target=_post_webhook, args=(settings.ALERT_WEBHOOK_URL, payload), daemon=True).start()
