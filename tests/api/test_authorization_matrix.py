"""Every /v1 endpoint (and the admin's read pages) against every persona, from docs/authorization-policy.md.

The tables in the policy document are parsed, not copied: a cell changed
there changes what this test expects. Each row names a request below; each
column is a persona; each cell is the status (and, for lists and health,
what the body must show). A request that is refused must also change nothing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.middleware.csrf import CSRF_ALLOWED_CHARS
from django.utils.crypto import get_random_string
from rest_framework.test import APIClient

from orders import services
from orders.models import Fill, Order, Position
from orders.states import OrderStatus
from risk import services as risk_services
from risk.models import KillSwitch, Mode, RiskLimits, Strategy
from tests.conftest import order_body, token_client
from tests.factories import UserFactory, in_group

POLICY = Path(__file__).resolve().parents[2] / "docs" / "authorization-policy.md"
PERSONAS = ("anonymous", "client A", "client B", "officer", "auditor", "superuser")
API_TABLE = "/v1 API"
ADMIN_PAGES_TABLE = "Admin pages (read access)"


# --- The policy document -----------------------------------------------------


@dataclass(frozen=True)
class Expectation:
    status: int
    shows: str  # "", "status", "full", "own", "all", "login"


@dataclass(frozen=True)
class PolicyRow:
    case: str
    request: str
    cells: dict[str, Expectation]


def _cell(text: str) -> Expectation:
    match = re.fullmatch(r"(\d{3})(?:\s+(status|full|own|all|login))?", text.strip())
    assert match, f"unreadable cell {text!r} in {POLICY.name}"
    return Expectation(int(match[1]), match[2] or "")


def policy_table(heading: str) -> list[PolicyRow]:
    """The rows of the first table under ``## heading``."""
    lines = POLICY.read_text().splitlines()
    start = lines.index(f"## {heading}")
    rows: list[PolicyRow] = []
    header: list[str] | None = None
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        if not line.startswith("|"):
            if header is not None:
                break
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            assert header == ["case", "request", *PERSONAS], f"{heading}: columns are {header}"
            continue
        if set(cells) <= {"---"}:
            continue
        case, request, *by_persona = cells
        call = re.match(r"`([^`]+)`", request)  # the method and path; any words after it describe the case
        assert call, f"{heading}/{case}: the request column must start with `METHOD /path`"
        rows.append(PolicyRow(case, call[1], dict(zip(PERSONAS, map(_cell, by_persona), strict=True))))
    assert header is not None, f"no table under '## {heading}' in {POLICY.name}"
    return rows


# --- The world every row starts from ------------------------------------------


@dataclass
class World:
    alpha: Strategy
    beta: Strategy
    users: dict[str, Any]
    working: dict[str, Order] = field(default_factory=dict)
    denied: dict[str, Order] = field(default_factory=dict)


def _submit(user: Any, strategy: Strategy, **fields: Any) -> Order:
    body = {"symbol": "AAPL", "side": "buy", "qty": Decimal("1"), "type": "limit", "limit_price": Decimal("97")}
    body.update(fields)
    return services.order_submit(
        acting_user=user, request=services.OrderRequest(strategy=strategy, **body)
    ).order


@pytest.fixture
def world(market, alice, bob, officer, auditor) -> World:
    superuser = UserFactory(username="root", is_staff=True, is_superuser=True)
    alpha, beta = Strategy.objects.get(slug="alpha"), Strategy.objects.get(slug="beta")
    users = {"client A": alice, "client B": bob, "officer": officer, "auditor": auditor, "superuser": superuser}
    world = World(alpha=alpha, beta=beta, users=users)
    for strategy, client in ((alpha, alice), (beta, bob)):
        world.working[strategy.slug] = _submit(client, strategy)
        world.denied[strategy.slug] = _submit(client, strategy, qty=Decimal("100000"), type="market", limit_price=None)
        Position.objects.create(strategy=strategy, symbol="MSFT", qty=Decimal("3"), avg_price=Decimal("400"))
        filled = world.denied[strategy.slug]
        Fill.objects.create(
            order=filled, strategy=strategy, symbol="MSFT", side="buy", qty=Decimal("3"), price=Decimal("400"),
            cumulative_qty=Decimal("3"),
        )
    assert {o.status for o in world.working.values()} == {OrderStatus.SUBMITTED}
    assert {o.status for o in world.denied.values()} == {OrderStatus.DENIED}
    return world


def client_for(persona: str, world: World) -> APIClient:
    """API clients present their token; staff use the admin session, with CSRF enforced as in a browser."""
    if persona == "anonymous":
        return APIClient()
    user = world.users[persona]
    if persona.startswith("client"):
        return token_client(user)
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(user)
    secret = get_random_string(32, CSRF_ALLOWED_CHARS)
    browser.cookies["csrftoken"] = secret
    browser.defaults["HTTP_X_CSRFTOKEN"] = secret
    return browser


