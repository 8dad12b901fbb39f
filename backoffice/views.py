"""Plain error pages: no stack, no settings, no secret, JSON under /v1."""

from django.http import HttpRequest, HttpResponse, JsonResponse

from core.problems import PROBLEM_BASE, PROBLEM_CONTENT_TYPE


def _problem(status: int, title: str, detail: str) -> JsonResponse:
    body = {"type": PROBLEM_BASE + title.lower().replace(" ", "-"), "title": title, "status": status, "detail": detail}
    return JsonResponse(body, status=status, content_type=PROBLEM_CONTENT_TYPE)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/v1/"):
        return _problem(404, "Not found", "No such resource.")
    return HttpResponse("<h1>Not found</h1>", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/v1/"):
        return _problem(500, "Server error", "An internal error occurred; it has been logged.")
    return HttpResponse("<h1>Server error</h1><p>The error has been logged.</p>", status=500)
