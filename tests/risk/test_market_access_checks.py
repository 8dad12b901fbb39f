"""The market-access checks (SEC 15c3-5, FIA) of the pure check: pass, deny with numbers, reported with others."""

from __future__ import annotations

from dataclasses import replace

import pytest

from risk.checks import (
    AccountStatus,
    LastPrice,
    Limits,
    MarketClock,
    OrderIntent,
    RiskSnapshot,
    StrategyState,
    SymbolState,
    evaluate,
)
from tests.risk.builders import NOW, D, codes, order, snapshot


def violation(intent: OrderIntent, snap: RiskSnapshot, code: str):
    found = [v for v in evaluate(intent, snap) if v.code == code]
    assert len(found) == 1, evaluate(intent, snap)
    return found[0].as_dict()


# --- restricted_symbol --------------------------------------------------------


def test_an_order_in_a_restricted_symbol_is_denied_with_the_officers_reason():
    restricted = snapshot(symbol=SymbolState(restricted=True, restriction_reason="pending merger, MNPI"))
    assert violation(order(), restricted, "restricted_symbol") == {
        "code": "restricted_symbol",
        "message": "AAPL is on the restricted list (pending merger, MNPI).",
        "limit": "not restricted",
        "actual": "AAPL",
    }
    # No order may trade it, a reducing sell included.
    long_book = replace(restricted, strategy=StrategyState(slug="alpha", position_qty=D("10")))
    assert codes(order("sell", "5"), long_book) == ["restricted_symbol"]


def test_an_unrestricted_symbol_passes():
    assert codes(order(), snapshot(symbol=SymbolState(restricted=False))) == []


# --- max_order_qty ------------------------------------------------------------


@pytest.mark.parametrize(("qty", "expected"), [("10000", []), ("10000.01", ["max_order_qty"])])
def test_max_order_qty_at_and_just_over_10000_shares(qty, expected):
    # At $1 a share, 10,000 shares are $10,000: no other limit binds.
    cheap = snapshot(last_price=LastPrice(D("1"), NOW), limits=Limits(min_stock_price=D("0")))
    assert codes(order(qty=qty), cheap) == expected


def test_max_order_qty_reports_the_limit_and_the_quantity():
    assert violation(order(qty="20000"), snapshot(), "max_order_qty")["limit"] == "10000"
    assert violation(order(qty="20000"), snapshot(), "max_order_qty")["actual"] == "20000"


# --- max_symbol_concentration ---------------------------------------------------


@pytest.mark.parametrize(("exposure", "expected"), [("29000", []), ("29000.01", ["max_symbol_concentration"])])
def test_symbol_concentration_counts_the_position_working_orders_and_this_order(exposure, expected):
    # $29,000 already in AAPL (positions at market plus adding working orders) + this $1,000 order vs 30 %.
    assert codes(order(), snapshot(symbol=SymbolState(exposure=D(exposure)))) == expected


def test_symbol_concentration_reports_percent_of_equity():
    found = violation(order(), snapshot(symbol=SymbolState(exposure=D("34000"))), "max_symbol_concentration")
    assert (found["limit"], found["actual"]) == ("30", "35.00")


def test_a_reducing_order_is_never_denied_for_concentration():
    long_book = snapshot(
        strategy=StrategyState(slug="alpha", position_qty=D("500")), symbol=SymbolState(exposure=D("50000"))
    )
    assert codes(order("sell", "10"), long_book) == []


# --- duplicate_order ------------------------------------------------------------


@pytest.mark.parametrize(("seen", "expected"), [(4, []), (5, ["duplicate_order"])])
def test_the_sixth_identical_order_within_the_window_is_denied(seen, expected):
    assert codes(order(), snapshot(identical_recent_orders=seen)) == expected


def test_duplicate_order_reports_the_limit_and_the_count_with_this_order():
    found = violation(order(), snapshot(identical_recent_orders=7), "duplicate_order")
    assert (found["limit"], found["actual"]) == ("5", "8")
    assert "within 1s" in found["message"]


# --- short_not_allowed ----------------------------------------------------------


def test_a_sell_within_the_long_position_is_not_a_short_even_when_shorting_is_off():
    no_shorts = snapshot(limits=Limits(allow_short_selling=False), symbol=SymbolState(net_position_qty=D("10")))
    assert codes(order("sell", "10"), no_shorts) == []


def test_a_naked_short_is_denied_when_the_deployment_does_not_short():
    no_shorts = snapshot(limits=Limits(allow_short_selling=False))
    found = violation(order("sell", "10"), no_shorts, "short_not_allowed")
    assert (found["limit"], found["actual"]) == ("0", "10")
    assert "short selling is off" in found["message"]


def test_working_sells_count_so_a_string_of_sells_cannot_go_short():
    book = SymbolState(net_position_qty=D("10"), working_sell_qty=D("8"))
    no_shorts = snapshot(limits=Limits(allow_short_selling=False), symbol=book)
    found = violation(order("sell", "5"), no_shorts, "short_not_allowed")
    assert (found["limit"], found["actual"]) == ("2", "5")


@pytest.mark.parametrize(
    ("shortable", "easy_to_borrow", "expected"),
    [(True, True, []), (False, True, ["short_not_allowed"]), (True, False, ["short_not_allowed"])],
)
def test_a_short_needs_the_brokers_shortable_and_easy_to_borrow(shortable, expected, easy_to_borrow):
    snap = snapshot(symbol=SymbolState(shortable=shortable, easy_to_borrow=easy_to_borrow))
    assert codes(order("sell", "10"), snap) == expected


def test_a_buy_is_never_a_short():
    assert codes(order("buy"), snapshot(limits=Limits(allow_short_selling=False))) == []


# --- buying_power ---------------------------------------------------------------


