"""Who gets in and what they can do: officers do everything, auditors see everything, API clients stay out."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from risk import services
from risk.models import RiskEvent
from tests.admin.browser import PASSWORD
from tests.admin.conftest import logged_in
from tests.conftest import token_client

pytestmark = pytest.mark.django_db

# Every list an officer and an auditor must be able to read.
LISTS = [
    "/admin/risk/risklimits/1/change/", "/admin/risk/strategy/", "/admin/risk/killswitch/",
    "/admin/risk/riskstate/1/change/", "/admin/risk/riskevent/", "/admin/risk/equitysnapshot/", "/admin/core/jobrun/",
    "/admin/orders/order/", "/admin/orders/position/", "/admin/orders/fill/", "/admin/orders/reconciliationrun/",
    "/admin/orders/reconciliationbreak/", "/admin/django_celery_beat/periodictask/",
    "/admin/django_celery_beat/intervalschedule/", "/admin/django_celery_beat/crontabschedule/",
]


def test_an_api_client_cannot_log_in_to_the_admin(alice):
    alice.set_password(PASSWORD)
    alice.save()
    client = Client()

    response = client.post("/admin/login/?next=/admin/", {"username": "alice", "password": PASSWORD})

    assert response.status_code == 200  # the login form again, with its error
    assert "Please enter the correct username and password for a staff account" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302


def test_an_api_token_does_not_open_the_admin(alice):
    response = token_client(alice).get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_an_api_client_with_a_session_is_still_refused(alice_client):
    assert alice_client.get("/admin/").status_code == 302  # to the login page
    assert alice_client.post("/admin/risk/risklimits/1/change/", {"reason": "x"}).status_code == 403


@pytest.mark.parametrize("url", LISTS)
def test_an_officer_and_an_auditor_see_every_page(url, officer_client, auditor_client):
    assert officer_client.get(url).status_code == 200
    assert auditor_client.get(url).status_code == 200


def test_an_auditor_cannot_change_a_periodic_task(auditor_client):
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    task = PeriodicTask.objects.create(
        name="t", task="risk.tasks.evaluate_risk",
        interval=IntervalSchedule.objects.create(every=15, period=IntervalSchedule.SECONDS),
    )
    response = auditor_client.post(f"/admin/django_celery_beat/periodictask/{task.pk}/change/", {"enabled": ""})

    assert response.status_code == 403
    task.refresh_from_db()
    assert task.enabled


def test_an_auditor_sees_no_button_that_changes_anything(officer, auditor_client, alpha):
    services.killswitch_activate(acting_user=officer, reason="drill")

    pages = "".join(auditor_client.get(url).content.decode() for url in [
        "/admin/", f"/admin/risk/strategy/{alpha.pk}/change/", "/admin/risk/riskstate/1/change/",
        "/admin/risk/killswitch/", "/admin/risk/risklimits/1/change/",
    ])

    controls = ["Activate kill switch", "Activate global kill switch", "Reset kill switch", "Pause strategy",
                "Move to LIVE", 'value="Save"', "Add strategy"]
    for control in controls:
        assert control not in pages, control


# --- The audit trail is append-only ---------------------------------------------


@pytest.fixture
def root_client(db) -> Client:
    return logged_in(get_user_model().objects.create_superuser("root", "root@example.com", "x" * 14))


def test_risk_events_are_read_only_for_everyone_superusers_included(officer, root_client):
    services.killswitch_activate(acting_user=officer, reason="drill")
    event = RiskEvent.objects.get()

    assert root_client.get("/admin/risk/riskevent/").status_code == 200
    assert root_client.get("/admin/risk/riskevent/add/").status_code == 403
    assert root_client.post(f"/admin/risk/riskevent/{event.pk}/change/", {"reason": "edited"}).status_code == 403
    assert root_client.post(f"/admin/risk/riskevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    event.refresh_from_db()
    assert event.reason == "drill"


def test_the_audit_trail_lists_who_when_old_new_and_why(officer, officer_client):
    services.limit_update(acting_user=officer, changes={"max_notional": "20000"}, reason="smaller tickets")

    page = officer_client.get("/admin/risk/riskevent/?kind__exact=limit_updated").content.decode()

    assert "olivia" in page and "smaller tickets" in page
    assert "Max notional per order ($)</span> $25,000.00 → <strong>$20,000.00</strong>" in page