# --- The requests the rows name -----------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One row's request: the operation it exercises, how to send it, and the change it may make."""

    operation: tuple[str, str]
    send: Callable[[APIClient, World], Any]
    prepare: Callable[[World], None] | None = None
    # For a request that may change something: a value that differs afterwards if and only if it did.
    state: Callable[[World], Any] | None = None


def _kill_switch(action: str, scope: str, strategy: str | None = None) -> Callable[[APIClient, World], Any]:
    body = {"action": action, "scope": scope, "reason": "authorisation matrix"}
    if strategy:
        body["strategy"] = strategy
    return lambda api, world: api.post("/v1/controls/kill-switch", body, format="json")


def _activate(slug: str | None) -> Callable[[World], None]:
    def prepare(world: World) -> None:
        strategy = Strategy.objects.get(slug=slug) if slug else None
        risk_services.killswitch_activate(acting_user=None, strategy=strategy, reason="matrix setup", job="test")

    return prepare


def _switch_state(slug: str | None) -> Callable[[World], Any]:
    def state(world: World) -> Any:
        scope = {"strategy__slug": slug} if slug else {"strategy__isnull": True}
        return KillSwitch.objects.filter(**scope).values_list("active", flat=True).first()

    return state


def _order_status(slug: str, which: str) -> Callable[[World], Any]:
    return lambda world: Order.objects.get(pk=getattr(world, which)[slug].pk).status


def _order_count() -> Callable[[World], Any]:
    return lambda world: Order.objects.count()


def _alpha_mode(world: World) -> Any:
    return Strategy.objects.get(slug="alpha").mode


def _make_alpha_live(world: World) -> None:
    Strategy.objects.filter(slug="alpha").update(mode=Mode.LIVE)


NO_SUCH_ORDER = uuid.UUID("00000000-0000-4000-8000-000000000000")
MODE_TRANSITION = {"target_mode": "PAPER", "reason": "authorisation matrix"}

