"""The kill switch's admin pages: activate, reset, four-eyes, and refusals on the POST itself."""

from __future__ import annotations

import pytest
from django.test import override_settings

from risk import services
from risk.models import KillSwitch, KillSwitchSource, RiskEvent, RiskEventKind

pytestmark = pytest.mark.django_db


def global_switch() -> KillSwitch:
    return KillSwitch.objects.get(strategy__isnull=True)


def url(switch: KillSwitch, action: str) -> str:
    return f"/admin/risk/killswitch/{switch.pk}/{action}/"


def activate(officer) -> KillSwitch:
    services.killswitch_activate(acting_user=officer, reason="fat finger", source=KillSwitchSource.ADMIN)
    return global_switch()


def test_it_asks_for_confirmation_and_a_reason_before_activating(officer_client):
    switch = global_switch()

    page = officer_client.get(url(switch, "activate")).content.decode()
    without_reason = officer_client.post(url(switch, "activate"), {"reason": "  "})

    assert "Cancels every working order (one cancel-all call at the broker)" in page
    assert 'name="reason"' in page
    assert without_reason.status_code == 200
    assert "A reason is required" in without_reason.content.decode()
    assert not global_switch().active


def test_it_activates_the_global_kill_switch_through_the_service(officer, officer_client):
    switch = global_switch()

    response = officer_client.post(url(switch, "activate"), {"reason": "broker feed is wrong"}, follow=True)

    switch.refresh_from_db()
    assert switch.active and switch.activated_by == officer and switch.source == KillSwitchSource.ADMIN
    assert switch.reason == "broker feed is wrong"
    event = RiskEvent.objects.get(kind=RiskEventKind.KILL_SWITCH_ACTIVATED)
    assert event.actor == officer and event.reason == "broker feed is wrong"
    page = response.content.decode()
    assert response.redirect_chain[-1][0] == f"/admin/risk/killswitch/{switch.pk}/change/"
    assert "GLOBAL KILL SWITCH ACTIVE" in page
    assert "Reset kill switch" in page


def test_it_resets_the_kill_switch_with_a_reason(officer, officer_client):
    switch = activate(officer)

    response = officer_client.post(url(switch, "reset"), {"reason": "feed fixed"}, follow=True)

    assert not global_switch().active
    assert RiskEvent.objects.filter(kind=RiskEventKind.KILL_SWITCH_RESET, reason="feed fixed", actor=officer).exists()
    assert "new orders are accepted again" in response.content.decode()
    assert "GLOBAL KILL SWITCH ACTIVE" not in response.content.decode()


def test_the_change_page_shows_the_state_and_the_audit_trail(officer, officer_client):
    switch = activate(officer)

    page = officer_client.get(f"/admin/risk/killswitch/{switch.pk}/change/").content.decode()

    assert 'data-state="active"' in page
    assert "Kill switch activated" in page  # the audit trail row
    assert "fat finger" in page


def test_a_reset_of_an_inactive_switch_is_refused_and_changes_nothing(officer_client):
    response = officer_client.post(url(global_switch(), "reset"), {"reason": "why not"})

    assert response.status_code == 200
    assert "is not active" in response.content.decode()
    assert not RiskEvent.objects.exists()


def test_a_strategy_switch_is_activated_from_the_strategy_page(officer_client, alpha):
    switch = KillSwitch.objects.get(strategy=alpha)

    page = officer_client.get(f"/admin/risk/strategy/{alpha.pk}/change/").content.decode()
    officer_client.post(url(switch, "activate"), {"reason": "alpha misbehaves"})

    assert f'href="{url(switch, "activate")}"' in page
    assert KillSwitch.objects.get(strategy=alpha).active
    assert not global_switch().active


