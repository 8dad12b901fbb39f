"""With real-looking credentials configured, none of them appears in a log line, an API answer, a page or an e-mail.

The credentials are fakes with known values (tests/api/fakes.py); the broker
is the Alpaca adapter talking to the fake Alpaca with those keys, so the
adapter's own failures are logged the way production logs them. Log lines are
read from the project's configured console handler, after its redacting filter,
i.e. what an operator would actually see.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.core import mail
from rest_framework.test import APIClient

from backoffice import logging as redacting
from brokers import registry
from core.problems import PROBLEM_CONTENT_TYPE
from orders.models import Order
from tests.api.fakes import (
    FAKE_ALPACA_API_KEY,
    FAKE_ALPACA_SECRET_KEY,
    FAKE_CELERY_BROKER_URL,
    FAKE_DATABASE_URL,
    FAKE_SECRET_KEY,
    leaked_secrets,
)
from tests.conftest import order_body, token_client
from tests.fake_alpaca import FakeAlpacaServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_alpaca_with_fake_keys() -> Iterator[FakeAlpacaServer]:
    with FakeAlpacaServer(seed=7, api_key=FAKE_ALPACA_API_KEY, secret_key=FAKE_ALPACA_SECRET_KEY) as fake:
        for symbol, price in (("AAPL", "100.00"), ("MSFT", "400.00")):
            fake.set_price(symbol, price)
        fake.configure(market_open=True)
        yield fake


@pytest.fixture
def configured_secrets(settings, fake_alpaca_with_fake_keys) -> Iterator[FakeAlpacaServer]:
    """The settings a paper deployment with real credentials has, with the fakes in place of the real ones."""
    assert settings.DEBUG is False
    fake = fake_alpaca_with_fake_keys
    settings.SECRET_KEY = FAKE_SECRET_KEY
    settings.CONFIG = dataclasses.replace(
        settings.CONFIG,
        secret_key=FAKE_SECRET_KEY,
        alpaca_api_key=FAKE_ALPACA_API_KEY,
        alpaca_secret_key=FAKE_ALPACA_SECRET_KEY,
        broker="alpaca",
        alpaca_base_url=fake.base_url,
        alpaca_data_url=fake.base_url,
        database_url=FAKE_DATABASE_URL,
        celery_broker_url=FAKE_CELERY_BROKER_URL,
    )
    settings.BROKER = "alpaca"
    settings.ALPACA_API_KEY, settings.ALPACA_SECRET_KEY = FAKE_ALPACA_API_KEY, FAKE_ALPACA_SECRET_KEY
    settings.ALPACA_BASE_URL = settings.ALPACA_DATA_URL = fake.base_url
    settings.ALPACA_TIMEOUT_S = 0.5
    settings.CELERY_BROKER_URL = FAKE_CELERY_BROKER_URL
    settings.ADMINS = [("Operations", "ops@example.com")]  # the mail_admins handler only writes when there are admins
    redacting._secrets.cache_clear()  # the filter reads the configured secrets once per process
    registry.reset()
    yield fake
    redacting._secrets.cache_clear()
    registry.reset()


@pytest.fixture
def console_log() -> Iterator[io.StringIO]:
    """What the project's configured log handlers print, after their filters and formatters."""
    handlers = {
        handler
        for logger in (logging.getLogger(), logging.getLogger("django.request"))
        for handler in logger.handlers
        if isinstance(handler, logging.StreamHandler)
        and any(isinstance(f, redacting.RedactSecretsFilter) for f in handler.filters)
    }
    assert handlers, "the console handler with the redacting filter is not configured"
    buffer = io.StringIO()
    previous = {handler: handler.setStream(buffer) for handler in handlers}
    yield buffer
    for handler, stream in previous.items():
        handler.setStream(stream)


def _everything_in(response: Any) -> str:
    headers = "\n".join(f"{k}: {v}" for k, v in response.items())
    return f"{response.status_code}\n{headers}\n{response.content.decode('utf-8', 'replace')}"


def _emails() -> str:
    parts = []
    for message in mail.outbox:
        parts += [message.subject, message.body, *(content for content, _ in getattr(message, "alternatives", []))]
    return "\n".join(parts)


def assert_nothing_leaked(responses: list[Any], console_log: io.StringIO) -> None:
    for response in responses:
        assert leaked_secrets(_everything_in(response)) == [], (response.status_code, response.content[:300])
    assert leaked_secrets(console_log.getvalue()) == [], "a log line carries a secret"
    assert leaked_secrets(_emails()) == [], "an e-mail to the admins carries a secret"


# --- API answers -----------------------------------------------------------------


