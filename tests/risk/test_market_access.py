"""The market-access checks through order_submit against the simulated broker: the snapshot feeds each check.

Each check: an order that passes, one denied with the check's code and numbers,
and (where it takes another limit to show it) the violation reported with others.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.cache import cache

from brokers.models import SimAccount, SimAsset, SimOrder
from brokers.registry import get_broker
from brokers.simulated import SimulatedBroker
from orders import services
from orders.models import Order
from risk import services as risk_services
from risk.models import RiskEvent, RiskEventKind, RiskLimits, Strategy
from risk.tasks import evaluate_risk

pytestmark = pytest.mark.django_db
D = Decimal


def submit(alice, alpha, **fields) -> Order:
    body = {"symbol": "AAPL", "side": "buy", "qty": D("10"), "type": "market", **fields}
    request = services.OrderRequest(strategy=alpha, **body)
    return services.order_submit(acting_user=alice, request=request).order


def codes(order: Order) -> list[str]:
    return [v["code"] for v in order.violations]


def violation(order: Order, code: str) -> dict:
    found = [v for v in order.violations if v["code"] == code]
    assert found, order.violations
    return found[0]


def set_limits(officer, reason: str = "test", **changes) -> None:
    risk_services.limit_update(acting_user=officer, changes=changes, reason=reason)


@pytest.fixture
def no_throttle(alpha):
    Strategy.objects.filter(pk=alpha.pk).update(max_orders_per_second=1000, max_orders_per_minute=1000)
    alpha.refresh_from_db()


# --- restricted_symbol ------------------------------------------------------------


def test_an_order_in_a_restricted_symbol_is_denied_and_passes_again_once_removed(alice, alpha, market, officer):
    risk_services.restricted_symbol_add(acting_user=officer, symbol="aapl", reason="MNPI: pending deal")

    denied = submit(alice, alpha)
    assert denied.status == "denied"
    assert violation(denied, "restricted_symbol") == {
        "code": "restricted_symbol",
        "message": "AAPL is on the restricted list (MNPI: pending deal).",
        "limit": "not restricted",
        "actual": "AAPL",
    }
    assert submit(alice, alpha, symbol="MSFT", qty=D("1")).status == "submitted"

    risk_services.restricted_symbol_remove(acting_user=officer, symbol="AAPL", reason="deal announced")
    assert submit(alice, alpha).status == "submitted"
    kinds = list(RiskEvent.objects.order_by("at", "id").values_list("kind", "reason", "actor__username"))
    assert kinds == [
        (RiskEventKind.RESTRICTED_SYMBOL_ADDED, "MNPI: pending deal", "olivia"),
        (RiskEventKind.RESTRICTED_SYMBOL_REMOVED, "deal announced", "olivia"),
    ]


def test_a_restricted_symbol_is_reported_with_the_orders_other_violations(alice, alpha, market, officer):
    risk_services.restricted_symbol_add(acting_user=officer, symbol="AAPL", reason="restricted")
    order = submit(alice, alpha, qty=D("300"))  # $30,000: above the $25,000 notional cap too
    assert {"restricted_symbol", "max_notional"} <= set(codes(order))


# --- max_order_qty --------------------------------------------------------------------


def test_max_order_qty_denies_above_the_limit_and_passes_at_it(alice, alpha, market, officer):
    set_limits(officer, max_order_qty="20")

    assert submit(alice, alpha, qty=D("20")).status == "submitted"
    denied = submit(alice, alpha, qty=D("21"))
    assert codes(denied) == ["max_order_qty"]
    assert (violation(denied, "max_order_qty")["limit"], violation(denied, "max_order_qty")["actual"]) == (
        "20.00000000",
        "21",
    )


def test_the_default_max_order_qty_is_10000_shares_reported_with_the_notional_cap(alice, alpha, market):
    order = submit(alice, alpha, qty=D("10001"))
    assert {"max_order_qty", "max_notional"} <= set(codes(order))
    assert violation(order, "max_order_qty")["limit"] == "10000.00000000"


# --- max_symbol_concentration ---------------------------------------------------------


def test_symbol_concentration_counts_working_orders_in_the_symbol(alice, alpha, market, officer, no_throttle):
    # Equity $100,000, 10 % per symbol: $10,000 of AAPL at $100.
    set_limits(officer, max_symbol_concentration_pct="10")
    assert submit(alice, alpha, qty=D("60")).status == "submitted"  # $6,000, working until the next tick
    denied = submit(alice, alpha, qty=D("41"))  # $6,000 + $4,100 = 10.1 %
    assert codes(denied) == ["max_symbol_concentration"]
    assert (violation(denied, "max_symbol_concentration")["limit"], violation(denied, "max_symbol_concentration")[
        "actual"
    ]) == ("10.00", "10.10")
    assert submit(alice, alpha, qty=D("40")).status == "submitted"  # exactly 10 %
    assert submit(alice, alpha, symbol="MSFT", qty=D("10")).status == "submitted"  # another symbol has its own room


# --- duplicate_order ------------------------------------------------------------------


def test_the_sixth_identical_order_within_a_second_is_denied_under_new_ids(alice, alpha, market, no_throttle, officer):
    set_limits(officer, duplicate_order_window_s=60)  # the whole test fits in the window on a slow machine
    statuses = [submit(alice, alpha, qty=D("1")).status for _ in range(5)]
    assert statuses == ["submitted"] * 5

    sixth = submit(alice, alpha, qty=D("1"))
    assert codes(sixth) == ["duplicate_order"]
    assert (violation(sixth, "duplicate_order")["limit"], violation(sixth, "duplicate_order")["actual"]) == ("5", "6")
    # A slicing strategy is not a runaway loop: another quantity, side or symbol is not a duplicate.
    assert submit(alice, alpha, qty=D("2")).status == "submitted"
    assert submit(alice, alpha, symbol="MSFT", qty=D("1")).status == "submitted"


def test_a_duplicate_is_reported_with_the_throttle_it_also_trips(alice, alpha, market, officer):
    set_limits(officer, duplicate_order_window_s=60)
    for _ in range(5):
        submit(alice, alpha, qty=D("1"))
    sixth = submit(alice, alpha, qty=D("1"))
    assert set(codes(sixth)) >= {"duplicate_order"}
    Strategy.objects.filter(pk=alpha.pk).update(max_orders_per_minute=5)
    alpha.refresh_from_db()
    assert {"duplicate_order", "rate_limited"} <= set(codes(submit(alice, alpha, qty=D("1"))))


# --- short_not_allowed ----------------------------------------------------------------


def test_a_naked_short_is_denied_when_the_deployment_does_not_short(alice, alpha, market, officer):
    set_limits(officer, allow_short_selling=False)

    denied = submit(alice, alpha, side="sell")
    assert codes(denied) == ["short_not_allowed"]
    assert (violation(denied, "short_not_allowed")["limit"], violation(denied, "short_not_allowed")["actual"]) == (
        "0",
        "10",
    )
    assert "short selling is off" in violation(denied, "short_not_allowed")["message"]


def test_a_sell_of_a_held_position_is_not_a_short(alice, alpha, market, officer):
    submit(alice, alpha, qty=D("10"))
    market.tick()
    services.orders_sync()
    set_limits(officer, allow_short_selling=False)

    assert submit(alice, alpha, side="sell", qty=D("10")).status == "submitted"
    # That sell is working: another one would go short.
    assert codes(submit(alice, alpha, side="sell", qty=D("1"))) == ["short_not_allowed"]


@pytest.mark.parametrize(("shortable", "easy_to_borrow"), [(False, True), (True, False)])
def test_a_short_needs_the_brokers_shortable_and_easy_to_borrow(alice, alpha, market, shortable, easy_to_borrow):
    SimAsset.objects.filter(symbol="AAPL").update(shortable=shortable, easy_to_borrow=easy_to_borrow)

    assert codes(submit(alice, alpha, side="sell")) == ["short_not_allowed"]
    assert submit(alice, alpha, side="sell", symbol="MSFT", qty=D("1")).status == "submitted"


# --- buying_power ---------------------------------------------------------------------


def record_account(**fields) -> None:
    """What the risk job stores every few seconds: equity with the account's status and buying power."""
    account = SimulatedBroker().get_account()
    from dataclasses import replace

    account = replace(account, **fields)
    risk_services.equity_record(equity=account.equity, day_start_equity=account.last_equity, account=account)


