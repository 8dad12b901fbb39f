"""Shared pieces of the /v1 API: strict JSON parsing, strict serializers, the problem schema."""

from __future__ import annotations

import codecs
import json
import re
from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, parsers, serializers, status


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


class LimitedJSONParser(parsers.JSONParser):
    """JSON only, bounded in size, and no NaN/Infinity literals (which json.loads accepts)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge()
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.decode(raw, encoding)

            def refuse(constant: str) -> None:
                raise ValueError(f"{constant} is not valid JSON")

            return json.loads(text, parse_constant=refuse)
        except ValueError as exc:
            raise exceptions.ParseError(f"The body is not valid JSON: {exc}") from None


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
COMMON_ERRORS = {(401, PROBLEM): problem("Not authenticated"), (403, PROBLEM): problem("Not allowed")}
# Every operation that takes a JSON body can answer these too.
BODY_ERRORS = {(413, PROBLEM): problem("Body too large"), (415, PROBLEM): problem("Not JSON")}
