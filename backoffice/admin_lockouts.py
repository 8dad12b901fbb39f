"""Admin login lockouts (django-axes), visible to officers, who can lift one.

django-axes counts failed admin logins per username and address
(settings.AXES_LOCKOUT_PARAMETERS); a row of "Access attempts" with as many
failures as the limit is a lockout. Officers see these rows and lift a
lockout with the "Lift the lockout" action (recorded in the admin's history
like any deletion); ``manage.py axes_reset_username NAME`` does the same
from a shell (docs/runbooks/throttles-and-lockouts.md).
"""

from __future__ import annotations

from typing import Any

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin, messages
from django.contrib.admin.models import DELETION, LogEntry
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

admin.site.unregister(AccessAttempt)


@admin.register(AccessAttempt)
class LockoutAdmin(AccessAttemptAdmin):
    actions = ["lift_lockout"]  # axes' own "clean up expired attempts" stays a job of the cool-off

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the failure count is evidence: it is lifted, never edited

    @admin.action(description="Lift the lockout (the user may try to log in again)", permissions=["delete"])
    def lift_lockout(self, request: HttpRequest, queryset: QuerySet[AccessAttempt]) -> None:
        with transaction.atomic():
            lifted = []
            for attempt in queryset.select_for_update():
                # Deleting the row is axes' own reset (the lockout is the row); the
                # admin history records who lifted whose lockout, in the same transaction.
                whose = f"{attempt.username} from {attempt.ip_address}"
                LogEntry.objects.log_actions(
                    request.user.pk, [attempt], DELETION, [{"deleted": {"name": "lockout", "object": whose}}],
                    single_object=True,
                )
                attempt.delete()
                lifted.append(whose)
        self.message_user(request, "Lockout lifted: " + ", ".join(lifted), messages.SUCCESS)