def test_a_buy_whose_cost_plus_working_buys_exceeds_buying_power_is_denied(alice, alpha, market, no_throttle):
    record_account(buying_power=D("1500"))

    assert submit(alice, alpha, type="limit", limit_price=D("99")).status == "submitted"  # $990, rests
    # The working buy counts as exposure does: at the higher of its limit and the last price ($1,000).
    denied = submit(alice, alpha, type="limit", limit_price=D("99"), qty=D("6"))  # $594 + $1,000 working
    assert codes(denied) == ["buying_power"]
    assert (violation(denied, "buying_power")["limit"], violation(denied, "buying_power")["actual"]) == (
        "1500.00",
        "1594.00",
    )
    assert submit(alice, alpha, type="limit", limit_price=D("99"), qty=D("5")).status == "submitted"  # $1,495


def test_a_sell_needs_no_buying_power(alice, alpha, market):
    record_account(buying_power=D("0"))
    assert submit(alice, alpha, side="sell", qty=D("1")).status == "submitted"


# --- account_blocked --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("account", "actual"),
    [
        ({"trading_blocked": True}, "trading_blocked"),
        ({"account_blocked": True}, "account_blocked"),
        ({"status": "ACCOUNT_CLOSED"}, "status ACCOUNT_CLOSED"),
    ],
)
def test_a_blocked_account_denies_every_order_once_the_risk_job_has_read_it(alice, alpha, market, account, actual):
    assert submit(alice, alpha).status == "submitted"
    SimAccount.objects.filter(pk=1).update(**account)
    evaluate_risk.apply()  # the beat's job: reads the account, stores its status with the equity

    denied = submit(alice, alpha, side="sell", qty=D("1"))
    assert codes(denied) == ["account_blocked"]
    assert (violation(denied, "account_blocked")["limit"], violation(denied, "account_blocked")["actual"]) == (
        "ACTIVE",
        actual,
    )


