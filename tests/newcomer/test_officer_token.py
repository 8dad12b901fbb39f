"""The README's and ADR 9's other way for an officer: a token from DRF's drf_create_token, audited the same."""

import io
import re

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from risk.models import RiskEvent

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_officer_token_from_drf_create_token_stops_all_trading_under_the_officers_name(officer, market):
    out = io.StringIO()
    call_command("drf_create_token", officer.username, stdout=out)
    token = re.search(r"Generated token (\w+) for user", out.getvalue())
    assert token, out.getvalue()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token[1]}")

    response = api.post("/v1/controls/kill-switch",
                        {"action": "activate", "scope": "global", "reason": "drill"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["global"]["activated_by"] == officer.username
    event = RiskEvent.objects.get(kind="kill_switch_activated")
    assert (event.actor, event.reason) == (officer, "drill")
