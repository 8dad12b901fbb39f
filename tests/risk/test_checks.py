"""The pure pre-trade check: each limit at, just under and just over its boundary."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from risk.checks import LastPrice, StrategyState, evaluate
from tests.risk.builders import NOW, D, buy, codes, snapshot


def test_a_normal_order_on_a_fresh_strategy_passes():
    assert codes(buy(), snapshot()) == []


def test_an_order_risking_5_percent_of_equity_is_denied_and_one_risking_1_9_percent_passes():
    # 100 shares at $100 with a stop at $50: risk $5,000 = 5 % of $100,000.
    violations = evaluate(buy("100", stop_loss=D("50")), snapshot())
    assert [v.code for v in violations] == ["max_risk_per_trade"]
    assert violations[0].limit == D("2") and violations[0].actual == D("5.00")
    # 100 shares with a stop at $81: risk $1,900 = 1.9 %.
    assert codes(buy("100", stop_loss=D("81")), snapshot()) == []


@pytest.mark.parametrize(("stop", "expected"), [("80", []), ("79.99", ["max_risk_per_trade"])])
def test_risk_per_trade_at_and_just_over_2_percent(stop, expected):
    assert codes(buy("100", stop_loss=D(stop)), snapshot()) == expected


def test_without_a_stop_the_assumed_5_percent_distance_prices_the_risk():
    # $25,000 notional x 5 % = $1,250 = 1.25 %: passes; the notional cap is the binding limit.
    assert codes(buy("250"), snapshot()) == []


@pytest.mark.parametrize(("qty", "expected"), [("250", []), ("250.01", ["max_notional"])])
def test_max_notional_at_and_just_over_25000(qty, expected):
    assert codes(buy(qty), snapshot()) == expected


@pytest.mark.parametrize(
    ("limit", "expected"), [("105", []), ("105.01", ["price_deviation"]), ("94.99", ["price_deviation"])]
)
def test_price_deviation_at_and_just_over_5_percent(limit, expected):
    assert codes(buy("10", type="limit", limit_price=D(limit)), snapshot()) == expected


@pytest.mark.parametrize(("price", "expected"), [("5.00", []), ("4.99", ["min_price"])])
def test_min_stock_price_at_and_just_under_5_dollars(price, expected):
    snap = snapshot(last_price=LastPrice(price=D(price), at=NOW))
    assert codes(buy("10"), snap) == expected


def test_a_stale_or_missing_price_denies_rather_than_guesses():
    stale = snapshot(last_price=LastPrice(price=D("100"), at=NOW - dt.timedelta(minutes=16)))
    assert codes(buy(), stale) == ["stale_price"]
    assert codes(buy(), snapshot(last_price=None)) == ["stale_price"]
    edge = snapshot(last_price=LastPrice(price=D("100"), at=NOW - dt.timedelta(minutes=15)))
    assert codes(buy(), edge) == []


@pytest.mark.parametrize(("deployed", "expected"), [("79000", []), ("79000.01", ["max_capital_deployed"])])
def test_capital_deployed_counts_positions_and_working_orders(deployed, expected):
    # Positions $50,000 + working orders that add exposure + this $1,000 order against 80 % of $100,000.
    snap = snapshot(
        gross_position_value=D("50000"),
        working_add_notional=D(deployed) - D("50000"),
        strategy=StrategyState(slug="alpha", max_allocation_pct=D("100")),
    )
    assert codes(buy("10"), snap) == expected


def test_max_open_positions_denies_a_new_symbol_but_not_an_existing_one():
    full = snapshot(open_positions=20)
    assert codes(buy(), full) == ["max_open_positions"]
    assert codes(buy(), replace(full, symbol_has_position=True)) == []
    assert codes(buy(), snapshot(open_positions=19)) == []


@pytest.mark.parametrize(("exposure", "expected"), [("9000", []), ("9000.01", ["max_allocation"])])
def test_strategy_allocation_in_dollars(exposure, expected):
    strategy = StrategyState(slug="alpha", max_allocation_amount=D("10000"), exposure=D(exposure))
    assert codes(buy("10"), snapshot(strategy=strategy)) == expected


def test_a_paused_strategy_and_the_throttles_deny():
    strategy = StrategyState(slug="alpha", paused=True, orders_last_second=5, orders_last_minute=120)
    assert codes(buy(), snapshot(strategy=strategy)) == ["strategy_paused", "rate_limited", "rate_limited"]
    under = StrategyState(slug="alpha", orders_last_second=4, orders_last_minute=119)
    assert codes(buy(), snapshot(strategy=under)) == []


def test_daily_loss_blocks_new_exposure_at_3_percent_of_day_start_equity():
    at_limit = StrategyState(slug="alpha", daily_pnl=D("-3000"))
    assert codes(buy(), snapshot(strategy=at_limit)) == ["daily_loss"]
    assert codes(buy(), snapshot(strategy=StrategyState(slug="alpha", daily_pnl=D("-2999.99")))) == []


def test_several_violations_are_all_reported_in_the_order_of_evaluation():
    strategy = StrategyState(slug="alpha", paused=True, kill_switch_active=True)
    snap = snapshot(strategy=strategy, global_kill_switch_active=True, last_price=LastPrice(D("4"), NOW))
    assert codes(buy("30000"), snap) == [  # $120,000 at $4
        "kill_switch_active",
        "kill_switch_active",
        "strategy_paused",
        "max_allocation",
        "max_order_qty",  # 30,000 shares against 10,000
        "max_risk_per_trade",
        "max_notional",
        "min_price",
        "max_capital_deployed",
        "max_symbol_concentration",  # $120,000 in one symbol against 30 % of $100,000
    ]


def test_reduce_only_lets_a_reducing_order_through_and_denies_an_increasing_one():
    long_100 = StrategyState(slug="alpha", position_qty=D("100"))
    tripped = snapshot(strategy=long_100, breaker_state="tripped")
    sell_50 = buy("50", side="sell")
    assert codes(sell_50, tripped) == []
    assert codes(buy("10"), tripped) == ["reduce_only"]
    # Selling more than the position would cross zero: that adds exposure.
    assert codes(buy("150", side="sell"), tripped) == ["reduce_only"]
    # Working sells count: 80 already working leaves only 20 to reduce.
    working = replace(long_100, working_sell_qty=D("80"))
    assert codes(sell_50, snapshot(strategy=working, breaker_state="tripped")) == ["reduce_only"]


def test_daily_drawdown_past_3_percent_is_reduce_only_even_before_the_breaker_job_runs():
    snap = snapshot(equity=D("97000"))
    assert codes(buy(), snap) == ["reduce_only"]
    assert codes(buy(), snapshot(equity=D("97000.01"))) == []


def test_unknown_equity_denies_with_a_reason_instead_of_dividing_by_zero():
    assert codes(buy(), snapshot(equity=D("0"), day_start_equity=D("0"), peak_equity=D("0"))) == ["equity_unknown"]


def test_a_symbol_held_or_worked_without_a_fresh_price_denies_an_order_that_adds_exposure():
    blind = snapshot(unpriced_symbols=("MSFT", "SPY"), strategy=StrategyState(slug="alpha", position_qty=D("10")))
    violations = evaluate(buy(), blind)
    assert [(v.code, v.actual) for v in violations] == [("stale_price", "MSFT, SPY")]
    # Selling part of the position reduces it: no unknown exposure grows, it passes.
    assert codes(buy("5", side="sell"), blind) == []
