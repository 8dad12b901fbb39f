"""Strategy controls, the circuit breaker and reconciliation breaks: each through its service, with a reason."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import override_settings

from orders.models import BreakStatus, ReconciliationBreak, ReconciliationRun
from risk import services
from risk.models import BreakerState, Mode, RiskEvent, RiskEventKind, RiskState, Strategy

pytestmark = pytest.mark.django_db


def strategy_url(strategy: Strategy, action: str) -> str:
    return f"/admin/risk/strategy/{strategy.pk}/{action}/"


# --- Strategies -------------------------------------------------------------------


def test_it_pauses_and_resumes_a_strategy_with_a_reason(officer, officer_client, alpha):
    officer_client.post(strategy_url(alpha, "pause"), {"reason": "reviewing fills"})
    alpha.refresh_from_db()
    assert alpha.paused

    page = officer_client.get(f"/admin/risk/strategy/{alpha.pk}/change/").content.decode()
    officer_client.post(strategy_url(alpha, "resume"), {"reason": "fills explained"})

    assert "Resume strategy" in page and "Pause strategy" not in page
    alpha.refresh_from_db()
    assert not alpha.paused
    kinds = list(RiskEvent.objects.filter(strategy=alpha).order_by("at", "id").values_list("kind", "reason"))
    assert kinds == [
        (RiskEventKind.STRATEGY_PAUSED, "reviewing fills"), (RiskEventKind.STRATEGY_RESUMED, "fills explained")
    ]


def test_going_live_in_a_paper_deployment_is_refused_with_the_reason(officer_client, alpha):
    response = officer_client.post(strategy_url(alpha, "go-live"), {"reason": "ready"})

    assert response.status_code == 200
    assert "cannot go LIVE: this is a paper deployment" in response.content.decode()
    alpha.refresh_from_db()
    assert alpha.mode == Mode.PAPER


@override_settings(TRADING_MODE="live")
def test_it_moves_a_strategy_to_live_and_back_to_paper(officer_client, alpha):
    officer_client.post(strategy_url(alpha, "go-live"), {"reason": "signed off by the desk"})
    alpha.refresh_from_db()
    assert alpha.mode == Mode.LIVE

    officer_client.post(strategy_url(alpha, "go-paper"), {"reason": "end of trial"})
    alpha.refresh_from_db()
    assert alpha.mode == Mode.PAPER
    assert RiskEvent.objects.filter(kind=RiskEventKind.MODE_CHANGED, strategy=alpha).count() == 2


@pytest.mark.parametrize("action", ["pause", "resume", "go-live", "go-paper"])
def test_a_forged_strategy_control_is_refused_and_changes_nothing(action, forgers, alpha):
    Strategy.objects.filter(pk=alpha.pk).update(
        paused=action == "resume", mode=Mode.LIVE if action == "go-paper" else Mode.PAPER
    )
    before = Strategy.objects.values("paused", "mode").get(pk=alpha.pk)

    for who, client in forgers.items():
        assert client.post(strategy_url(alpha, action), {"reason": "forged"}).status_code == 403, who

    assert Strategy.objects.values("paused", "mode").get(pk=alpha.pk) == before
    assert not RiskEvent.objects.exists()


# --- The circuit breaker ------------------------------------------------------------

BREAKER = "/admin/risk/riskstate/1/"


def trip() -> None:
    services.equity_record(equity=Decimal("100000"), day_start_equity=Decimal("100000"))
    services.equity_record(equity=Decimal("96500"), day_start_equity=Decimal("100000"))
    assert RiskState.current().breaker_state == BreakerState.TRIPPED


def test_the_breaker_page_shows_its_state_and_history(officer_client):
    trip()

    page = officer_client.get(BREAKER + "change/").content.decode()

    assert 'data-state="tripped"' in page
    assert "daily drawdown 3.50%" in page
    assert "Circuit breaker changed" in page  # audit trail
    assert "Reset circuit breaker" in page
    assert officer_client.get("/admin/risk/riskstate/")["Location"] == BREAKER + "change/"


def test_it_resets_a_tripped_breaker_with_a_reason(officer, officer_client):
    trip()

    officer_client.post(BREAKER + "reset/", {"reason": "loss understood, limits unchanged"})

    state = RiskState.current()
    assert state.breaker_state == BreakerState.CLOSED and state.peak_equity == Decimal("96500")
    event = RiskEvent.objects.get(kind=RiskEventKind.BREAKER_RESET)
    assert event.actor == officer and event.reason == "loss understood, limits unchanged"


@override_settings(KILL_SWITCH_RESET_APPROVALS=2)
def test_a_breaker_reset_needs_a_second_officer_with_four_eyes(officer_client, second_officer_client):
    trip()

    officer_client.post(BREAKER + "reset/", {"reason": "all good"})
    pending = RiskState.current()
    second_officer_client.post(BREAKER + "reset/", {"reason": "agreed"})

    assert pending.breaker_state == BreakerState.TRIPPED and pending.breaker_reset_requested_by.username == "olivia"
    assert RiskState.current().breaker_state == BreakerState.CLOSED


@override_settings(KILL_SWITCH_RESET_APPROVALS=2)
def test_a_second_officer_can_reject_a_breaker_reset(officer_client, second_officer_client):
    trip()
    officer_client.post(BREAKER + "reset/", {"reason": "all good"})

    second_officer_client.post(BREAKER + "reject-reset/", {"reason": "not convinced"})

    state = RiskState.current()
    assert state.breaker_state == BreakerState.TRIPPED and state.breaker_reset_requested_by is None
    assert RiskEvent.objects.filter(kind=RiskEventKind.BREAKER_RESET_REJECTED, reason="not convinced").exists()


@pytest.mark.parametrize("action", ["reset", "reject-reset"])
def test_a_forged_breaker_reset_is_refused_and_changes_nothing(action, officer, forgers, settings):
    settings.KILL_SWITCH_RESET_APPROVALS = 2
    trip()
    services.circuit_breaker_reset(acting_user=officer, reason="requested")
    events = RiskEvent.objects.count()

    for who, client in forgers.items():
        assert client.post(BREAKER + f"{action}/", {"reason": "forged"}).status_code == 403, who

    state = RiskState.current()
    assert state.breaker_state == BreakerState.TRIPPED and state.breaker_reset_requested_by == officer
    assert RiskEvent.objects.count() == events


# --- Reconciliation breaks ------------------------------------------------------------


@pytest.fixture
def msft_break(db):
    run = ReconciliationRun.objects.create(positions_checked=2, breaks_found=1)
    return ReconciliationBreak.objects.create(run=run, symbol="MSFT", broker_qty=Decimal("10"), ledger_qty=Decimal("7"))


def break_url(item: ReconciliationBreak, action: str) -> str:
    return f"/admin/orders/reconciliationbreak/{item.pk}/{action}/"


def test_it_acknowledges_then_resolves_a_break_with_a_note(officer, officer_client, msft_break):
    officer_client.post(break_url(msft_break, "acknowledge"), {"reason": "checking the fills of 14:02"})
    msft_break.refresh_from_db()
    assert msft_break.status == BreakStatus.ACKNOWLEDGED and msft_break.handled_by == officer

    officer_client.post(break_url(msft_break, "resolve"), {"reason": "late fill, ledger caught up"})
    page = officer_client.get(f"/admin/orders/reconciliationbreak/{msft_break.pk}/change/").content.decode()

    msft_break.refresh_from_db()
    assert msft_break.status == BreakStatus.RESOLVED and msft_break.note == "late fill, ledger caught up"
    assert "Reconciliation break acknowledged" in page and "Reconciliation break resolved" in page


def test_a_break_needs_a_note(officer_client, msft_break):
    response = officer_client.post(break_url(msft_break, "resolve"), {"reason": ""})

    assert "A reason is required" in response.content.decode()
    msft_break.refresh_from_db()
    assert msft_break.status == BreakStatus.OPEN


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_a_forged_break_handling_is_refused_and_changes_nothing(action, forgers, msft_break):
    for who, client in forgers.items():
        assert client.post(break_url(msft_break, action), {"reason": "forged"}).status_code == 403, who
    msft_break.refresh_from_db()
    assert msft_break.status == BreakStatus.OPEN and not RiskEvent.objects.exists()
