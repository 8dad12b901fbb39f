"""URL composition: the admin, and the /v1 API assembled from each app's routes."""

from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView

from backoffice import health, metrics, views

v1 = [
    path("health", health.HealthView.as_view(), name="health"),
    path("schema", SpectacularJSONAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="v1:schema"), name="docs"),
    path("", include("orders.urls")),
    path("", include("risk.urls")),
    # Last: whatever else is under /v1 (an unknown path, an id that is not a
    # UUID) is a 404 problem, also with DEBUG on (no page listing the routes).
    re_path(r"^.*$", views.UnknownResource.as_view(), name="unknown"),
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
    path("admin/", admin.site.urls),
    path("v1/", include((v1, "v1"), namespace="v1")),
    path("metrics", metrics.MetricsView.as_view(), name="metrics"),
]

handler404 = "backoffice.views.not_found"
handler500 = "backoffice.views.server_error"
