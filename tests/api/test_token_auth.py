"""API token authentication answers as DRF's does (core.authentication: the same lookup, prepared on PostgreSQL)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from orders.models import Order
from tests.conftest import order_body, token_client

pytestmark = pytest.mark.django_db


def _client(header: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    return client


def test_a_valid_token_acts_as_its_user(alice, market):
    answer = token_client(alice).post("/v1/orders", order_body(client_order_id="t-1"), format="json")

    assert answer.status_code == 201, answer.content
    order = Order.objects.get(client_order_id="t-1")
    assert order.submitted_by == alice
    assert token_client(alice).get("/v1/orders").json()["results"][0]["client_order_id"] == "t-1"


def test_an_unknown_token_is_401_and_nothing_is_stored(alice, market):
    answer = _client("Token " + "0" * 40).post("/v1/orders", order_body(client_order_id="t-1"), format="json")

    assert answer.status_code == 401
    assert answer["Content-Type"] == "application/problem+json"
    assert answer.json()["detail"] == "Invalid token."
    assert answer["WWW-Authenticate"] == "Token"
    assert not Order.objects.exists()


def test_the_token_of_a_deactivated_client_is_401(alice, market):
    client = token_client(alice)
    alice.is_active = False
    alice.save(update_fields=["is_active"])

    answer = client.post("/v1/orders", order_body(client_order_id="t-1"), format="json")

    assert answer.status_code == 401
    assert answer.json()["detail"] == "User inactive or deleted."
    assert not Order.objects.exists()


@pytest.mark.parametrize("header", ["Token", "Token a b", "Token \u00e9t\u00e9"])
def test_a_malformed_token_header_is_401(alice, header):
    answer = _client(header).get("/v1/orders")

    assert answer.status_code == 401
    assert answer.json()["detail"].startswith("Invalid token header.")
