"""While a kill switch is active, every sync cycle cancels every open broker order in its scope (adr/0011).

Reproductions of issue #10: a strategy switch whose first cancel got a 429,
a global cancel-all answered 504, a switch committed just before the process
died, an order left ``pending`` by a crash; each ends with no order of the
switch's scope open at the broker within 2 sync cycles of the broker answering
again. Also: a repeated activation re-requests the cancels, is audited, and
voids a pending reset request.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from orders.models import Order
from orders.states import OrderStatus
from risk.models import KillSwitch, RiskEvent, RiskEventKind
from risk.services import killswitch_activate, killswitch_reset
from tests.conftest import order_body, token_client
from tests.fake_alpaca.server import FakeAlpacaServer
from tests.intent import (
    alpaca,  # noqa: F401  (fixture)
    broker_status,
    killed_right_after_the_commit,
    open_at_broker,
    requests_to,
    sync_cycles,
    wait_until_rate_limit_resets,
)

# Transactional: an activation's cancels run after a real commit.
pytestmark = pytest.mark.django_db(transaction=True)


def working(api, client_order_id: str, strategy: str = "alpha", symbol: str = "AAPL") -> dict:
    response = api.post("/v1/orders", order_body(client_order_id=client_order_id, strategy=strategy, symbol=symbol,
                                                 type="limit", limit_price="97"), format="json")
    assert response.status_code == 201 and response.json()["status"] == "submitted", response.content
    return response.json()


@pytest.fixture
def book(alpaca: FakeAlpacaServer, alice_api, bob_api) -> dict[str, list[str]]:  # noqa: F811
    """Three working orders of alpha (alice) and one of beta (bob), all open at the broker."""
    alpha = [working(alice_api, f"a-{i}")["client_order_id"] for i in range(3)]
    beta = [working(bob_api, "b-0", strategy="beta")["client_order_id"]]
    return {"alpha": alpha, "beta": beta}


def test_a_strategy_switch_whose_first_cancel_got_a_429_cancels_every_order_once_the_broker_answers(
    alpaca: FakeAlpacaServer, book, alpha, officer  # noqa: F811
):
    alpaca.set_fault("http_429", method="DELETE", path="/v2/orders/*", count=1, reset_in_s=2)

    killswitch_activate(acting_user=officer, strategy=alpha, reason="runaway strategy")

    assert open_at_broker(alpaca, book["alpha"]), "the 429 left nothing open: the scenario did not happen"
    switch_orders = Order.objects.filter(client_order_id__in=book["alpha"])
    assert set(switch_orders.values_list("status", flat=True)) <= {"pending_cancel", "cancelled"}
    limited = switch_orders.exclude(cancel_last_error="").get()
    assert "RateLimited" in limited.cancel_last_error
    wait_until_rate_limit_resets(limited.cancel_next_attempt_at.timestamp())

    sync_cycles(2)

    assert open_at_broker(alpaca, book["alpha"]) == []
    assert set(switch_orders.values_list("status", flat=True)) == {"cancelled"}
    assert broker_status(alpaca, "b-0") == "new", "an order outside the switch's scope was cancelled"


def test_a_global_cancel_all_answered_504_is_sent_again_until_nothing_is_open(
    alpaca: FakeAlpacaServer, book, officer  # noqa: F811
):
    alpaca.set_fault("http_504", method="DELETE", path="/v2/orders", count=1)

    killswitch_activate(acting_user=officer, reason="market event")

    assert len(open_at_broker(alpaca)) == 4
    switch = KillSwitch.objects.get(strategy__isnull=True)
    assert switch.cancel_attempts == 1 and "504" in switch.cancel_last_error
    # Meanwhile someone places an order on the broker's own dashboard: in the global scope too.
    alpaca.place_order(symbol="MSFT", qty="1", type="limit", limit_price="300", client_order_id="dashboard-1")

    sync_cycles(2)

    assert open_at_broker(alpaca) == []
    assert set(Order.objects.values_list("status", flat=True)) == {"cancelled"}
    switch.refresh_from_db()
    assert switch.cancel_last_error == ""
    calls = requests_to(alpaca, "DELETE", "/v2/orders")
    sync_cycles(1)
    assert requests_to(alpaca, "DELETE", "/v2/orders") == calls, "a cancel-all went out with nothing open"


@pytest.mark.postgres
@pytest.mark.parametrize("scope", ["global", "strategy"])
def test_a_kill_switch_committed_just_before_the_process_died_is_driven_by_the_next_sync(
    alpaca: FakeAlpacaServer, book, alpha, scope, tmp_path  # noqa: F811
):
    strategy = "None" if scope == "global" else f"Strategy.objects.get(pk={alpha.pk})"
    path = "/v2/orders" if scope == "global" else "/v2/orders/*"
    output = killed_right_after_the_commit(alpaca, f"""
        from risk.models import Strategy
        from risk.services import killswitch_activate
        killswitch_activate(acting_user=None, strategy={strategy}, reason="crash drill")
    """, method="DELETE", path=path, log_dir=tmp_path)

    in_scope = book["alpha"] + (book["beta"] if scope == "global" else [])
    assert KillSwitch.objects.get(strategy=None if scope == "global" else alpha).active, output
    assert len(open_at_broker(alpaca, in_scope)) == len(in_scope)  # committed; the broker heard nothing

    sync_cycles(2)

    assert open_at_broker(alpaca, in_scope) == []
    assert set(Order.objects.filter(client_order_id__in=in_scope).values_list("status", flat=True)) == {"cancelled"}
    if scope == "strategy":
        assert broker_status(alpaca, "b-0") == "new"


def test_an_order_left_pending_by_a_crash_under_a_kill_switch_is_resolved_and_cancelled(
    alpaca: FakeAlpacaServer, alpha, officer  # noqa: F811
):
    # The sender died after the broker took the order and before it recorded the answer.
    Order.objects.create(client_order_id="crashed-send", strategy=alpha, symbol="AAPL", side="buy", qty=1,
                         type="limit", limit_price=90, fingerprint="x", status=OrderStatus.PENDING,
                         sent_at=timezone.now())
    alpaca.place_order(symbol="AAPL", qty="1", type="limit", limit_price="97", client_order_id="crashed-send")
    killswitch_activate(acting_user=officer, strategy=alpha, reason="halt alpha")
    assert broker_status(alpaca, "crashed-send") == "new"

    sync_cycles(2)

    assert broker_status(alpaca, "crashed-send") == "canceled"
    assert Order.objects.get(client_order_id="crashed-send").status == "cancelled"


def test_a_repeated_activation_re_requests_the_cancels_is_audited_and_voids_a_pending_reset(
    alpaca: FakeAlpacaServer, book, officer, second_officer, settings  # noqa: F811
):
    settings.KILL_SWITCH_RESET_APPROVALS = 2
    alpaca.set_fault("http_500", method="DELETE", path="/v2/orders", count=1)
    api = token_client(officer)
    first = api.post("/v1/controls/kill-switch", {"action": "activate", "scope": "global", "reason": "first"},
                     format="json")
    assert first.status_code == 200
    killswitch_reset(acting_user=officer, reason="looks fine now")  # four-eyes: waits for a second officer
    assert KillSwitch.objects.get(strategy__isnull=True).reset_pending
    assert len(open_at_broker(alpaca)) == 4

    again = token_client(second_officer).post(
        "/v1/controls/kill-switch", {"action": "activate", "scope": "global", "reason": "still moving"},
        format="json")

    assert again.status_code == 200
    assert open_at_broker(alpaca) == [], "the repeated activation did not send the cancel again"
    switch = KillSwitch.objects.get(strategy__isnull=True)
    assert switch.active and not switch.reset_pending
    events = RiskEvent.objects.filter(kind=RiskEventKind.KILL_SWITCH_ACTIVATED).order_by("at")
    assert [e.reason for e in events] == ["first", "still moving"]
    assert events.last().old == {"active": True, "reset_pending": True}
