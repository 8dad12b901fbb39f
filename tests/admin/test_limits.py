"""Portfolio, order and strategy limits: saved through the services, with a reason, explained when invalid."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.forms.models import model_to_dict

from backoffice.admin_risk import LIMIT_LABELS, STRATEGY_LABELS
from risk.models import RiskEvent, RiskEventKind, RiskLimits, Strategy

pytestmark = pytest.mark.django_db
LIMITS_URL = "/admin/risk/risklimits/1/change/"


def limits_form(**changes: object) -> dict[str, object]:
    data = {k: v for k, v in model_to_dict(RiskLimits.current()).items() if k in LIMIT_LABELS}
    data.update(changes)
    return data


def strategy_form(strategy: Strategy, **changes: object) -> dict[str, object]:
    data = {k: ("" if v is None else v) for k, v in model_to_dict(strategy).items() if k in STRATEGY_LABELS}
    data.update(changes)
    return data


def test_the_limits_list_opens_the_single_row(officer_client):
    response = officer_client.get("/admin/risk/risklimits/")
    assert response.status_code == 302 and response["Location"] == LIMITS_URL


def test_it_saves_a_limit_through_limit_update_and_shows_it_in_the_history(officer, officer_client):
    response = officer_client.post(
        LIMITS_URL, limits_form(max_daily_drawdown_pct="2.5", reason="volatile week ahead"), follow=True
    )

    assert RiskLimits.current().max_daily_drawdown_pct == Decimal("2.5")
    event = RiskEvent.objects.get(kind=RiskEventKind.LIMIT_UPDATED)
    assert event.actor == officer and event.reason == "volatile week ahead"
    assert event.old == {"max_daily_drawdown_pct": "3.00"} and event.new == {"max_daily_drawdown_pct": "2.5"}
    page = response.content.decode()
    assert "Saved and audited: Max daily drawdown (%) 3.00 → 2.5" in page
    assert 'id="audit-trail"' in page and "volatile week ahead" in page
    assert "3 % → <strong>2.5 %</strong>" in page  # old -> new in the history table, as people read it


def test_it_refuses_a_change_without_a_reason(officer_client):
    response = officer_client.post(LIMITS_URL, limits_form(max_notional="1000", reason=""))

    assert response.status_code == 200
    assert "A reason is required for every limit change." in response.content.decode()
    assert RiskLimits.current().max_notional == Decimal("25000")
    assert not RiskEvent.objects.exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_capital_deployed_pct": "150"}, "A percentage is at most 100 (type 3 for 3 %, not 0.03)."),
        ({"max_risk_per_trade_pct": "-1"}, "A percentage cannot be negative."),
        ({"max_daily_drawdown_pct": "12"}, "The daily drawdown limit must be below the total drawdown limit."),
        ({"daily_drawdown_warning_pct": "3.5"}, "The warning level must be below the daily drawdown limit."),
        ({"max_notional": "0"}, "Must be a positive dollar amount."),
        ({"max_open_positions": "0"}, "Must be at least 1."),
        ({"min_stock_price": "-1"}, "Cannot be negative."),
    ],
)
def test_it_explains_why_a_limit_is_invalid_and_saves_nothing(officer_client, changes, message):
    response = officer_client.post(LIMITS_URL, limits_form(reason="try", **changes))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not RiskEvent.objects.exists()


def test_saving_unchanged_limits_writes_no_event(officer_client):
    officer_client.post(LIMITS_URL, limits_form(reason="just looking"))
    assert not RiskEvent.objects.exists()


def test_an_auditor_sees_the_limits_read_only_and_cannot_post(auditor_client):
    page = auditor_client.get(LIMITS_URL).content.decode()
    response = auditor_client.post(LIMITS_URL, limits_form(max_notional="1", reason="forged"))

    assert 'name="max_notional"' not in page and 'name="reason"' not in page
    assert response.status_code == 403
    assert RiskLimits.current().max_notional == Decimal("25000")


def test_a_forged_limit_change_is_refused_and_changes_nothing(forgers):
    for who, client in forgers.items():
        response = client.post(LIMITS_URL, limits_form(max_notional="1", reason="forged"))
        assert response.status_code == 403, who
    assert RiskLimits.current().max_notional == Decimal("25000")
    assert not RiskEvent.objects.exists()


# --- Strategy limits --------------------------------------------------------------


def strategy_url(strategy: Strategy) -> str:
    return f"/admin/risk/strategy/{strategy.pk}/change/"


def test_it_saves_strategy_limits_through_strategy_update_with_history(officer, officer_client, alpha):
    response = officer_client.post(
        strategy_url(alpha),
        strategy_form(alpha, max_allocation_amount="50000", max_orders_per_second="2", reason="new allocation"),
        follow=True,
    )

    alpha.refresh_from_db()
    assert alpha.max_allocation_amount == Decimal("50000") and alpha.max_orders_per_second == 2
    event = RiskEvent.objects.get(kind=RiskEventKind.STRATEGY_UPDATED)
    assert event.strategy == alpha and event.actor == officer and event.reason == "new allocation"
    assert set(event.new) == {"max_allocation_amount", "max_orders_per_second"}
    assert "new allocation" in response.content.decode()


def test_a_strategy_limit_is_explained_when_invalid(officer_client, alpha):
    response = officer_client.post(strategy_url(alpha), strategy_form(alpha, max_daily_loss_pct="101", reason="x"))

    assert "A percentage is at most 100" in response.content.decode()
    assert not RiskEvent.objects.exists()


def test_nobody_adds_or_deletes_a_strategy_in_the_admin(officer_client, alpha):
    assert officer_client.get("/admin/risk/strategy/add/").status_code == 403
    assert officer_client.post(f"/admin/risk/strategy/{alpha.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Strategy.objects.filter(pk=alpha.pk).exists()


def test_a_forged_strategy_change_is_refused_and_changes_nothing(forgers, alpha):
    for who, client in forgers.items():
        response = client.post(strategy_url(alpha), strategy_form(alpha, max_daily_loss_pct="50", reason="forged"))
        assert response.status_code == 403, who
    alpha.refresh_from_db()
    assert alpha.max_daily_loss_pct == Decimal("3")
