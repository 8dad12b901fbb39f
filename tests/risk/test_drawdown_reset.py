"""A drawdown trip an officer can reset: the reset re-bases, so it holds, and a further full loss trips again."""

from __future__ import annotations

from decimal import Decimal

import pytest

from risk import services
from risk.models import KillSwitch, RiskEvent, RiskState

pytestmark = pytest.mark.django_db
D = Decimal


def evaluate(equity: str, day_start: str | None = None) -> RiskState:
    return services.equity_record(equity=D(equity), day_start_equity=D(day_start or equity))


def global_switch() -> KillSwitch:
    return KillSwitch.objects.get(strategy__isnull=True)


def test_after_a_drawdown_trip_and_a_reset_the_switch_stays_off_until_a_further_full_loss(officer):
    evaluate("100000")
    evaluate("90000")  # 10 % below the peak: the total-drawdown rule activates the kill switch
    assert global_switch().active and global_switch().source == "circuit_breaker"

    outcome = services.killswitch_reset(acting_user=officer, reason="Loss acknowledged by the desk")

    assert outcome.done
    state = RiskState.current()
    assert (state.peak_equity, state.peak_reset_by, state.peak_reset_reason) == (
        D("90000"), officer, "Loss acknowledged by the desk"
    )
    event = RiskEvent.objects.filter(kind="kill_switch_reset").get()
    assert (event.old["peak_equity"], event.new["peak_equity"]) == ("100000.00", "90000.00")

    for _ in range(10):
        evaluate("90000")
    assert not global_switch().active

    evaluate("81001")  # 9.999 % below the new base: still off
    assert not global_switch().active
    evaluate("81000")  # 10 % below the new base
    assert global_switch().active


def test_with_four_eyes_the_approval_re_bases_and_names_both_officers(officer, second_officer, settings):
    settings.KILL_SWITCH_RESET_APPROVALS = 2
    evaluate("100000")
    evaluate("89000")

    assert not services.killswitch_reset(acting_user=officer, reason="Loss acknowledged").done
    assert RiskState.current().peak_equity == D("100000")  # a request alone changes nothing
    assert services.killswitch_reset(acting_user=second_officer, reason="Approved").done

    assert RiskState.current().peak_reset_by == second_officer
    event = RiskEvent.objects.filter(kind="kill_switch_reset").get()
    assert event.new["requested_by"] == "olivia" and event.actor_label == "oscar"
    evaluate("89000")
    assert not global_switch().active


def test_a_switch_an_officer_activated_does_not_re_base_the_peak(officer):
    evaluate("100000")
    evaluate("95000")
    services.killswitch_activate(acting_user=officer, reason="manual halt")

    services.killswitch_reset(acting_user=officer, reason="resume")

    assert RiskState.current().peak_equity == D("100000")


def test_after_a_breaker_trip_and_a_reset_it_stays_closed_until_a_further_full_daily_loss(officer):
    evaluate("100000")
    assert evaluate("96500", day_start="100000").breaker_state == "tripped"  # 3.5 % today

    services.circuit_breaker_reset(acting_user=officer, reason="Loss acknowledged")

    for _ in range(10):
        assert evaluate("96500", day_start="100000").breaker_state == "closed"
    event = RiskEvent.objects.filter(kind="breaker_reset").get()
    assert (event.old["daily_base_equity"], event.new["daily_base_equity"]) == ("100000.00", "96500.00")
    assert evaluate("94570", day_start="100000").breaker_state == "warning"  # 2 % below the new base
    assert evaluate("93605", day_start="100000").breaker_state == "tripped"  # 3 % below the new base


def test_risk_api_and_dashboard_show_the_peak_since_when_and_by_whom(officer, client, alice_api, market):
    evaluate("100000")
    evaluate("90000")
    services.killswitch_reset(acting_user=officer, reason="Loss acknowledged")

    body = alice_api.get("/v1/risk").json()
    assert body["peak"]["equity"] == "90000.00" and body["peak"]["by"] == "olivia"
    assert body["peak"]["reason"] == "Loss acknowledged" and body["peak"]["since"]
    assert body["total_drawdown"] == "0.0000"

    client.force_login(officer)
    page = client.get("/admin/").content.decode()
    assert "re-based by olivia" in page
