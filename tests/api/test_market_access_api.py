"""POST /v1/orders answers each market-access denial as 400 risk-denied with the violation's code and numbers."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from brokers.models import SimAccount, SimAsset
from orders.models import Order
from risk import services as risk_services
from risk.models import RiskLimits, Strategy
from risk.tasks import evaluate_risk
from tests.conftest import order_body

pytestmark = pytest.mark.django_db


def _limits(**changes: object) -> Callable[..., None]:
    def setup(officer, **_: object) -> None:
        risk_services.limit_update(acting_user=officer, changes=changes, reason="api test")

    return setup


def _restrict(officer, **_: object) -> None:
    risk_services.restricted_symbol_add(acting_user=officer, symbol="AAPL", reason="watch list")


def _five_identical(api, **_: object) -> None:
    RiskLimits.objects.filter(pk=1).update(duplicate_order_window_s=60)
    Strategy.objects.filter(slug="alpha").update(max_orders_per_second=100)
    for _ in range(5):
        assert api.post("/v1/orders", order_body(qty="1"), format="json").status_code == 201


def _not_shortable(**_: object) -> None:
    SimAsset.objects.filter(symbol="AAPL").update(shortable=False)


def _low_buying_power(**_: object) -> None:
    from brokers.simulated import SimulatedBroker

    account = SimulatedBroker().get_account()
    from dataclasses import replace

    account = replace(account, buying_power=Decimal("500"))
    risk_services.equity_record(equity=account.equity, day_start_equity=account.last_equity, account=account)


def _blocked(**_: object) -> None:
    SimAccount.objects.filter(pk=1).update(trading_blocked=True)
    evaluate_risk.apply()


def _closed(settings, **_: object) -> None:
    settings.SIM_MARKET_CLOCK = "closed"


CASES = {
    "restricted_symbol": (_restrict, {}, ("not restricted", "AAPL")),
    # Quantities and prices as the API parsed them (8 places).
    "max_order_qty": (_limits(max_order_qty="5"), {}, ("5.00000000", "10.00000000")),
    "max_symbol_concentration": (_limits(max_symbol_concentration_pct="0.5"), {}, ("0.50", "1.00")),
    "duplicate_order": (_five_identical, {"qty": "1"}, ("5", "6")),
    "short_not_allowed": (_not_shortable, {"side": "sell"}, ("0", "10.00000000")),
    "buying_power": (_low_buying_power, {}, ("500.00", "1000.00")),
    "account_blocked": (_blocked, {}, ("ACTIVE", "trading_blocked")),
    "market_closed": (_closed, {}, ("open", "closed")),
    "stop_loss_wrong_side": (None, {"stop_loss": "100.5"}, ("100.0000", "100.50000000")),
}


@pytest.mark.parametrize("code", list(CASES))
def test_a_market_access_denial_is_a_400_with_its_code_and_numbers(
    code, alice_api, market, officer, settings
):
    setup, fields, (limit, actual) = CASES[code]
    if setup is not None:
        setup(officer=officer, api=alice_api, settings=settings)

    response = alice_api.post("/v1/orders", order_body(**fields), format="json")

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["type"].endswith("/risk-denied")
    assert [v["code"] for v in body["violations"]] == [code]
    assert (body["violations"][0]["limit"], body["violations"][0]["actual"]) == (limit, actual)
    assert Order.objects.get(pk=body["order_id"]).status == "denied"


@pytest.mark.parametrize(
    "fields",
    [{"type": "market"}, {"type": "limit", "limit_price": "100", "time_in_force": "gtc"}],
)
def test_an_extended_hours_order_must_be_limit_and_day_400_nothing_stored(alice_api, market, fields):
    response = alice_api.post("/v1/orders", order_body(extended_hours=True, **fields), format="json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"].endswith("/invalid-order")
    assert "extended_hours" in response.json()["errors"]
    assert not Order.objects.exists()


def test_an_extended_hours_limit_day_order_trades_in_the_extended_session(alice_api, market, settings):
    settings.SIM_MARKET_CLOCK = "extended"
    body = order_body(extended_hours=True, type="limit", limit_price="100")

    assert alice_api.post("/v1/orders", body, format="json").status_code == 201


def test_the_risk_answer_shows_each_strategy_next_to_its_limits(alice_api, bob_api, market, officer):
    Strategy.objects.filter(slug="alpha").update(max_allocation_amount=Decimal("20000"))
    alice_api.post("/v1/orders", order_body(qty="10"), format="json")  # $1,000 working

    strategies = alice_api.get("/v1/risk").json()["strategies"]

    assert strategies == [
        {
            "strategy": "alpha",
            "mode": "PAPER",
            "paused": False,
            "allocation": "20000.00",
            "allocation_used": "1000.00",
            "daily_pnl": "0.00",
            "daily_loss_limit": "3000.00",
            "orders_last_minute": 1,
            "max_orders_per_minute": 120,
            "max_orders_per_second": 5,
        }
    ]
    assert [s["strategy"] for s in bob_api.get("/v1/risk").json()["strategies"]] == ["beta"]
