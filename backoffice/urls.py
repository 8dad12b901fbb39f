"""URL composition: the admin, and the /v1 API assembled from each app's routes."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView

from backoffice import health, metrics

v1 = [
    path("health", health.HealthView.as_view(), name="health"),
    path("schema", SpectacularJSONAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="v1:schema"), name="docs"),
    path("", include("orders.urls")),
    path("", include("risk.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("v1/", include((v1, "v1"), namespace="v1")),
    path("metrics", metrics.MetricsView.as_view(), name="metrics"),
]

handler404 = "backoffice.views.not_found"
handler500 = "backoffice.views.server_error"
