"""Every /v1 operation, fuzzed from the project's own OpenAPI schema with schemathesis.

Run in-process against the real WSGI application, authenticated as an API
client (every operation) and as a risk officer (the controls), with a bounded
number of examples so the file stays well under a minute and a half. Each
test owns one question, so a failure says which promise broke:

- no answer is a server error;
- every answer is one the schema documents (status, content type, body, headers);
- no request the schema forbids is accepted;
- authentication is enforced and undocumented methods are refused.

What the test does to a generated case is limited to what a real client
would do and the fuzzer cannot: present a token, and aim identifiers that
are already valid at rows that exist (a granted strategy, a tradable symbol,
an order), so the happy paths are reached and not only the 404s.
"""

from __future__ import annotations

import json
import re
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import jsonschema
import pytest
import schemathesis
from drf_spectacular.renderers import OpenApiJsonRenderer
from drf_spectacular.settings import spectacular_settings
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis import checks as generic_checks
from schemathesis.specs.openapi import checks as openapi_checks
from werkzeug.test import Client

from backoffice.wsgi import application
from orders import services
from orders.models import Order, Position
from orders.services import positions_reconcile
from risk.models import RiskEvent, Strategy
from tests.conftest import NO_CEILING, order_body, set_throttle_rates, token_client

EXAMPLES_PER_OPERATION = 25
CONFIG = schemathesis.Config.from_dict(
    {
        # A fixed seed: a failure here is reproducible, and the run costs the same every time.
        "seed": 20261121,
        "generation": {"max-examples": EXAMPLES_PER_OPERATION, "database": "none"},
        # Valid input is legitimately refused with 400 when the pre-trade check denies it (SPEC §5),
        # so "positive data is accepted" is not a promise this API makes.
        "checks": {"positive_data_acceptance": {"enabled": False}},
    }
)


def served_openapi_document() -> dict[str, Any]:
    """The document GET /v1/schema serves, built by the same generator, without a request.

    Loading it over HTTP at import time would need a token, and the test
    database does not exist yet; test_the_fuzzed_schema_is_the_one_served proves the two are the same.
    """
    generator = spectacular_settings.DEFAULT_GENERATOR_CLASS()
    document = generator.get_schema(request=None, public=spectacular_settings.SERVE_PUBLIC)
    return json.loads(OpenApiJsonRenderer().render(document, renderer_context={}))


# Built at import, not through schemathesis.pytest.from_fixture(): with schemathesis 4.32.5 and pytest 9.2
# the lazy loader fails on every test (it sets Function._nodeid, which pytest 9.2 no longer has).
schema = schemathesis.openapi.from_dict(served_openapi_document(), config=CONFIG)
schema.app = application  # calls go to the WSGI application in-process, inside the test's transaction
controls = schema.include(path_regex=r"^/v1/controls/")

# Hypothesis runs many examples in one test, so the fixtures (the world, the
# open transaction) are shared by them: that is the point here, orders
# accumulate like in a real session. Requests to a Django app are not fast
# enough for Hypothesis' default budget.
FUZZ_SETTINGS = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

SERVER_ERRORS = [generic_checks.not_a_server_error]
DOCUMENTED_ANSWERS = [
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.response_headers_conformance,
]
FORBIDDEN_INPUT = [openapi_checks.negative_data_rejection]
AUTH_AND_METHODS = [
    openapi_checks.ignored_auth,
    openapi_checks.unsupported_method,
    openapi_checks.allow_header_conformance,
]


# --- The world the fuzzer is aimed at ------------------------------------------

SLUG = re.compile(r"[-a-zA-Z0-9_]{1,64}")
SYMBOL = re.compile(r"[A-Z][A-Z0-9.]{0,15}")
TRADABLE = ["AAPL", "MSFT", "SPY", "SIRI"]


