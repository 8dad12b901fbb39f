"""Test-only URLconf: the project's routes plus views that fail, to see a 500 the way production shows it."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import path

from backoffice import urls as project_urls


def careless_failure(request: HttpRequest) -> HttpResponse:
    # The kind of exception that leaks: a client library echoing its credentials and connection string.
    raise RuntimeError(
        f"upstream refused key {settings.ALPACA_API_KEY} / {settings.ALPACA_SECRET_KEY} "
        f"while connected to {settings.CONFIG.database_url} (django key {settings.SECRET_KEY})"
    )


urlpatterns = [
    path("boom", careless_failure),
    path("v1/boom", careless_failure),
    *project_urls.urlpatterns,
]
handler404 = project_urls.handler404
handler500 = project_urls.handler500