API_PROBES: dict[str, Probe] = {
    "health": Probe(("GET", "/v1/health"), lambda api, w: api.get("/v1/health")),
    "schema": Probe(("GET", "/v1/schema"), lambda api, w: api.get("/v1/schema")),
    "docs": Probe(("GET", "/v1/docs"), lambda api, w: api.get("/v1/docs")),
    "metrics": Probe(("GET", "/metrics"), lambda api, w: api.get("/metrics")),
    "orders-list": Probe(("GET", "/v1/orders"), lambda api, w: api.get("/v1/orders")),
    "orders-submit-alpha": Probe(
        ("POST", "/v1/orders"), lambda api, w: api.post("/v1/orders", order_body(strategy="alpha"), format="json"),
        state=_order_count(),
    ),
    "orders-submit-ghost": Probe(
        ("POST", "/v1/orders"), lambda api, w: api.post("/v1/orders", order_body(strategy="ghost"), format="json"),
        state=_order_count(),
    ),
    "order-read-alpha": Probe(
        ("GET", "/v1/orders/{id}"), lambda api, w: api.get(f"/v1/orders/{w.working['alpha'].pk}")
    ),
    "order-read-missing": Probe(("GET", "/v1/orders/{id}"), lambda api, w: api.get(f"/v1/orders/{NO_SUCH_ORDER}")),
    "order-cancel-alpha": Probe(
        ("DELETE", "/v1/orders/{id}"), lambda api, w: api.delete(f"/v1/orders/{w.working['alpha'].pk}"),
        state=_order_status("alpha", "working"),
    ),
    "order-amend-alpha": Probe(
        ("PATCH", "/v1/orders/{id}"),
        lambda api, w: api.patch(f"/v1/orders/{w.working['alpha'].pk}", {"limit_price": "98"}, format="json"),
        state=_order_count(),  # an amend stores its replacement
    ),
    "order-cancel-alpha-terminal": Probe(
        ("DELETE", "/v1/orders/{id}"), lambda api, w: api.delete(f"/v1/orders/{w.denied['alpha'].pk}"),
        state=_order_status("alpha", "denied"),
    ),
    "order-cancel-missing": Probe(
        ("DELETE", "/v1/orders/{id}"), lambda api, w: api.delete(f"/v1/orders/{NO_SUCH_ORDER}")
    ),
    "positions": Probe(("GET", "/v1/positions"), lambda api, w: api.get("/v1/positions")),
    "orders-cancel-all-alpha": Probe(
        ("POST", "/v1/orders/cancel-all"),
        lambda api, w: api.post("/v1/orders/cancel-all", {"strategy": "alpha"}, format="json"),
        state=_order_status("alpha", "working"),
    ),
    "orders-cancel-all-ghost": Probe(
        ("POST", "/v1/orders/cancel-all"),
        lambda api, w: api.post("/v1/orders/cancel-all", {"strategy": "ghost"}, format="json"),
        state=lambda w: sorted(Order.objects.values_list("status", flat=True)),
    ),
    "fills": Probe(("GET", "/v1/fills"), lambda api, w: api.get("/v1/fills")),
    "events": Probe(("GET", "/v1/events"), lambda api, w: api.get("/v1/events")),
    "risk": Probe(("GET", "/v1/risk"), lambda api, w: api.get("/v1/risk")),
    "risk-limits-read": Probe(("GET", "/v1/risk/limits"), lambda api, w: api.get("/v1/risk/limits")),
    "risk-limits-update": Probe(
        ("PATCH", "/v1/risk/limits"),
        lambda api, w: api.patch("/v1/risk/limits", {"max_order_qty": "500", "reason": "matrix"}, format="json"),
        state=lambda w: RiskLimits.current().max_order_qty,
    ),
    "kill-switch-state": Probe(("GET", "/v1/controls/kill-switch"), lambda api, w: api.get("/v1/controls/kill-switch")),
    "kill-switch-activate-alpha": Probe(
        ("POST", "/v1/controls/kill-switch"), _kill_switch("activate", "strategy", "alpha"),
        state=_switch_state("alpha"),
    ),
    "kill-switch-activate-ghost": Probe(
        ("POST", "/v1/controls/kill-switch"), _kill_switch("activate", "strategy", "ghost"),
        state=lambda w: KillSwitch.objects.filter(active=True).count(),
    ),
    "kill-switch-activate-global": Probe(
        ("POST", "/v1/controls/kill-switch"), _kill_switch("activate", "global"), state=_switch_state(None)
    ),
    "kill-switch-reset-alpha": Probe(
        ("POST", "/v1/controls/kill-switch"), _kill_switch("deactivate", "strategy", "alpha"),
        prepare=_activate("alpha"), state=_switch_state("alpha"),
    ),
    "kill-switch-reset-global": Probe(
        ("POST", "/v1/controls/kill-switch"), _kill_switch("deactivate", "global"),
        prepare=_activate(None), state=_switch_state(None),
    ),
    "mode-read-alpha": Probe(
        ("GET", "/v1/controls/mode/{slug}"), lambda api, w: api.get("/v1/controls/mode/alpha")
    ),
    "mode-read-ghost": Probe(
        ("GET", "/v1/controls/mode/{slug}"), lambda api, w: api.get("/v1/controls/mode/ghost")
    ),
    "mode-transition-alpha": Probe(
        ("POST", "/v1/controls/mode-transition"),
        lambda api, w: api.post("/v1/controls/mode-transition", {"strategy": "alpha", **MODE_TRANSITION}, "json"),
        prepare=_make_alpha_live, state=_alpha_mode,
    ),
    "mode-transition-ghost": Probe(
        ("POST", "/v1/controls/mode-transition"),
        lambda api, w: api.post("/v1/controls/mode-transition", {"strategy": "ghost", **MODE_TRANSITION}, "json"),
    ),
}

ADMIN_PAGES: dict[str, str] = {
    "admin-login": "/admin/login/",
    "admin-index": "/admin/",
    "admin-orders": "/admin/orders/order/",
    "admin-positions": "/admin/orders/position/",
    "admin-strategies": "/admin/risk/strategy/",
    "admin-strategy-add": "/admin/risk/strategy/add/",
    "admin-kill-switches": "/admin/risk/killswitch/",
    "admin-risk-events": "/admin/risk/riskevent/",
    "admin-restricted-symbols": "/admin/risk/restrictedsymbol/",
    "admin-restricted-symbol-add": "/admin/risk/restrictedsymbol/add/",
    "admin-lockouts": "/admin/axes/accessattempt/",
    "admin-users": "/admin/auth/user/",
    "admin-tokens": "/admin/authtoken/tokenproxy/",
}


def _grid(rows: list[PolicyRow]) -> list[Any]:
    return [
        pytest.param(row, persona, id=f"{row.case}-{persona.replace(' ', '_')}") for row in rows for persona in PERSONAS
    ]


# --- Checks on what the body shows --------------------------------------------


def _listed_strategies(case: str, body: dict[str, Any]) -> set[str]:
    items = body["strategies"] if case in {"kill-switch-state", "risk"} else body["results"]
    return {item["strategy"] for item in items}


OWN_STRATEGY = {"client A": "alpha", "client B": "beta"}


