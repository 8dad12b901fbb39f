"""The demo trader submits plausible orders through the real /v1 API."""

import io

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from orders.models import Order

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_submits_orders_through_the_api_that_the_pipeline_accepts(live_server, alice, market):
    token, _ = Token.objects.get_or_create(user=alice)
    out = io.StringIO()

    call_command("demo_trader", strategy="alpha", token=token.key, url=live_server.url, interval=0, count=4,
                 seed=7, stdout=out)

    assert "demo trader sent 4 orders" in out.getvalue()
    assert Order.objects.filter(strategy__slug="alpha").count() == 4
    assert set(Order.objects.values_list("status", flat=True)) <= {"submitted", "denied"}
    assert Order.objects.filter(status="submitted").exists()
