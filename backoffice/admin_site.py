"""The admin site risk officers work in: the dashboard as its index, the kill-switch banner on every page.

``backoffice.admin`` makes the default ``admin.site`` an instance of this
class (see there), so every app's registrations, django-celery-beat's
included, live on it.
"""

from __future__ import annotations

from functools import wraps
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse

from backoffice import dashboard

DASHBOARD_PERMISSION = "risk.view_riskstate"
# The order officers look for things in; apps not listed follow, alphabetically.
APP_ORDER = ("risk", "orders", "django_celery_beat", "brokers", "auth", "authtoken")
DASHBOARD_REFRESH_MS = 5000
BANNER_REFRESH_MS = 15000


class BackofficeAdminSite(admin.AdminSite):
    site_header = "Trading back office"
    site_title = "Back office"
    index_title = "Risk dashboard"
    index_template = "admin/backoffice/index.html"
    # "View site" in the header: there is no public site, so it leads back to the dashboard (never a 404).
    site_url = "/admin/"

    def admin_view(self, view: Any, cacheable: bool = False) -> Any:
        guarded = super().admin_view(view, cacheable)

        @wraps(view)
        def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            # A logged-in user who is not admin staff (an API client) posting
            # to an admin URL is refused outright: 403, not a bounce to the
            # login page that reads like "try again".
            if (
                request.method == "POST"
                and request.user.is_authenticated
                and not self.has_permission(request)
                and request.path != reverse("admin:logout", current_app=self.name)
            ):
                raise PermissionDenied("the admin is for back-office staff")
            return guarded(request, *args, **kwargs)

        return inner

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        user = request.user
        if user.is_active and user.is_staff and user.has_perm("risk.view_killswitch"):
            context["risk_alerts"] = dashboard.risk_alerts()
            context["risk_banner_url"] = reverse("admin:risk_banner", current_app=self.name)
            context["banner_refresh_ms"] = BANNER_REFRESH_MS
        return context

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        apps = super().get_app_list(request, app_label)
        rank = {label: i for i, label in enumerate(APP_ORDER)}
        return sorted(apps, key=lambda app: (rank.get(app["app_label"], len(rank)), app["name"]))

    def get_urls(self) -> list[Any]:
        return [
            path("dashboard.json", self.admin_view(self.dashboard_data), name="risk_dashboard_data"),
            path("banner.json", self.admin_view(self.banner_data), name="risk_banner"),
            *super().get_urls(),
        ]

    def _dashboard_context(self, request: HttpRequest) -> dict[str, Any]:
        board = dashboard.build()
        return {
            "board": board,
            "risk_alerts": board.alerts,
            "can_activate_global": request.user.has_perm("risk.activate_global_killswitch"),
            "can_change_limits": request.user.has_perm("risk.change_risklimits"),
        }

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        extra_context = dict(extra_context or {})
        if request.user.has_perm(DASHBOARD_PERMISSION):
            context = self._dashboard_context(request)
            extra_context.update(context)
            extra_context["panels"] = dashboard.render_panels(request, context)
            extra_context["dashboard_url"] = reverse("admin:risk_dashboard_data", current_app=self.name)
            extra_context["dashboard_refresh_ms"] = DASHBOARD_REFRESH_MS
        return super().index(request, extra_context)

    def dashboard_data(self, request: HttpRequest) -> JsonResponse:
        if not request.user.has_perm(DASHBOARD_PERMISSION):
            raise PermissionDenied
        context = self._dashboard_context(request)
        board = context["board"]
        body = {**board.as_json(), "panels": dashboard.render_panels(request, context)}
        return JsonResponse(body, encoder=DjangoJSONEncoder)

    def banner_data(self, request: HttpRequest) -> JsonResponse:
        if not request.user.has_perm("risk.view_killswitch"):
            raise PermissionDenied
        alerts = dashboard.risk_alerts()
        panels = dashboard.render_panels(request, {"risk_alerts": alerts}, names=("banner",))
        return JsonResponse({"global_kill_switch_active": alerts.global_switch is not None, "panels": panels})
