"""Property: whatever bytes arrive, the JSON parser and the cursor decoder answer 4xx or a result, never a 500.

Hypothesis drives the public face (HTTP, the project's real middleware,
parser and views) with arbitrary bytes as the body, arbitrary charsets and
media types in the header, and arbitrary bytes (base64'd, as a cursor is) in
the cursor. Nothing it sends may be stored. The per-client ceiling is
lifted for the run: this is one client sending hundreds of requests.
"""

from __future__ import annotations

import base64
import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import APIException

from core.api import LimitedJSONParser
from orders.models import Order
from tests.conftest import NO_CEILING, set_throttle_rates

pytestmark = pytest.mark.django_db

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples every run: a CI failure reproduces
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CHARSETS = st.one_of(
    st.none(),
    st.sampled_from(["utf-8", "UTF8", "bz2", "zlib", "base64", "rot13", "utf-16", "latin-1", "idna", "punycode",
                     "unicode_escape", "raw_unicode_escape", "utf-7", "hex", "uu", "", '"'], ),
    st.text(alphabet=st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=20),
)
MEDIA_TYPES = st.sampled_from(["application/json", "application/problem+json", "text/plain", "application/json;",
                               "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
BODIES = st.one_of(st.binary(max_size=2048), JSON_VALUES.map(lambda value: json.dumps(value).encode()))


@pytest.fixture
def no_ceiling(settings):
    set_throttle_rates(settings, **NO_CEILING)


def _content_type(media_type: str, charset: str | None) -> str:
    return media_type if charset is None else f"{media_type}; charset={charset}"


@PROPERTY
@given(body=BODIES, media_type=MEDIA_TYPES, charset=CHARSETS)
def test_no_body_and_no_content_type_reaches_a_500_or_stores_anything(
    no_ceiling, alice_api, market, body, media_type, charset
):
    alice_api.raise_request_exception = False

    response = alice_api.generic("POST", "/v1/orders", body, content_type=_content_type(media_type, charset))

    assert response.status_code < 500, (response.status_code, response.content[:300])
    assert response.status_code in {400, 413, 415}, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/problem+json"
    assert Order.objects.count() == 0


@PROPERTY
@given(raw=st.binary(max_size=200), text=st.text(max_size=80))
def test_no_cursor_reaches_a_500(no_ceiling, alice_api, raw, text):
    alice_api.raise_request_exception = False

    for value in (base64.b64encode(raw).decode(), base64.b64encode(("p=" + text).encode()).decode(), text):
        for path in ("/v1/orders", "/v1/fills"):
            response = alice_api.get(path, {"cursor": value})
            assert response.status_code in {200, 400}, (value, response.status_code, response.content[:300])
    for value in (base64.urlsafe_b64encode(raw).decode(), base64.urlsafe_b64encode(("e1:" + text).encode()).decode()):
        response = alice_api.get("/v1/events", {"after": value})
        assert response.status_code in {200, 400}, (value, response.status_code, response.content[:300])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(body=BODIES, charset=CHARSETS)
def test_the_parser_alone_returns_json_or_raises_a_4xx(body, charset):
    """The parser without the site-wide guard in front: it must hold by itself."""
    try:
        LimitedJSONParser().parse(io.BytesIO(body), _content_type("application/json", charset),
                                  {"encoding": charset} if charset else {})
    except APIException as exc:
        assert 400 <= exc.status_code < 500
