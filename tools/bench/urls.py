"""The product's URLs plus the baseline endpoint (bench only, never in backoffice.urls)."""

from django.urls import path

from backoffice.urls import handler404, handler500  # noqa: F401
from backoffice.urls import urlpatterns as product_urlpatterns
from tools.bench.views import BaselineInsert

urlpatterns = [
    path("bench/baseline-insert", BaselineInsert.as_view(), name="bench-baseline-insert"),
    *product_urlpatterns,
]
