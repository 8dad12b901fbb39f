"""GET/PATCH /v1/risk/limits: every limit by its field name; officers change them through limit_update, audited."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.forms.models import model_to_dict
from django.test import Client

from backoffice.admin_risk import LIMIT_LABELS
from risk.models import RestrictedSymbol, RiskEvent, RiskEventKind, RiskLimits
from tests.conftest import token_client

pytestmark = pytest.mark.django_db
URL = "/v1/risk/limits"

EVERY_LIMIT = {
    "max_daily_drawdown_pct", "daily_drawdown_warning_pct", "max_total_drawdown_pct", "max_capital_deployed_pct",
    "max_open_positions", "max_risk_per_trade_pct", "max_notional", "max_price_deviation_pct", "min_stock_price",
    "assumed_stop_distance_pct", "max_order_qty", "max_symbol_concentration_pct", "duplicate_order_window_s",
    "duplicate_order_max", "allow_short_selling", "market_closed_policy", "restricted_symbols",
}


@pytest.fixture
def officer_api(officer):
    return token_client(officer)


@pytest.fixture
def officer_client(officer) -> Client:
    client = Client()
    client.force_login(officer)
    return client


def test_any_authenticated_caller_reads_every_limit_by_its_field_name(alice_api):
    response = alice_api.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert set(body) >= EVERY_LIMIT
    assert body["max_order_qty"] == "10000.00000000"
    assert body["max_symbol_concentration_pct"] == "30.00"
    assert (body["duplicate_order_max"], body["duplicate_order_window_s"]) == (5, 1)
    assert body["allow_short_selling"] is True
    assert body["market_closed_policy"] == "deny"
    assert body["restricted_symbols"] == []


def test_an_officer_changes_a_subset_with_a_reason_audited_as_limit_update(officer, officer_api):
    response = officer_api.patch(
        URL, {"max_order_qty": "2500", "allow_short_selling": False, "reason": "new desk policy"}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["max_order_qty"] == "2500.00000000"
    assert response.json()["allow_short_selling"] is False
    limits = RiskLimits.current()
    assert (limits.max_order_qty, limits.allow_short_selling) == (Decimal("2500"), False)
    event = RiskEvent.objects.get(kind=RiskEventKind.LIMIT_UPDATED)
    assert (event.actor, event.reason) == (officer, "new desk policy")
    assert event.old == {"max_order_qty": "10000.00000000", "allow_short_selling": True}
    assert event.new == {"max_order_qty": "2500", "allow_short_selling": False}


def test_the_restricted_list_reads_and_writes_as_a_list_each_change_audited(officer_api):
    officer_api.patch(URL, {"restricted_symbols": ["GME", "AMC"], "reason": "meme watch"}, format="json")
    response = officer_api.patch(URL, {"restricted_symbols": ["AMC", "TSLA"], "reason": "rotate"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["restricted_symbols"] == ["AMC", "TSLA"]
    assert list(RestrictedSymbol.objects.values_list("symbol", flat=True)) == ["AMC", "TSLA"]
    trail = list(
        RiskEvent.objects.order_by("at", "id").values_list("kind", "new__symbol", "reason")
    )
    assert trail == [
        (RiskEventKind.RESTRICTED_SYMBOL_ADDED, "AMC", "meme watch"),
        (RiskEventKind.RESTRICTED_SYMBOL_ADDED, "GME", "meme watch"),
        (RiskEventKind.RESTRICTED_SYMBOL_REMOVED, "GME", "rotate"),
        (RiskEventKind.RESTRICTED_SYMBOL_ADDED, "TSLA", "rotate"),
    ]


def test_an_api_client_may_not_change_limits(alice_api):
    response = alice_api.patch(URL, {"max_order_qty": "1", "reason": "I would like more room"}, format="json")

    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert RiskLimits.current().max_order_qty == Decimal("10000")
    assert not RiskEvent.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_order_qty": "100"}, "reason"),
        ({"max_order_qty": "100", "reason": "   "}, "reason"),
        ({"max_symbol_concentration_pct": "150", "reason": "x"}, "max_symbol_concentration_pct"),
        ({"market_closed_policy": "sometimes", "reason": "x"}, "market_closed_policy"),
        ({"duplicate_order_max": 0, "reason": "x"}, "duplicate_order_max"),
        ({"max_order_qty": "-5", "reason": "x"}, "max_order_qty"),
        ({"restricted_symbols": ["not a symbol"], "reason": "x"}, "restricted_symbols"),
        ({"max_daily_drawdown_pct": "12", "reason": "x"}, "max_daily_drawdown_pct"),  # above the total limit
        ({"max_order_qty": "100", "typo_limit": "1", "reason": "x"}, "typo_limit"),
    ],
)
def test_no_reason_or_an_invalid_value_is_400_and_changes_nothing(officer_api, body, field):
    response = officer_api.patch(URL, body, format="json")

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert field in response.json()["errors"], response.json()
    assert model_to_dict(RiskLimits.current())["max_order_qty"] == Decimal("10000")
    assert not RiskEvent.objects.exists()
    assert not RestrictedSymbol.objects.exists()


def test_the_admin_and_the_api_edit_the_same_audited_limits(officer, officer_api, officer_client):
    officer_api.patch(URL, {"max_symbol_concentration_pct": "20", "reason": "from the API"}, format="json")
    form = {k: v for k, v in model_to_dict(RiskLimits.current()).items() if k in LIMIT_LABELS}
    form.update(max_symbol_concentration_pct="25", reason="from the admin")
    officer_client.post("/admin/risk/risklimits/1/change/", form)

    assert officer_api.get(URL).json()["max_symbol_concentration_pct"] == "25.00"
    trail = RiskEvent.objects.filter(kind=RiskEventKind.LIMIT_UPDATED).order_by("at", "id")
    assert [(e.reason, e.old, e.new, e.actor) for e in trail] == [
        ("from the API", {"max_symbol_concentration_pct": "30.00"}, {"max_symbol_concentration_pct": "20"}, officer),
        ("from the admin", {"max_symbol_concentration_pct": "20.00"}, {"max_symbol_concentration_pct": "25"}, officer),
    ]
    admin_page = officer_client.get("/admin/risk/risklimits/1/change/").content.decode()
    assert "from the API" in admin_page and "from the admin" in admin_page  # one audit trail


def test_the_admins_restricted_list_is_the_apis(officer_api, officer_client):
    officer_client.post("/admin/risk/restrictedsymbol/add/", {"symbol": "NVDA", "reason": "research embargo"})

    assert officer_api.get(URL).json()["restricted_symbols"] == ["NVDA"]
