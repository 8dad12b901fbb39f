"""A per-client request ceiling on /v1: 429 problem+json with Retry-After, nothing parsed or stored past it.

DRF's throttles on the shared cache (Redis here, as in production). The
ceilings are lowered for the test through the same settings the environment
sets (API_CLIENT_RATE_PER_SECOND / _PER_MINUTE); a per-minute window keeps
the test independent of how fast the machine answers.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache

from brokers.models import SimOrder
from orders.models import Order
from tests.conftest import order_body, set_throttle_rates

pytestmark = [pytest.mark.django_db, pytest.mark.redis]


@pytest.fixture
def ceiling(settings):
    def set_rates(*, per_second: int = 50, per_minute: int = 2000) -> None:
        set_throttle_rates(settings, client_burst=f"{per_second}/s", client_sustained=f"{per_minute}/min")

    return set_rates


def test_the_throttle_counts_on_the_shared_redis_cache(alice, alice_api):
    assert isinstance(caches["default"], RedisCache)

    alice_api.get("/v1/orders")

    assert len(cache.get(f"throttle_client_burst_{alice.pk}")) == 1
    assert len(cache.get(f"throttle_client_sustained_{alice.pk}")) == 1


def test_a_client_over_its_ceiling_gets_429_with_retry_after_and_its_burst_stores_nothing(
    ceiling, alice_api, bob_api, market
):
    ceiling(per_minute=5)

    answers = [
        alice_api.post("/v1/orders", order_body(client_order_id=f"burst-{n}"), format="json") for n in range(12)
    ]

    assert [a.status_code for a in answers] == [201] * 5 + [429] * 7
    refused = answers[-1]
    assert refused["Content-Type"] == "application/problem+json"
    assert refused.json()["status"] == 429 and refused.json()["detail"]
    assert int(refused["Retry-After"]) >= 1
    assert Order.objects.count() == 5  # the refused part of the burst stored nothing
    assert SimOrder.objects.count() == 5
    # Another client keeps getting answers, reads and writes alike.
    assert bob_api.get("/v1/orders").status_code == 200
    assert bob_api.post("/v1/orders", order_body(strategy="beta"), format="json").status_code == 201


def test_a_throttled_request_is_refused_before_its_body_is_parsed(ceiling, alice_api, market):
    ceiling(per_minute=1)
    assert alice_api.get("/v1/orders").status_code == 200

    # Not even valid JSON: a 400 would mean it was parsed; 429 means it never was.
    refused = alice_api.generic("POST", "/v1/orders", "{not json", content_type="application/json")

    assert refused.status_code == 429
    assert "Retry-After" in refused


def test_the_per_second_ceiling_applies_to_every_v1_path(ceiling, alice_api):
    ceiling(per_second=3)

    codes = [alice_api.get(path).status_code for path in ["/v1/orders", "/v1/risk", "/v1/positions",
                                                          "/v1/nowhere", "/v1/health"]]

    # Five requests well inside one second: the last two are over the burst ceiling.
    assert codes[:3] == [200, 200, 200]
    assert codes[3:] == [429, 429]


def test_anonymous_callers_are_counted_by_address(ceiling, client):
    ceiling(per_minute=2)

    first = [client.get("/v1/health", REMOTE_ADDR="10.0.0.1").status_code for _ in range(3)]
    other = client.get("/v1/health", REMOTE_ADDR="10.0.0.2").status_code

    assert first == [200, 200, 429]
    assert other == 200