# --- market_closed --------------------------------------------------------------------


def test_a_closed_market_denies_under_the_default_policy_and_passes_under_allow(
    alice, alpha, market, officer, settings
):
    settings.SIM_MARKET_CLOCK = "closed"

    denied = submit(alice, alpha)
    assert codes(denied) == ["market_closed"]
    assert (violation(denied, "market_closed")["limit"], violation(denied, "market_closed")["actual"]) == (
        "open",
        "closed",
    )
    set_limits(officer, market_closed_policy="allow")
    assert submit(alice, alpha).status == "submitted"  # the broker queues it


def test_the_extended_session_takes_extended_hours_limit_day_orders_only(alice, alpha, market, settings):
    settings.SIM_MARKET_CLOCK = "extended"
    limit = {"type": "limit", "limit_price": D("100")}

    assert submit(alice, alpha, extended_hours=True, **limit).status == "submitted"
    assert codes(submit(alice, alpha, **limit)) == ["market_closed"]


def test_an_extended_hours_order_outside_every_session_is_denied(alice, alpha, market, settings):
    settings.SIM_MARKET_CLOCK = "closed"
    order = submit(alice, alpha, extended_hours=True, type="limit", limit_price=D("100"))
    assert codes(order) == ["market_closed"]
    assert violation(order, "market_closed")["limit"] == "extended session open"


