"""A 500's report (the debug page, the ADMINS e-mail, the log) carries no credential of the request.

The request that fails carries what a real client sends: an API token in
Authorization, the admin's session and CSRF cookies, a password in a form.
The debug page is what `make run` shows (DEBUG on); the e-mail and the log
line are what production sends (DEBUG off).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from django.core import mail
from rest_framework.authtoken.models import Token

from backoffice import logging as redacting

pytestmark = pytest.mark.django_db

SESSION_ID = "s3ss10nabcdefghijklmnopqrstuvwxyz012345"
CSRF_TOKEN = "Csrf0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"
FORM_PASSWORD = "hunter2-correct-horse-battery"


@pytest.fixture
def failing_views(settings) -> None:
    settings.ROOT_URLCONF = "tests.api.boom_urls"
    settings.ADMINS = [("Operations", "ops@example.com")]


@pytest.fixture
def alice_token(alice) -> str:
    return Token.objects.get_or_create(user=alice)[0].key


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """What the project's console handler prints (after its redacting filter)."""
    handlers = [
        handler
        for handler in logging.getLogger("django.request").handlers
        if any(isinstance(f, redacting.RedactSecretsFilter) for f in handler.filters)
        and isinstance(handler, logging.StreamHandler)
    ]
    assert handlers
    buffer = io.StringIO()
    previous = [(handler, handler.setStream(buffer)) for handler in handlers]
    yield buffer
    for handler, stream in previous:
        handler.setStream(stream)


def _fail(client, path: str, token: str):
    client.raise_request_exception = False
    client.cookies["sessionid"] = SESSION_ID
    client.cookies["csrftoken"] = CSRF_TOKEN
    return client.post(
        path,
        {"username": "olivia", "password": FORM_PASSWORD, "api_token": token},
        HTTP_AUTHORIZATION=f"Token {token}",
        HTTP_X_API_KEY=token,
    )


def _credentials(token: str) -> list[str]:
    return [token, SESSION_ID, CSRF_TOKEN, FORM_PASSWORD]


@pytest.mark.parametrize("path", ["/boom", "/v1/boom"])
def test_the_debug_500_page_shows_no_token_cookie_or_password(settings, failing_views, client, alice_token, path):
    settings.DEBUG = True

    response = _fail(client, path, alice_token)

    page = response.content.decode()
    assert response.status_code == 500
    assert "HTTP_AUTHORIZATION" in page and "sessionid" in page  # the report is there, its values are not
    assert [c for c in _credentials(alice_token) if c in page] == []


@pytest.mark.parametrize("path", ["/boom", "/v1/boom"])
def test_the_admins_error_email_and_the_log_carry_no_token_cookie_or_password(
    settings, failing_views, client, alice_token, logged, path
):
    settings.DEBUG = False

    response = _fail(client, path, alice_token)

    assert response.status_code == 500
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    email = "\n".join([message.subject, message.body, *(c for c, _ in getattr(message, "alternatives", []))])
    assert "HTTP_AUTHORIZATION" in email  # the report lists the header, hiding its value
    assert [c for c in _credentials(alice_token) if c in email] == []
    assert "Internal Server Error" in logged.getvalue()
    assert [c for c in _credentials(alice_token) if c in logged.getvalue()] == []


def test_a_log_line_that_quotes_an_authorization_header_is_redacted(alice_token, logged):
    logging.getLogger("django.request").error("upstream said: Authorization: Token %s was refused", alice_token)

    assert "Token [redacted]" in logged.getvalue()
    assert alice_token not in logged.getvalue()
