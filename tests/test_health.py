"""GET /v1/health: the status for anyone, the parts for authenticated callers, never a secret."""

import pytest

pytestmark = pytest.mark.django_db


def test_anonymous_callers_get_the_overall_status_only(client):
    response = client.get("/v1/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_authenticated_callers_see_database_cache_broker_and_job_freshness(alice_api, market):
    body = alice_api.get("/v1/health").json()

    assert body["database"]["ok"] is True
    assert body["cache"]["ok"] is True
    assert body["broker"]["name"] == "simulated" and body["broker"]["mode"] == "paper"
    assert body["broker"]["connected"] is True and body["broker"]["latency_ms"] >= 0
    assert set(body["celery"]) == {"last_sync", "last_snapshot", "last_reconcile"}
    # No job has run in a fresh test database: the deployment is degraded, and says so.
    assert body["status"] == "degraded" and body["celery"]["last_sync"]["stale"] is True


def test_fresh_jobs_make_the_status_ok(alice_api, market):
    from core.jobs import exclusive_job

    for name in ("order_sync", "risk_eval", "reconcile"):
        with exclusive_job(name, ttl_s=10):
            pass

    assert alice_api.get("/v1/health").json()["status"] == "ok"
