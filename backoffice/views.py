"""Plain error pages: no stack, no settings, no secret, JSON under /v1."""

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.problems import PROBLEM_BASE, PROBLEM_CONTENT_TYPE


def problem_json(status: int, title: str, detail: str) -> JsonResponse:
    """A problem answer outside DRF (Django's error handlers)."""
    body = {"type": PROBLEM_BASE + title.lower().replace(" ", "-"), "title": title, "status": status, "detail": detail}
    return JsonResponse(body, status=status, content_type=PROBLEM_CONTENT_TYPE)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/v1/"):
        return problem_json(404, "Not found", "No such resource.")
    return HttpResponse("<h1>Not found</h1>", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/v1/"):
        return problem_json(500, "Server error", "An internal error occurred; it has been logged.")
    return HttpResponse("<h1>Server error</h1><p>The error has been logged.</p>", status=500)


@extend_schema(exclude=True)
class UnknownResource(APIView):
    """Every /v1 path no route matches: 404 problem+json for any method, throttled like the rest."""

    permission_classes = [AllowAny]

    def http_method_not_allowed(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise NotFound("No such resource.")

    options = http_method_not_allowed
