"""RFC 9457 problem details for every /v1 error.

DRF's default answers ``{"detail": ...}``; API clients get one shape instead:
``type``, ``title``, ``status`` (equal to the HTTP status), ``detail``, and
``errors`` (field errors) or ``violations`` (risk denials).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.exceptions import BusinessRefusal

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "https://backoffice.invalid/problems/"

_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    429: "Too many requests",
}


def problem_response(
    status_code: int,
    *,
    slug: str,
    detail: str,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body = {
        "type": PROBLEM_BASE + slug,
        "title": title or _TITLES.get(status_code, "Error"),
        "status": status_code,
        "detail": detail,
        **extra,
    }
    response = Response(body, status=status_code, headers=headers, content_type=PROBLEM_CONTENT_TYPE)
    return response


def _flatten_detail(detail: Any) -> str:
    if isinstance(detail, list) and detail:
        return _flatten_detail(detail[0])
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {_flatten_detail(v)}" for k, v in detail.items())
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, BusinessRefusal):
        # Every service refusal, mapped once: the views do not catch them.
        return problem_response(
            exc.status_code, slug=exc.slug, title=exc.title, detail=exc.detail, headers=dict(exc.headers),
            **exc.problem_extra(),
        )
    if isinstance(exc, RequestDataTooBig):
        from core.api import PayloadTooLarge

        exc = PayloadTooLarge()
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        # A service's own words ("missing permission risk.reset_killswitch"), or DRF's default.
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = response.status_code
    headers = {k: v for k, v in response.headers.items() if k in {"WWW-Authenticate", "Retry-After", "Allow"}}
    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return problem_response(
            status.HTTP_400_BAD_REQUEST,
            slug="validation-error",
            title="Invalid request",
            detail="The request has invalid fields: " + _flatten_detail(errors),
            errors=errors,
            headers=headers,
        )
    detail = _flatten_detail(getattr(exc, "detail", str(exc)))
    slug = getattr(exc, "default_code", "error").replace("_", "-")
    return problem_response(code, slug=slug, detail=detail, headers=headers)