@pytest.mark.parametrize(("working", "expected"), [("4000", []), ("4000.01", ["buying_power"])])
def test_a_buy_whose_cost_plus_working_buys_exceeds_buying_power_is_denied(working, expected):
    snap = snapshot(account=AccountStatus(buying_power=D("5000")), working_buy_notional=D(working))
    assert codes(order(), snap) == expected  # 10 x $100 = $1,000


def test_buying_power_reports_the_power_and_what_the_buy_needs():
    snap = snapshot(account=AccountStatus(buying_power=D("500")), working_buy_notional=D("250"))
    found = violation(order(), snap, "buying_power")
    assert (found["limit"], found["actual"]) == ("500", "1250.00")


def test_a_sell_needs_no_buying_power():
    snap = snapshot(account=AccountStatus(buying_power=D("0")), strategy=StrategyState(slug="a", position_qty=D("10")))
    assert codes(order("sell", "10"), replace(snap, symbol=SymbolState(net_position_qty=D("10")))) == []


# --- account_blocked ------------------------------------------------------------


@pytest.mark.parametrize(
    ("account", "actual"),
    [
        (AccountStatus(status="ACCOUNT_UPDATED"), "status ACCOUNT_UPDATED"),
        (AccountStatus(trading_blocked=True), "trading_blocked"),
        (AccountStatus(account_blocked=True), "account_blocked"),
    ],
)
def test_an_account_that_is_not_active_or_is_blocked_denies_every_order(account, actual):
    found = violation(order(), snapshot(account=account), "account_blocked")
    assert (found["limit"], found["actual"]) == ("ACTIVE", actual)


def test_an_active_unblocked_account_passes():
    assert codes(order(), snapshot(account=AccountStatus(status="ACTIVE", buying_power=D("100000")))) == []


# --- market_closed --------------------------------------------------------------


def test_a_closed_market_denies_under_the_default_policy():
    closed = snapshot(clock=MarketClock(is_open=False, extended_is_open=False))
    found = violation(order(), closed, "market_closed")
    assert (found["limit"], found["actual"]) == ("open", "closed")


def test_a_closed_market_passes_under_the_allow_policy():
    closed = snapshot(
        clock=MarketClock(is_open=False, extended_is_open=False), limits=Limits(market_closed_policy="allow")
    )
    assert codes(order(), closed) == []


def test_the_extended_session_takes_only_extended_hours_orders():
    pre_market = snapshot(clock=MarketClock(is_open=False, extended_is_open=True))
    limit = {"type": "limit", "limit_price": D("100")}
    assert codes(order(extended_hours=True, **limit), pre_market) == []
    assert codes(order(**limit), pre_market) == ["market_closed"]
    overnight = snapshot(clock=MarketClock(is_open=False, extended_is_open=False))
    found = violation(order(extended_hours=True, **limit), overnight, "market_closed")
    assert found["limit"] == "extended session open"


# --- stop_loss_wrong_side -------------------------------------------------------


def test_a_buys_stop_above_the_price_is_on_the_wrong_side():
    found = violation(order(stop_loss=D("101")), snapshot(), "stop_loss_wrong_side")
    assert (found["limit"], found["actual"]) == ("100", "101")


def test_a_sells_stop_below_the_price_is_on_the_wrong_side():
    found = violation(
        order("sell", stop_loss=D("99"), type="limit", limit_price=D("100")), snapshot(), "stop_loss_wrong_side"
    )
    assert (found["limit"], found["actual"]) == ("100", "99")


def test_stops_on_the_right_side_pass():
    assert codes(order(stop_loss=D("95")), snapshot()) == []
    assert codes(order("sell", stop_loss=D("105")), snapshot()) == []


def test_a_placed_stop_is_the_risk_even_inside_the_assumed_stop_distance():
    # 400 shares at $100 = $40,000 notional (notional cap raised): the stop, placed at the broker with the
    # entry, risks $0.50 a share = $200 = 0.2 %; without a stop the assumed 5 % says $2,000 = 2 %, and
    # 402 shares 2.01 %.
    wide = snapshot(limits=Limits(max_notional=D("100000"), max_symbol_concentration_pct=D("100")))
    wide = replace(wide, strategy=StrategyState(slug="alpha", max_allocation_pct=D("100")))
    wide = replace(wide, limits=replace(wide.limits, max_capital_deployed_pct=D("100")))
    assert codes(order(qty="402", stop_loss=D("99.50")), wide) == []
    assert codes(order(qty="400"), wide) == []
    found = violation(order(qty="402"), wide, "max_risk_per_trade")
    assert found["actual"] == "2.01"


# --- all together ---------------------------------------------------------------


def test_every_market_access_violation_is_reported_with_the_others_in_order():
    snap = snapshot(
        global_kill_switch_active=True,
        account=AccountStatus(trading_blocked=True, buying_power=D("1000")),
        clock=MarketClock(is_open=False, extended_is_open=False),
        symbol=SymbolState(restricted=True, exposure=D("30000")),
        identical_recent_orders=5,
        limits=Limits(allow_short_selling=False),
    )
    assert codes(order(qty="20000", stop_loss=D("101")), snap) == [
        "kill_switch_active",
        "account_blocked",
        "market_closed",
        "max_allocation",
        "restricted_symbol",
        "max_order_qty",
        "duplicate_order",
        "stop_loss_wrong_side",
        "max_risk_per_trade",
        "max_notional",
        "max_capital_deployed",
        "max_symbol_concentration",
        "buying_power",
    ]
    # A naked short in the same state adds short_not_allowed among the order limits.
    short = codes(order("sell", "10"), snap)
    assert short.index("duplicate_order") < short.index("short_not_allowed") < short.index("max_symbol_concentration")