@pytest.mark.parametrize(
    "fields",
    [{"type": "market"}, {"type": "limit", "limit_price": D("100"), "time_in_force": "gtc"}],
)
def test_an_extended_hours_order_that_is_not_limit_day_is_refused_and_nothing_is_stored(alice, alpha, market, fields):
    with pytest.raises(services.InvalidOrder, match="limit order with time_in_force day"):
        submit(alice, alpha, extended_hours=True, **fields)
    assert not Order.objects.exists()
    assert not SimOrder.objects.exists()


def test_the_clock_is_read_once_a_minute_not_per_order_and_the_cache_is_shared(alice, alpha, market, no_throttle):
    for qty in ("1", "2", "3"):
        submit(alice, alpha, qty=D(qty))
    calls = get_broker().counter.by_operation
    assert calls.get("get_clock") == 1
    assert calls.get("get_asset") == 1
    assert calls.get("get_account", 0) <= 1  # only a fresh deployment's first equity reading

    # A new broker client is what another process has: it reads the shared cache, not the broker.
    from brokers import registry

    registry.reset()
    submit(alice, alpha, qty=D("4"))
    assert get_broker().counter.by_operation.get("get_clock", 0) == 0
    assert get_broker().counter.by_operation.get("get_account", 0) == 0
    cache.clear()
    submit(alice, alpha, qty=D("5"))
    assert get_broker().counter.by_operation.get("get_clock") == 1


# --- stop_loss_wrong_side ---------------------------------------------------------------


def test_a_buy_with_its_stop_above_the_price_is_denied(alice, alpha, market):
    denied = submit(alice, alpha, stop_loss=D("101"))
    assert codes(denied) == ["stop_loss_wrong_side"]
    found = violation(denied, "stop_loss_wrong_side")
    assert (found["limit"], found["actual"]) == ("100.0000", "101")  # the last trade price


def test_a_sell_with_its_stop_below_the_limit_price_is_denied(alice, alpha, market):
    denied = submit(alice, alpha, side="sell", qty=D("1"), type="limit", limit_price=D("100"), stop_loss=D("99"))
    assert codes(denied) == ["stop_loss_wrong_side"]


def test_stops_on_the_right_side_pass(alice, alpha, market):
    assert submit(alice, alpha, stop_loss=D("95")).status == "submitted"
    assert submit(alice, alpha, side="sell", qty=D("1"), stop_loss=D("105")).status == "submitted"


def test_a_wrong_side_stop_is_reported_with_the_risk_it_does_not_reduce(alice, alpha, market):
    # 250 shares at $100 (the notional cap) with a stop 30 % on the wrong side: 7.5 % of equity at risk.
    order = submit(alice, alpha, qty=D("250"), stop_loss=D("130"))
    assert codes(order) == ["stop_loss_wrong_side", "max_risk_per_trade"]
    assert violation(order, "max_risk_per_trade")["actual"] == "7.50"


def test_a_stop_placed_at_the_broker_is_the_risk_and_without_one_the_assumed_distance_is(alice, alpha, market, officer):
    # 500 shares at $100: with a stop at $96 (sent to the broker as the entry's leg) the risk is $2,000 = 2 %;
    # without a stop the assumed 5 % distance says $2,500 = 2.5 %, over the 2 % limit.
    set_limits(officer, max_notional="100000", max_symbol_concentration_pct="100")
    unprotected = submit(alice, alpha, qty=D("500"))
    assert codes(unprotected) == ["max_risk_per_trade"]
    assert violation(unprotected, "max_risk_per_trade")["actual"] == "2.50"
    assert submit(alice, alpha, qty=D("500"), stop_loss=D("96")).status == "submitted"


def test_limits_row_defaults_are_the_policy(db):
    limits = RiskLimits.current()
    assert limits.max_order_qty == D("10000")
    assert limits.max_symbol_concentration_pct == D("30")
    assert (limits.duplicate_order_max, limits.duplicate_order_window_s) == (5, 1)
    assert limits.allow_short_selling is True
    assert limits.market_closed_policy == "deny"
