"""GET /metrics: Prometheus text, django-prometheus's request metrics plus the back office's gauges."""

from __future__ import annotations

from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orders.models import ReconciliationBreak, ReconciliationRun
from risk.models import Strategy
from risk.services import killswitch_activate
from tests.conftest import order_body, token_client

pytestmark = pytest.mark.django_db


def _samples(response) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_anonymous_gets_401_problem_and_no_metrics(client):
    response = client.get("/metrics")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert b"backoffice_" not in response.content


def test_a_scraper_with_a_token_reads_the_gauges_an_operator_alerts_on(alice, alice_api, officer, market):
    alice_api.post("/v1/orders", order_body(client_order_id="ok", type="limit", limit_price="97"), format="json")
    alice_api.post("/v1/orders", order_body(client_order_id="big", qty="100000"), format="json")  # denied
    killswitch_activate(acting_user=None, strategy=Strategy.objects.get(slug="alpha"), reason="test", job="test")
    run = ReconciliationRun.objects.create(breaks_found=1)
    ReconciliationBreak.objects.create(run=run, symbol="AAPL", broker_qty=Decimal("1"), ledger_qty=Decimal("0"))

    samples = _samples(token_client(officer).get("/metrics", HTTP_ACCEPT="text/plain;version=0.0.4;q=0.3,*/*;q=0.2"))

    assert samples[("backoffice_kill_switch_active", (("scope", "strategy"), ("strategy", "alpha")))] == 1
    assert samples[("backoffice_kill_switch_active", (("scope", "global"), ("strategy", "")))] == 0
    assert samples[("backoffice_circuit_breaker_state", (("state", "closed"),))] == 1
    assert samples[("backoffice_circuit_breaker_state", (("state", "tripped"),))] == 0
    assert samples[("backoffice_reconciliation_open_breaks", ())] == 1
    assert samples[("backoffice_job_stale", (("job", "order_sync"),))] == 1  # never ran in this test
    # Its working order was cancelled by the strategy's kill switch: pending_cancel or cancelled by now.
    assert samples[("backoffice_orders_today", (("status", "denied"),))] == 1
    assert sum(v for (name, labels), v in samples.items() if name == "backoffice_orders_today") == 2
    assert samples[("backoffice_denials_today", (("code", "max_notional"),))] == 1
    assert any(name.startswith("django_http_requests_total") for name, _ in samples)


def test_job_ages_are_reported_once_a_job_has_succeeded(officer, db):
    from core.jobs import exclusive_job

    with exclusive_job("order_sync", ttl_s=60):
        pass

    samples = _samples(token_client(officer).get("/metrics"))

    assert samples[("backoffice_job_stale", (("job", "order_sync"),))] == 0
    assert samples[("backoffice_job_last_success_age_seconds", (("job", "order_sync"),))] >= 0
