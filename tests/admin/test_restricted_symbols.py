"""The restricted list in the admin: added with a reason, removed with one, both audited; others are refused."""

from __future__ import annotations

import pytest

from risk import services
from risk.models import RestrictedSymbol, RiskEvent, RiskEventKind
from tests.admin.conftest import logged_in

pytestmark = pytest.mark.django_db
LIST_URL = "/admin/risk/restrictedsymbol/"
ADD_URL = "/admin/risk/restrictedsymbol/add/"


def test_an_officer_adds_a_symbol_with_a_reason_through_the_service(officer, officer_client):
    response = officer_client.post(ADD_URL, {"symbol": "gme", "reason": "compliance hold"}, follow=True)

    assert response.status_code == 200
    row = RestrictedSymbol.objects.get()
    assert (row.symbol, row.reason, row.added_by) == ("GME", "compliance hold", officer)
    event = RiskEvent.objects.get()
    assert (event.kind, event.actor, event.reason) == (
        RiskEventKind.RESTRICTED_SYMBOL_ADDED,
        officer,
        "compliance hold",
    )
    assert event.new == {"restricted": True, "symbol": "GME"}
    assert "GME" in officer_client.get(LIST_URL).content.decode()


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"symbol": "GME", "reason": ""}, "A reason is required to restrict a symbol."),
        ({"symbol": "not a symbol", "reason": "x"}, "Not a symbol: use e.g. AAPL or BRK.B."),
    ],
)
def test_it_explains_a_refused_addition_and_stores_nothing(officer_client, form, message):
    response = officer_client.post(ADD_URL, form)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not RestrictedSymbol.objects.exists()
    assert not RiskEvent.objects.exists()


def test_a_symbol_already_restricted_is_refused_once_more(officer, officer_client):
    services.restricted_symbol_add(acting_user=officer, symbol="GME", reason="first")

    response = officer_client.post(ADD_URL, {"symbol": "GME", "reason": "again"})

    assert "GME is already restricted." in response.content.decode()
    assert RiskEvent.objects.count() == 1


def test_an_officer_removes_a_symbol_with_a_reason_and_returns_to_the_list(officer, officer_client):
    row = services.restricted_symbol_add(acting_user=officer, symbol="GME", reason="hold")
    remove_url = f"/admin/risk/restrictedsymbol/{row.pk}/remove/"

    page = officer_client.get(f"/admin/risk/restrictedsymbol/{row.pk}/change/").content.decode()
    assert "Remove from the restricted list" in page
    response = officer_client.post(remove_url, {"reason": "hold lifted"})

    assert response.status_code == 302 and response["Location"] == LIST_URL
    assert not RestrictedSymbol.objects.exists()
    removed = RiskEvent.objects.get(kind=RiskEventKind.RESTRICTED_SYMBOL_REMOVED)
    assert (removed.actor, removed.reason) == (officer, "hold lifted")
    assert removed.new == {"restricted": False, "symbol": "GME"}


def test_removal_without_a_reason_is_refused(officer, officer_client):
    row = services.restricted_symbol_add(acting_user=officer, symbol="GME", reason="hold")

    officer_client.post(f"/admin/risk/restrictedsymbol/{row.pk}/remove/", {"reason": ""})

    assert RestrictedSymbol.objects.filter(symbol="GME").exists()


def test_the_page_shows_the_symbols_audit_trail(officer, officer_client):
    row = services.restricted_symbol_add(acting_user=officer, symbol="GME", reason="compliance hold")

    page = officer_client.get(f"/admin/risk/restrictedsymbol/{row.pk}/change/").content.decode()

    assert 'id="audit-trail"' in page and "compliance hold" in page


@pytest.mark.parametrize("persona", ["auditor", "stan", "alice"])
def test_no_one_without_the_permission_adds_or_removes(persona, request, officer):
    user = request.getfixturevalue(persona)
    row = services.restricted_symbol_add(acting_user=officer, symbol="GME", reason="hold")
    client = logged_in(user)

    added = client.post(ADD_URL, {"symbol": "AMC", "reason": "forged"})
    removed = client.post(f"/admin/risk/restrictedsymbol/{row.pk}/remove/", {"reason": "forged"})

    assert added.status_code in {302, 403} and removed.status_code in {302, 403}
    if persona != "alice":  # a signed-in API client is sent to the login page instead
        assert added.status_code == 403 and removed.status_code == 403
    assert list(RestrictedSymbol.objects.values_list("symbol", flat=True)) == ["GME"]
    assert RiskEvent.objects.count() == 1


def test_a_restriction_cannot_be_edited_or_deleted_without_a_reason(officer_client, officer):
    row = services.restricted_symbol_add(acting_user=officer, symbol="GME", reason="hold")

    deleted = officer_client.post(f"/admin/risk/restrictedsymbol/{row.pk}/delete/", {"post": "yes"})

    assert deleted.status_code == 403
    assert RestrictedSymbol.objects.filter(symbol="GME").exists()
