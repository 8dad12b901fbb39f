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
# An Authorization header's credentials, wherever a message quotes one: "Token 9944b0...", "Bearer ...".
# (A credential has a digit in it, so prose like "Token validation failed" stays readable.)
_AUTH_CREDENTIALS = re.compile(
    r"\b(?P<scheme>Token|Bearer|Basic)(?P<gap>\s+|=|%20)(?=[A-Za-z._~+/=-]*[0-9])[A-Za-z0-9._~+/=-]{8,}", re.I
)


@cache
def _secrets() -> tuple[str, ...]:
    from django.conf import settings

    return tuple(s for s in settings.CONFIG.secrets if len(s) >= 4)


def redact(text: str) -> str:
    for secret in _secrets():
        if secret in text:
            text = text.replace(secret, MASK)
    text = _AUTH_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['gap']}{MASK}", text)
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
    """Django's sensitive names (API, AUTH, TOKEN, KEY, SECRET, PASS, SIGNATURE, HTTP_COOKIE) and ours.

    The pattern is matched against setting names, request META keys (so
    ``HTTP_AUTHORIZATION`` is hidden by ``AUTH``) and cookie names (``sessionid``,
    ``csrftoken``): the debug 500 page and the ``ADMINS`` error e-mail both
    go through it. Ours add connection URLs, the parsed config and sessions.
    """

    hidden_settings = re.compile(
        SafeExceptionReporterFilter.hidden_settings.pattern + "|URL|CONFIG|LOCATION|BROKER|DSN|SESSION|CSRF",
        flags=re.I,
    )

    def get_post_parameters(self, request: Any) -> Any:
        """Form fields named like a secret (password, token, key) are hidden in every view, not only decorated ones."""
        parameters = super().get_post_parameters(request)
        if request is None or not any(self.hidden_settings.search(name) for name in parameters):
            return parameters
        cleansed = parameters.copy()
        for name in cleansed:
            if self.hidden_settings.search(name):
                cleansed[name] = self.cleansed_substitute
        return cleansed


class RedactingAdminEmailHandler(AdminEmailHandler):
    """The admin error e-mail, with every configured secret blanked from subject and body."""

    def send_mail(self, subject: str, message: str, *args: Any, **kwargs: Any) -> None:
        html = kwargs.get("html_message")
        if html:
            kwargs["html_message"] = redact(html)
        super().send_mail(redact(subject), redact(message), *args, **kwargs)
