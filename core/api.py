"""Shared pieces of the /v1 API: strict JSON parsing, strict serializers, the problem schema."""

from __future__ import annotations

import copy
import json
import re
from typing import Any, TypeVar

from django.conf import settings
from django.db.models import Model, QuerySet
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, parsers, serializers, status

from core.request_guard import body_refusal, is_utf8


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


class LimitedJSONParser(parsers.JSONParser):
    """JSON only, UTF-8 only, bounded in size, and no NaN/Infinity literals (which json.loads accepts).

    The charset is decided from the header before a byte is decoded (the
    site-wide guard refuses others already; this holds when the parser is
    reached some other way), the bound applies to what is read from the
    stream, and the bytes are decoded as UTF-8 and nothing else.
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        refusal = body_refusal(media_type or "", "")
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        if refusal is None and not is_utf8(encoding):
            refusal = f"charset={str(encoding)[:40]!r} is not accepted: request bodies are UTF-8."
        if refusal is not None:
            raise exceptions.UnsupportedMediaType(media_type or "", detail=refusal)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge()
        try:
            text = raw.decode("utf-8")

            def refuse(constant: str) -> None:
                raise ValueError(f"{constant} is not valid JSON")

            return json.loads(text, parse_constant=refuse)
        except (ValueError, RecursionError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise exceptions.ParseError(f"The body is not valid JSON: {reason}") from None


DECIMAL_STRING = re.compile(r"^-?\d+(?:\.\d+)?$")


def _json_type_error(field: serializers.Field, value: Any) -> str | None:
    """The JSON type the schema documents, enforced: DRF alone would coerce 5 into "5" and "true" into True."""
    if value is None:
        return None
    if isinstance(field, serializers.DecimalField):
        # Money and quantities travel as strings: a JSON number is a float on many clients.
        if not isinstance(value, str) or not DECIMAL_STRING.match(value):
            return "Must be a decimal number written as a string, e.g. \"10.5\"."
    elif isinstance(field, serializers.BooleanField):
        if not isinstance(value, bool):
            return "Must be true or false."
    elif isinstance(field, serializers.IntegerField):
        if isinstance(value, bool) or not isinstance(value, int):
            return "Must be an integer."
    elif isinstance(field, serializers.CharField | serializers.ChoiceField) and not isinstance(value, str):
        return "Must be a string."
    return None


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know (a typo like 'limit_prce') and values of the wrong JSON type."""

    def get_fields(self) -> dict[str, Any]:
        """The declared fields, each a shallow copy (DRF deep-copies them: every field's __init__ per request).

        A copy's binding (its name, parent and source, set by ``bind``) is its
        own; what it shares with the declared field (validators, choices, error
        messages) is set when the class is built and never changed afterwards.
        A nested serializer is deep-copied, as DRF does. Order entry builds one
        serializer per request; this was a twentieth of its CPU (issue 19).
        A ModelSerializer builds its fields from the model, as DRF does.
        """
        if isinstance(self, serializers.ModelSerializer):
            return super().get_fields()
        return {
            name: copy.deepcopy(field) if isinstance(field, serializers.BaseSerializer) else copy.copy(field)
            for name, field in self._declared_fields.items()
        }

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            errors = {name: ["Unknown field."] for name in sorted(set(data) - set(self.fields))}
            if not getattr(self, "query_string", False):
                for name, field in self.fields.items():
                    if name in data:
                        problem = _json_type_error(field, data[name])
                        if problem:
                            errors[name] = [problem]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class ViolationSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    limit = serializers.CharField(allow_null=True)
    actual = serializers.CharField(allow_null=True)


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details."""

    type = serializers.URLField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    errors = serializers.DictField(required=False)
    violations = ViolationSerializer(many=True, required=False)
    order_id = serializers.UUIDField(required=False)


PROBLEM = "application/problem+json"


def problem(description: str) -> OpenApiResponse:
    """An OpenAPI response documented as problem details (key it as (status, PROBLEM))."""
    return OpenApiResponse(ProblemSerializer, description=description)


# Every authenticated /v1 operation can answer these.
COMMON_ERRORS = {
    (401, PROBLEM): problem("Not authenticated"),
    (403, PROBLEM): problem("Not allowed"),
    (429, PROBLEM): problem("Over the client's request ceiling: retry after Retry-After seconds"),
}
# Every operation that takes a JSON body can answer these too.
BODY_ERRORS = {(413, PROBLEM): problem("Body too large"), (415, PROBLEM): problem("Not JSON")}


M = TypeVar("M", bound=Model)


def filtered(queryset: QuerySet[M], filters: dict[str, Any], lookups: dict[str, str]) -> QuerySet[M]:
    """``queryset`` narrowed by each validated list filter present, through its ORM lookup."""
    return queryset.filter(**{lookup: filters[name] for name, lookup in lookups.items() if name in filters})