def _assert_body_shows(expected: Expectation, row: PolicyRow, persona: str, response: Any) -> None:
    if expected.shows == "status":
        assert set(response.json()) == {"status"}, response.json()
    elif expected.shows == "full":
        assert {"status", "database", "cache", "broker", "celery"} <= set(response.json()), response.json()
    elif expected.shows == "own":
        assert _listed_strategies(row.case, response.json()) == {OWN_STRATEGY[persona]}, response.json()
    elif expected.shows == "all":
        assert {"alpha", "beta"} <= _listed_strategies(row.case, response.json()), response.json()


# --- The tests -----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("row", "persona"), _grid(policy_table(API_TABLE)))
def test_v1_answers_each_persona_as_the_policy_says(row: PolicyRow, persona: str, world: World) -> None:
    probe = API_PROBES[row.case]
    expected = row.cells[persona]
    if probe.prepare:
        probe.prepare(world)
    before = probe.state(world) if probe.state else None
    api = client_for(persona, world)

    response = probe.send(api, world)

    assert response.status_code == expected.status, (
        f"{row.case} ({row.request}) as {persona}: expected {expected.status}, got {response.status_code}: "
        f"{response.content[:300]!r}"
    )
    if response.status_code >= 400 and row.case != "docs":
        assert response["Content-Type"] == "application/problem+json", response["Content-Type"]
        assert response.json()["status"] == response.status_code
    if response.status_code == 401:
        assert response.has_header("WWW-Authenticate")
    _assert_body_shows(expected, row, persona, response)
    if probe.state:
        after = probe.state(world)
        assert (after != before) == (response.status_code < 300), (
            f"{row.case} as {persona}: answered {response.status_code}, state {before!r} -> {after!r}"
        )


@pytest.mark.django_db
@pytest.mark.parametrize(("row", "persona"), _grid(policy_table(ADMIN_PAGES_TABLE)))
def test_admin_pages_answer_each_persona_as_the_policy_says(row: PolicyRow, persona: str, world: World) -> None:
    expected = row.cells[persona]
    browser = APIClient()
    if persona != "anonymous":
        browser.force_login(world.users[persona])

    response = browser.get(ADMIN_PAGES[row.case])

    assert response.status_code == expected.status, (
        f"{row.case} ({row.request}) as {persona}: expected {expected.status}, got {response.status_code}"
    )
    if expected.shows == "login":
        assert response["Location"].startswith("/admin/login/"), response["Location"]


def _names_operation(request: str, operation: tuple[str, str]) -> bool:
    """Whether the policy's request text ("GET /v1/orders/{alpha's order}") is a call of ``operation``."""
    method, target = re.sub(r"\{[^}]*\}", "ID", request).split()[:2]
    pattern = re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(operation[1]))
    return method == operation[0] and re.fullmatch(pattern, target) is not None


def test_every_policy_row_has_its_request_and_says_which_operation_it_is() -> None:
    rows = policy_table(API_TABLE)
    assert {r.case for r in rows} == set(API_PROBES)
    for row in rows:
        assert _names_operation(row.request, API_PROBES[row.case].operation), (row.case, row.request)
    assert {r.case for r in policy_table(ADMIN_PAGES_TABLE)} == set(ADMIN_PAGES)
    for row in policy_table(ADMIN_PAGES_TABLE):
        assert row.request == f"GET {ADMIN_PAGES[row.case]}", row.case


def test_every_operation_in_the_openapi_schema_has_a_policy_row() -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = {(method.upper(), path) for path, item in schema["paths"].items() for method in item}
    covered = {probe.operation for probe in API_PROBES.values()}

    assert operations - covered == set(), "operations without a row in the authorisation policy"


@pytest.mark.django_db
def test_a_staff_browser_session_must_send_the_csrf_token_to_change_anything(officer) -> None:
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(officer)
    body = {"action": "activate", "scope": "global", "reason": "no CSRF token"}

    response = browser.post("/v1/controls/kill-switch", body, format="json")

    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert KillSwitch.objects.get(strategy__isnull=True).active is False
    assert browser.get("/v1/controls/kill-switch").status_code == 200  # reading needs no token


@pytest.mark.django_db
def test_a_deactivated_api_client_is_locked_out(alice, market) -> None:
    api = token_client(alice)
    alice.is_active = False
    alice.save(update_fields=["is_active"])

    assert api.get("/v1/orders").status_code == 401
    assert api.post("/v1/orders", order_body(), format="json").status_code == 401
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_an_api_client_in_no_group_and_with_no_grant_trades_nothing(db, market, alpha) -> None:
    stranger = token_client(in_group(UserFactory(username="stranger"), "API clients"))

    assert stranger.post("/v1/orders", order_body(strategy="alpha"), format="json").status_code == 403
    assert stranger.get("/v1/orders").json()["results"] == []
    assert stranger.get("/v1/controls/kill-switch").json()["strategies"] == []
    assert Order.objects.count() == 0