def test_no_api_answer_carries_a_secret(
    configured_secrets, console_log, market, alice, bob, officer
) -> None:
    alice_api, officer_api, anonymous = token_client(alice), token_client(officer), APIClient()
    created = alice_api.post("/v1/orders", order_body(type="limit", limit_price="99"), format="json")
    assert created.status_code == 201, created.content  # the Alpaca adapter really talked to the fake
    order_id = created.json()["id"]

    responses = [
        created,
        alice_api.get("/v1/health"),
        anonymous.get("/v1/health"),
        alice_api.get("/v1/schema"),
        alice_api.get("/v1/schema?format=json"),
        alice_api.get("/v1/docs"),
        alice_api.get("/v1/orders"),
        alice_api.get(f"/v1/orders/{order_id}"),
        alice_api.get("/v1/positions"),
        alice_api.get("/v1/risk"),
        alice_api.get("/v1/controls/kill-switch"),
        alice_api.get("/v1/controls/mode/alpha"),
        alice_api.delete(f"/v1/orders/{order_id}"),
        officer_api.post("/v1/controls/mode-transition", {"strategy": "alpha", "target_mode": "LIVE", "reason": "x"},
                         format="json"),
        # errors, one of each kind
        alice_api.post("/v1/orders", order_body(qty="-1"), format="json"),
        alice_api.post("/v1/orders", order_body(qty="100000"), format="json"),
        alice_api.post("/v1/orders", order_body(symbol="NOPE"), format="json"),
        alice_api.post("/v1/orders", order_body(strategy="beta"), format="json"),
        alice_api.post("/v1/orders", order_body(strategy="ghost"), format="json"),
        alice_api.generic("POST", "/v1/orders", "{broken", content_type="application/json"),
        alice_api.generic("POST", "/v1/orders", "a=b", content_type="application/x-www-form-urlencoded"),
        alice_api.generic("POST", "/v1/orders", "x" * 70_000, content_type="application/json"),
        alice_api.put("/v1/orders", {}, format="json"),
        alice_api.get("/v1/orders", HTTP_ACCEPT="text/html"),
        anonymous.get("/v1/orders"),
        APIClient(HTTP_AUTHORIZATION="Token not-a-token").get("/v1/health"),
        alice_api.get("/v1/nowhere"),
    ]

    assert {r.status_code for r in responses} >= {200, 201, 202, 400, 401, 403, 404, 405, 406, 413, 415}
    assert_nothing_leaked(responses, console_log)


def test_broker_failures_are_logged_without_a_secret(
    configured_secrets, console_log, market, alice
) -> None:
    fake = configured_secrets
    api = token_client(alice)
    responses = []
    for index, fault in enumerate(("http_500", "http_429", "drop_connection", "lose_response", "http_504")):
        fake.set_fault(fault, method="POST", path="/v2/orders")
        responses.append(api.post("/v1/orders", order_body(client_order_id=f"fault-{index}"), format="json"))
    fake.set_fault("http_500", path="*", count=20)
    responses.append(api.get("/v1/health"))

    assert fake.faults_injected, "no fault reached the adapter"
    assert console_log.getvalue(), "the failures were not logged at all"
    assert_nothing_leaked(responses, console_log)


def test_rejected_credentials_are_logged_without_a_secret(
    settings, configured_secrets, console_log, market, alice
) -> None:
    """The broker refuses the keys (rotated, revoked): the adapter's complaint must not quote them."""
    api = token_client(alice)
    api.raise_request_exception = False  # whatever the answer, it is inspected, not raised
    with FakeAlpacaServer(seed=8, api_key="PKSOMEONEELSE00000000", secret_key="someone-else") as stranger:
        settings.ALPACA_BASE_URL = settings.ALPACA_DATA_URL = stranger.base_url
        registry.reset()
        responses = [api.post("/v1/orders", order_body(), format="json"), api.get("/v1/health")]
        assert stranger.requests, "the adapter never reached the broker"

    assert_nothing_leaked(responses, console_log)


# --- Admin pages ----------------------------------------------------------------------


def test_no_admin_page_carries_a_secret(
    configured_secrets, console_log, market, alice, officer
) -> None:
    token_client(alice).post("/v1/orders", order_body(type="limit", limit_price="99"), format="json")
    order = Order.objects.get()
    anonymous, browser = APIClient(), APIClient()
    browser.force_login(officer)

    responses = [
        anonymous.get("/admin/login/"),
        browser.get("/admin/"),
        browser.get("/admin/orders/order/"),
        browser.get(f"/admin/orders/order/{order.pk}/change/"),
        browser.get("/admin/risk/strategy/"),
        browser.get("/admin/risk/killswitch/"),
        browser.get("/admin/risk/riskstate/"),
        browser.get("/admin/django_celery_beat/periodictask/"),
    ]

    assert [r.status_code for r in responses[:1]] == [200]
    assert all(r.status_code in {200, 302} for r in responses), [r.status_code for r in responses]
    assert_nothing_leaked(responses, console_log)


# --- Error pages --------------------------------------------------------------------


def test_not_found_pages_carry_no_secret(configured_secrets, console_log, client) -> None:
    responses = [client.get("/nowhere"), client.get("/v1/nowhere"), client.get("/admin/nowhere/")]

    assert [r.status_code for r in responses][:2] == [404, 404]
    assert_nothing_leaked(responses, console_log)


@pytest.mark.parametrize("path", ["/boom", "/v1/boom"])
def test_a_server_error_shows_no_secret_in_the_page_the_log_or_the_admin_email(
    configured_secrets, console_log, client, settings, path
) -> None:
    """A view fails with an exception that quotes the credentials; DEBUG is off, as in production."""
    settings.ROOT_URLCONF = "tests.api.boom_urls"
    client.raise_request_exception = False

    response = client.get(path)

    assert response.status_code == 500
    if path.startswith("/v1/"):
        assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert "Traceback" not in response.content.decode()
    assert "Internal Server Error" in console_log.getvalue(), "the failure was not logged"
    assert len(mail.outbox) == 1, "the admins were not told"
    assert_nothing_leaked([response], console_log)
