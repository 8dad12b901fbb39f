"""A log filter that blanks configured secrets out of every record.

Credentials reach log records in ways no reviewer sees coming: an exception
that echoes request headers, a repr of a client object, a URL with a password.
The filter rewrites the formatted message and the exception text, so whatever
a handler prints, the secret is not in it.
"""

from __future__ import annotations

import logging
import re
from functools import cache
from typing import Any

from django.utils.log import AdminEmailHandler
from django.views.debug import SafeExceptionReporterFilter

MASK = "[redacted]"
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]*):(?P<password>[^@\s]+)@", re.I)


@cache
def _secrets() -> tuple[str, ...]:
    from django.conf import settings

    return tuple(s for s in settings.CONFIG.secrets if len(s) >= 4)


def redact(text: str) -> str:
    for secret in _secrets():
        if secret in text:
            text = text.replace(secret, MASK)
    return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}:{MASK}@", text)


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001  (a broken format string must not hide the record)
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            import traceback

            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return True


class SecretsReporterFilter(SafeExceptionReporterFilter):
    """Django's filter hides settings named like KEY or PASS; connection URLs and the parsed config too."""

    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|URL|CONFIG|LOCATION|BROKER|DSN", flags=re.I
    )


class RedactingAdminEmailHandler(AdminEmailHandler):
    """The admin error e-mail, with every configured secret blanked from subject and body."""

    def send_mail(self, subject: str, message: str, *args: Any, **kwargs: Any) -> None:
        html = kwargs.get("html_message")
        if html:
            kwargs["html_message"] = redact(html)
        super().send_mail(redact(subject), redact(message), *args, **kwargs)
