"""Refuse request bodies that would be decoded with anything but UTF-8, before any byte is read.

Python's codec machinery accepts ``bz2``, ``zlib``, ``base64`` and ``rot13``
as "charsets": a 363-byte body labelled ``charset=bz2`` once decoded to
400 MB. Django decodes form bodies with the charset the client names (and
fails with a 500 on a codec that is not a text encoding), and so would any
parser that trusts it. So the charset is decided here, for the whole site,
from the header alone: UTF-8 and its aliases, or 415. A ``Content-Encoding``
other than identity is refused the same way: nothing here decompresses a
request body.
"""

from __future__ import annotations

import encodings.aliases
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.http import parse_header_parameters

# "utf-8", "UTF8", "utf_8", "u8", "utf", ... compared after normalising case and separators.
UTF8_NAMES = frozenset(
    {"utf_8"} | {alias for alias, codec in encodings.aliases.aliases.items() if codec == "utf_8"}
)


def is_utf8(charset: str) -> bool:
    return charset.strip().strip('"').lower().replace("-", "_") in UTF8_NAMES


def body_refusal(content_type: str, content_encoding: str) -> str | None:
    """Why a body with these headers is refused (415), or None: from the headers alone."""
    if content_encoding.strip().lower() not in ("", "identity"):
        return f"Content-Encoding {content_encoding.strip()[:40]!r} is not accepted: send the body uncompressed."
    if not content_type:
        return None
    try:
        _, params = parse_header_parameters(content_type)
    except ValueError:
        return "The Content-Type header cannot be parsed."
    charset = params.get("charset")
    if charset is not None and not is_utf8(charset):
        return f"charset={charset[:40]!r} is not accepted: request bodies are UTF-8."
    return None


class RequestBodyGuard:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refusal = body_refusal(request.META.get("CONTENT_TYPE", ""), request.META.get("HTTP_CONTENT_ENCODING", ""))
        if refusal is None:
            return self.get_response(request)
        if request.path.startswith("/v1/"):
            # Imported here: the DRF parser imports this module, and problems imports DRF's views.
            from core.problems import PROBLEM_BASE, PROBLEM_CONTENT_TYPE

            body = {"type": PROBLEM_BASE + "unsupported-media-type", "title": "Unsupported media type",
                    "status": 415, "detail": refusal}
            return JsonResponse(body, status=415, content_type=PROBLEM_CONTENT_TYPE)
        return HttpResponse(refusal, status=415, content_type="text/plain; charset=utf-8")