@pytest.fixture
def fuzz_world(wsgi_app_in_test_transaction, market, alice, bob, officer, settings) -> dict[str, list[str]]:
    """alpha (alice's) and beta (bob's), each with a working and a denied order; throttles out of the way.

    (The per-client request ceiling too: the fuzzer is one client sending far
    more than 50 requests a second; tests/api/test_throttling.py proves the ceiling.)
    """
    Strategy.objects.update(max_orders_per_second=1_000_000, max_orders_per_minute=1_000_000)
    set_throttle_rates(settings, **NO_CEILING)
    for slug, client in (("alpha", alice), ("beta", bob)):
        strategy = Strategy.objects.get(slug=slug)
        for qty in (Decimal("1"), Decimal("100000")):
            services.order_submit(
                acting_user=client,
                request=services.OrderRequest(strategy=strategy, symbol="AAPL", side="buy", qty=qty, type="market"),
            )
    return {
        "strategies": ["alpha", "alpha", "beta"],
        "orders": [str(pk) for pk in Order.objects.values_list("pk", flat=True)],
    }


def _pick(generated: str, existing: list[str]) -> str:
    """A stable choice (crc32, not hash(): that is salted per process) between rows that exist and the value itself."""
    choices = [*existing, generated]
    return choices[zlib.crc32(generated.encode()) % len(choices)]


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def aim_at_the_world(case: schemathesis.Case, world: dict[str, list[str]]) -> None:
    """Swap values that are already valid for valid values that exist; invalid values are left alone.

    Schemathesis re-validates a case after it is edited, so whether the case
    counts as schema-valid is still right after this.
    """
    body = case.body
    if isinstance(body, dict):
        if isinstance(body.get("strategy"), str) and SLUG.fullmatch(body["strategy"]):
            body["strategy"] = _pick(body["strategy"], world["strategies"])
        if isinstance(body.get("symbol"), str) and SYMBOL.fullmatch(body["symbol"]):
            body["symbol"] = _pick(body["symbol"], TRADABLE)
    path = case.path_parameters or {}
    if _is_uuid(path.get("id")):
        path["id"] = _pick(path["id"], world["orders"])
    if isinstance(path.get("slug"), str) and SLUG.fullmatch(path["slug"]):
        path["slug"] = _pick(path["slug"], world["strategies"])
    query = case.query or {}
    if isinstance(query.get("strategy"), str) and SLUG.fullmatch(query["strategy"]):
        query["strategy"] = _pick(query["strategy"], world["strategies"])


def call_as(user: Any, case: schemathesis.Case, world: dict[str, list[str]], checks: list[Callable]) -> None:
    token, _ = Token.objects.get_or_create(user=user)
    aim_at_the_world(case, world)
    case.call_and_validate(headers={"Authorization": f"Token {token.key}"}, checks=checks)


# --- As an API client: every operation ------------------------------------------


@pytest.mark.django_db
@schema.parametrize()
@FUZZ_SETTINGS
def test_no_operation_answers_an_api_client_with_a_server_error(case, fuzz_world, alice) -> None:
    call_as(alice, case, fuzz_world, SERVER_ERRORS)


@pytest.mark.django_db
@schema.parametrize()
@FUZZ_SETTINGS
def test_every_answer_to_an_api_client_is_documented_by_the_schema(case, fuzz_world, alice) -> None:
    call_as(alice, case, fuzz_world, DOCUMENTED_ANSWERS)


@pytest.mark.django_db
@schema.parametrize()
@FUZZ_SETTINGS
def test_no_request_the_schema_forbids_is_accepted_from_an_api_client(case, fuzz_world, alice) -> None:
    call_as(alice, case, fuzz_world, FORBIDDEN_INPUT)


@pytest.mark.django_db
@schema.parametrize()
@FUZZ_SETTINGS
def test_authentication_is_enforced_and_undocumented_methods_are_refused(
    case, fuzz_world, alice
) -> None:
    call_as(alice, case, fuzz_world, AUTH_AND_METHODS)


# --- As a risk officer: the controls ---------------------------------------------


@pytest.mark.django_db
@controls.parametrize()
@FUZZ_SETTINGS
def test_the_controls_answer_a_risk_officer_within_the_schema(case, fuzz_world, officer) -> None:
    call_as(officer, case, fuzz_world, SERVER_ERRORS + DOCUMENTED_ANSWERS + FORBIDDEN_INPUT)


# --- The document itself ----------------------------------------------------------


