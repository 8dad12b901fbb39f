"""The beat schedule's admin, with the risk jobs guarded like the other controls.

django-celery-beat's own PeriodicTask admin lets anyone with the change
permission untick "Enabled" on the equity job and silently stop the circuit
breaker and the drawdown kill switch. Here a change to a risk job's schedule
(enabled, interval, crontab ...) needs a reason and goes through
``backoffice.jobs.risk_job_update`` (risk event, alert); the list actions that
would flip a risk job without a reason leave it alone, and a risk job cannot
be deleted (untick "Enabled", with a reason, instead).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django_celery_beat.admin import PeriodicTaskAdmin, PeriodicTaskForm
from django_celery_beat.models import PeriodicTask

from backoffice.jobs import JOB_BY_TASK, SCHEDULE_FIELDS, is_risk_job, risk_job_update

REASON_REQUIRED = "A reason is required to disable or reschedule a risk job: it is written to the audit trail."


class RiskJobForm(PeriodicTaskForm):
    reason = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Required when you change whether or when a risk job (sync, equity and circuit breaker, "
        "reconciliation) runs. Written to the audit trail with your name.",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        guarded = self.instance.pk is not None and (
            self.instance.task in JOB_BY_TASK or data.get("task") in JOB_BY_TASK
        )
        changed = any(name in self.changed_data for name in (*SCHEDULE_FIELDS, "regtask"))
        if guarded and changed and not (data.get("reason") or "").strip():
            self.add_error("reason", REASON_REQUIRED)
        return data


admin.site.unregister(PeriodicTask)


@admin.register(PeriodicTask)
class GuardedPeriodicTaskAdmin(PeriodicTaskAdmin):
    form = RiskJobForm
    fieldsets = (
        *PeriodicTaskAdmin.fieldsets[:1],
        ("Why (risk jobs)", {"fields": ("reason",), "classes": ("extrapretty", "wide")}),
        *PeriodicTaskAdmin.fieldsets[1:],
    )
    list_display = ("name", "task", "enabled", "interval", "last_run_at")

    def save_model(self, request: HttpRequest, obj: PeriodicTask, form: Any, change: bool) -> None:
        if change and (is_risk_job(obj) or PeriodicTask.objects.filter(pk=obj.pk, task__in=list(JOB_BY_TASK))
                       .exists()):
            risk_job_update(acting_user=request.user, periodic_task=obj, reason=form.cleaned_data.get("reason", ""))
            return
        super().save_model(request, obj, form, change)

    def has_delete_permission(self, request: HttpRequest, obj: PeriodicTask | None = None) -> bool:
        if obj is not None and is_risk_job(obj):
            return False
        return super().has_delete_permission(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        kept = queryset.filter(task__in=list(JOB_BY_TASK))
        if kept.exists():
            self.message_user(request, "Risk jobs are not deleted: untick Enabled on the job's page, with a reason.",
                              messages.WARNING)
        super().delete_queryset(request, queryset.exclude(task__in=list(JOB_BY_TASK)))

    def _leave_risk_jobs(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> QuerySet[PeriodicTask]:
        names = list(queryset.filter(task__in=list(JOB_BY_TASK)).values_list("name", flat=True))
        if names:
            self.message_user(
                request,
                f"Left unchanged: {', '.join(names)}. A risk job is disabled or enabled on its own page, with a "
                "reason.",
                messages.WARNING,
            )
        return queryset.exclude(task__in=list(JOB_BY_TASK))

    @admin.action(description="Enable selected tasks (not risk jobs)")
    def enable_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        super().enable_tasks(request, self._leave_risk_jobs(request, queryset))

    @admin.action(description="Disable selected tasks (not risk jobs)")
    def disable_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        super().disable_tasks(request, self._leave_risk_jobs(request, queryset))

    @admin.action(description="Toggle activity of selected tasks (not risk jobs)")
    def toggle_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        super().toggle_tasks(request, self._leave_risk_jobs(request, queryset))
