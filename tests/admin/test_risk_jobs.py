"""The risk jobs are controls: disabling or rescheduling one asks for a reason, is audited and alerted,
and while one is disabled or stale every admin page says so and /v1/health is degraded."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from backoffice.jobs import risk_jobs_watch
from backoffice.schedule import setup_periodic_tasks
from core.models import JobRun
from risk.models import Alert, RiskEvent
from tests.conftest import token_client

pytestmark = pytest.mark.django_db
EQUITY_JOB = "equity and circuit breaker"


@pytest.fixture
def schedule(db) -> None:
    setup_periodic_tasks()
    now = timezone.now()
    for name in ("order_sync", "risk_eval", "reconcile"):  # every job ran a moment ago
        JobRun.objects.update_or_create(name=name, defaults={"last_succeeded_at": now})


def equity_task() -> PeriodicTask:
    return PeriodicTask.objects.get(name=EQUITY_JOB)


def change_form(task: PeriodicTask, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": task.name, "regtask": task.task, "task": task.task, "description": task.description,
        "interval": task.interval_id, "crontab": "", "solar": "", "clocked": "", "args": task.args,
        "kwargs": task.kwargs, "expire_seconds": task.expire_seconds or "", "queue": "", "exchange": "",
        "routing_key": "", "priority": "", "headers": task.headers, "start_time_0": "", "start_time_1": "",
        "expires_0": "", "expires_1": "", "reason": "",
    }
    if task.enabled:
        data["enabled"] = "on"
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def url(task: PeriodicTask) -> str:
    return f"/admin/django_celery_beat/periodictask/{task.pk}/change/"


def test_unticking_enabled_without_a_reason_is_refused_and_changes_nothing(schedule, officer_client):
    response = officer_client.post(url(equity_task()), change_form(equity_task(), enabled=None))

    assert response.status_code == 200
    assert "A reason is required to disable or reschedule a risk job" in response.content.decode()
    assert equity_task().enabled
    assert not RiskEvent.objects.filter(kind="job_disabled").exists()


def test_disabling_the_equity_job_with_a_reason_is_audited_alerted_bannered_and_degrades_health(
    schedule, officer, officer_client
):
    response = officer_client.post(
        url(equity_task()), change_form(equity_task(), enabled=None, reason="Broker maintenance tonight")
    )

    assert response.status_code == 302
    assert not equity_task().enabled
    event = RiskEvent.objects.get(kind="job_disabled")
    assert (event.actor, event.reason) == (officer, "Broker maintenance tonight")
    assert event.old == {"job": EQUITY_JOB, "enabled": True} and event.new == {"job": EQUITY_JOB, "enabled": False}
    alert = Alert.objects.get(key="job:risk_eval")
    assert alert.level == "critical" and "Broker maintenance tonight" in alert.message

    for page in ("/admin/", "/admin/orders/order/", "/admin/risk/riskevent/"):
        body = officer_client.get(page).content.decode()
        assert 'data-banner="risk-jobs"' in body and "Equity snapshot disabled in the schedule" in body, page

    health = token_client(officer).get("/v1/health").json()
    assert health["status"] == "degraded"
    assert health["celery"]["last_snapshot"]["disabled"] is True

    for _ in range(10):
        risk_jobs_watch(timezone.now())
    assert Alert.objects.filter(key="job:risk_eval").count() == 1  # the watch does not repeat it


def test_re_enabling_and_rescheduling_need_a_reason_too(schedule, officer_client):
    officer_client.post(url(equity_task()), change_form(equity_task(), enabled=None, reason="maintenance"))
    response = officer_client.post(url(equity_task()), change_form(equity_task(), enabled="on"))
    assert response.status_code == 200 and not equity_task().enabled

    officer_client.post(url(equity_task()), change_form(equity_task(), enabled="on", reason="maintenance over"))
    slower, _ = IntervalSchedule.objects.get_or_create(every=600, period=IntervalSchedule.SECONDS)
    officer_client.post(url(equity_task()), change_form(equity_task(), interval=slower.pk, reason="fewer calls"))

    assert equity_task().enabled and equity_task().interval_id == slower.pk
    kinds = list(RiskEvent.objects.order_by("at", "id").values_list("kind", "reason"))
    assert kinds == [("job_disabled", "maintenance"), ("job_enabled", "maintenance over"),
                     ("job_rescheduled", "fewer calls")]


def test_the_list_actions_and_delete_leave_risk_jobs_alone(schedule, officer_client):
    tasks = list(PeriodicTask.objects.values_list("pk", flat=True))
    response = officer_client.post(
        "/admin/django_celery_beat/periodictask/", {"action": "disable_tasks", "_selected_action": tasks}, follow=True
    )

    assert "Left unchanged" in response.content.decode()
    assert equity_task().enabled
    assert not PeriodicTask.objects.get(name="alert delivery").enabled  # not a risk job: the action applies
    assert officer_client.get(url(equity_task()).replace("change", "delete")).status_code == 403


def test_a_stale_job_alerts_once_shows_the_banner_and_alerts_again_when_it_runs(schedule, officer_client):
    JobRun.objects.filter(name="reconcile").update(last_succeeded_at=timezone.now() - dt.timedelta(hours=1))

    for _ in range(10):
        risk_jobs_watch(timezone.now())

    assert list(Alert.objects.values_list("key", "subject")) == [("job:reconcile", "Risk job stale: Reconciliation")]
    assert "Reconciliation stale: last success" in officer_client.get("/admin/").content.decode()

    JobRun.objects.filter(name="reconcile").update(last_succeeded_at=timezone.now())
    risk_jobs_watch(timezone.now())
    risk_jobs_watch(timezone.now())
    assert Alert.objects.filter(key="job:reconcile:recovered").count() == 1
    assert 'data-banner="risk-jobs"' not in officer_client.get("/admin/").content.decode()