@pytest.mark.django_db
def test_the_fuzzed_schema_is_the_one_served_at_v1_schema(alice) -> None:
    response = token_client(alice).get("/v1/schema?format=json")

    assert response.status_code == 200
    assert response.json() == served_openapi_document()


def _documented(method: str, path: str) -> dict[str, Any]:
    return schema.raw_schema["paths"][path][method.lower()]["responses"]


JSON = "application/json"
BODY_OPERATIONS = [
    ("POST", "/v1/orders", order_body()),
    ("POST", "/v1/controls/kill-switch", {"action": "activate", "scope": "global", "reason": "x"}),
    ("POST", "/v1/controls/mode-transition", {"strategy": "alpha", "target_mode": "PAPER", "reason": "x"}),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body"), BODY_OPERATIONS, ids=[f"{m} {p}" for m, p, _ in BODY_OPERATIONS])
def test_what_the_parsers_answer_to_a_body_is_documented(method, path, body, alice, market) -> None:
    """Broken JSON, a form instead of JSON and an oversized body are answered before any view code runs."""
    api = token_client(alice)
    answers = {
        api.generic(method, path, "{not json", content_type=JSON).status_code,
        api.generic(method, path, "a=b", content_type="application/x-www-form-urlencoded").status_code,
        api.generic(method, path, json.dumps({**body, "pad": "x" * 70_000}), content_type=JSON).status_code,
    }

    assert answers == {400, 413, 415}
    assert answers - set(map(int, _documented(method, path))) == set(), f"undocumented answers of {method} {path}"


@pytest.mark.django_db
def test_an_unreadable_pagination_cursor_is_a_documented_answer(alice) -> None:
    response = token_client(alice).get("/v1/orders?cursor=not-a-cursor")

    assert 400 <= response.status_code < 500
    assert str(response.status_code) in _documented("GET", "/v1/orders"), response.status_code


@pytest.mark.django_db
def test_health_with_a_token_that_does_not_exist_gets_a_documented_answer(client) -> None:
    response = client.get("/v1/health", HTTP_AUTHORIZATION="Token 0000000000000000000000000000000000000000")

    assert str(response.status_code) in _documented("GET", "/v1/health"), response.status_code
    assert set(response.json()) <= {"status", "type", "title", "detail"}  # never the authenticated details


def test_every_problem_answer_is_documented_as_problem_json() -> None:
    """RFC 9457: errors are application/problem+json, and the schema must say so (SPEC §5)."""
    wrong = [
        f"{method.upper()} {path} {status}: {sorted(answer.get('content', {}))}"
        for path, item in schema.raw_schema["paths"].items()
        for method, operation in item.items()
        for status, answer in operation["responses"].items()
        if status.startswith("4") and "content" in answer and set(answer["content"]) != {"application/problem+json"}
    ]

    assert wrong == []


# --- Deterministic companions: one request per promise, so a defect found by luck stays found ----


@pytest.fixture
def wsgi_client(wsgi_app_in_test_transaction) -> Client:
    return Client(wsgi_app_in_test_transaction)


def _token_header(user: Any) -> dict[str, str]:
    token, _ = Token.objects.get_or_create(user=user)
    return {"Authorization": f"Token {token.key}"}


KILL_ALPHA = {"action": "activate", "scope": "strategy", "strategy": "alpha", "reason": "documented answers"}
TO_PAPER = {"strategy": "alpha", "target_mode": "PAPER", "reason": "documented answers"}


@dataclass(frozen=True)
class Answer:
    """One kind of answer: who asks, the operation (as the schema names it), the URL, the JSON body."""

    persona: str
    method: str
    operation: str
    url: str  # "{order}" stands for alpha's working order
    body: Any = None


ANSWERS = {
    "orders list": Answer("alice", "GET", "/v1/orders", "/v1/orders"),
    "order detail": Answer("alice", "GET", "/v1/orders/{id}", "/v1/orders/{order}"),
    "order created": Answer("alice", "POST", "/v1/orders", "/v1/orders", order_body(client_order_id="doc-1")),
    "order denied": Answer("alice", "POST", "/v1/orders", "/v1/orders", order_body(qty="100000")),
    "order cancel": Answer("alice", "DELETE", "/v1/orders/{id}", "/v1/orders/{order}"),
    "positions": Answer("alice", "GET", "/v1/positions", "/v1/positions"),
    "risk": Answer("alice", "GET", "/v1/risk", "/v1/risk"),
    "health": Answer("alice", "GET", "/v1/health", "/v1/health"),
    "kill switch state": Answer("alice", "GET", "/v1/controls/kill-switch", "/v1/controls/kill-switch"),
    "kill switch activated": Answer(
        "alice", "POST", "/v1/controls/kill-switch", "/v1/controls/kill-switch", KILL_ALPHA
    ),
    "mode": Answer("alice", "GET", "/v1/controls/mode/{slug}", "/v1/controls/mode/alpha"),
    "mode transition": Answer(
        "officer", "POST", "/v1/controls/mode-transition", "/v1/controls/mode-transition", TO_PAPER
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("answer", ANSWERS.values(), ids=ANSWERS.keys())
def test_each_kind_of_answer_matches_its_documented_schema(
    answer, fuzz_world, wsgi_client, request
) -> None:
    Position.objects.create(strategy=Strategy.objects.get(slug="alpha"), symbol="MSFT", qty=3, avg_price=400)
    positions_reconcile()  # a reconciliation with a break, so the positions answer carries every field
    working = Order.objects.filter(strategy__slug="alpha", status="submitted").earliest("created_at")
    user = request.getfixturevalue(answer.persona)

    response = wsgi_client.open(
        answer.url.format(order=working.pk), method=answer.method, json=answer.body, headers=_token_header(user)
    )

    assert response.status_code < 500
    assert str(response.status_code) in _documented(answer.method, answer.operation), response.status_code
    schema[answer.operation][answer.method].validate_response(response)


def _request_schema_accepts(method: str, path: str, body: Any) -> bool:
    validation_schema = schema[path][method].get_body_for_media_type("application/json").validation_schema
    return jsonschema.validators.validator_for(validation_schema)(validation_schema).is_valid(body)


LIMIT_ORDER = order_body(type="limit", limit_price="99")
FORBIDDEN_BODIES = {
    "qty as a JSON number": Answer("alice", "POST", "/v1/orders", "/v1/orders", order_body(qty=5)),
    "qty in exponent notation": Answer("alice", "POST", "/v1/orders", "/v1/orders", order_body(qty="1e1")),
    "qty padded with spaces": Answer("alice", "POST", "/v1/orders", "/v1/orders", order_body(qty=" 5 ")),
    "limit_price as a JSON number": Answer(
        "alice", "POST", "/v1/orders", "/v1/orders", {**LIMIT_ORDER, "limit_price": 99}
    ),
    "client_order_id as a number": Answer(
        "alice", "POST", "/v1/orders", "/v1/orders", order_body(client_order_id=12345)
    ),
    "extended_hours as a string": Answer(
        "alice", "POST", "/v1/orders", "/v1/orders", {**LIMIT_ORDER, "extended_hours": "true"}
    ),
    "kill switch reason as a number": Answer(
        "alice", "POST", "/v1/controls/kill-switch", "/v1/controls/kill-switch", {**KILL_ALPHA, "reason": 5}
    ),
    "mode transition reason as a number": Answer(
        "officer", "POST", "/v1/controls/mode-transition", "/v1/controls/mode-transition", {**TO_PAPER, "reason": 0}
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("answer", FORBIDDEN_BODIES.values(), ids=FORBIDDEN_BODIES.keys())
def test_a_body_the_schema_forbids_is_refused_and_changes_nothing(
    answer, fuzz_world, wsgi_client, request
) -> None:
    assert not _request_schema_accepts(answer.method, answer.operation, answer.body), "the case must break the schema"
    user = request.getfixturevalue(answer.persona)
    orders, events = Order.objects.count(), RiskEvent.objects.count()

    response = wsgi_client.post(answer.url, json=answer.body, headers=_token_header(user))

    assert response.status_code == 400, (response.status_code, response.get_data()[:300])
    assert (Order.objects.count(), RiskEvent.objects.count()) == (orders, events)