@override_settings(KILL_SWITCH_RESET_APPROVALS=2)
def test_four_eyes_the_first_officer_requests_and_a_second_approves(officer, officer_client, second_officer_client):
    switch = activate(officer)

    requested = officer_client.post(url(switch, "reset"), {"reason": "all clear"}, follow=True).content.decode()
    again = officer_client.post(url(switch, "reset"), {"reason": "all clear, really"}).content.decode()
    pending_page = second_officer_client.get(f"/admin/risk/killswitch/{switch.pk}/change/").content.decode()
    approved = second_officer_client.post(url(switch, "reset"), {"reason": "confirmed with olivia"})

    assert "awaiting a second officer" in requested
    assert "different officer" in again
    assert "Approve kill switch reset" in pending_page and "Reject reset request" in pending_page
    assert approved.status_code == 302
    assert not global_switch().active
    reset = RiskEvent.objects.get(kind=RiskEventKind.KILL_SWITCH_RESET)
    assert reset.actor.username == "oscar" and reset.new["requested_by"] == "olivia"


@override_settings(KILL_SWITCH_RESET_APPROVALS=2)
def test_four_eyes_a_second_officer_can_reject_the_request(officer, officer_client, second_officer_client):
    switch = activate(officer)
    officer_client.post(url(switch, "reset"), {"reason": "all clear"})

    own = officer_client.get(f"/admin/risk/killswitch/{switch.pk}/change/").content.decode()
    second_officer_client.post(url(switch, "reject-reset"), {"reason": "not yet: positions unexplained"})

    assert "Waiting for a second, different officer" in own and "Approve kill switch reset" not in own
    switch.refresh_from_db()
    assert switch.active and not switch.reset_pending
    assert RiskEvent.objects.filter(kind=RiskEventKind.KILL_SWITCH_RESET_REJECTED).exists()


# --- Refusals: checked on the POST itself, not by hiding buttons ----------------


def test_an_auditor_sees_the_switch_but_no_control(officer, auditor_client):
    switch = activate(officer)

    page = auditor_client.get(f"/admin/risk/killswitch/{switch.pk}/change/").content.decode()

    assert 'data-state="active"' in page
    assert "Reset kill switch" not in page and "Activate kill switch" not in page


@pytest.mark.parametrize("action", ["activate", "reset", "reject-reset"])
def test_a_forged_post_without_the_permission_is_refused_and_changes_nothing(
    action, officer, second_officer, forgers, settings
):
    settings.KILL_SWITCH_RESET_APPROVALS = 2
    if action != "activate":
        activate(officer)
        services.killswitch_reset(acting_user=second_officer, reason="requested")
    switch = global_switch()
    before = (switch.active, switch.reset_requested_by_id, RiskEvent.objects.count())

    for who, client in forgers.items():
        response = client.post(url(switch, action), {"reason": "forged"})
        assert response.status_code == 403, who

    switch.refresh_from_db()
    assert (switch.active, switch.reset_requested_by_id, RiskEvent.objects.count()) == before


@pytest.mark.parametrize("action", ["activate", "reset", "reject-reset"])
def test_the_confirmation_pages_are_refused_to_staff_without_the_permission(action, stan_client, auditor_client):
    switch = global_switch()
    assert stan_client.get(url(switch, action)).status_code == 403
    assert auditor_client.get(url(switch, action)).status_code == 403


def test_the_reset_permission_alone_does_not_allow_activation(officer, stan, stan_client):
    from django.contrib.auth.models import Permission

    stan.user_permissions.add(
        Permission.objects.get(codename="reset_killswitch"), Permission.objects.get(codename="view_killswitch")
    )
    switch = global_switch()

    assert stan_client.post(url(switch, "activate"), {"reason": "x"}).status_code == 403
    activate(officer)
    assert stan_client.post(url(switch, "reset"), {"reason": "allowed"}).status_code == 302
    assert not global_switch().active


def test_an_active_switch_shows_that_the_sync_keeps_cancelling_what_is_open(officer, officer_client):
    switch = activate(officer)

    page = officer_client.get(f"/admin/risk/killswitch/{switch.pk}/change/").content.decode()

    assert 'data-state="cancel-drive"' in page
    assert "cancels every order still open in scope each cycle" in page
