"""The kill switch through the API and services: halt, cancel, permission, four-eyes."""

from __future__ import annotations

import pytest
from django.test import override_settings

from brokers.models import SimOrder
from risk.models import KillSwitch, RiskEvent
from tests.conftest import order_body, token_client

# Transactional: the activation's broker cancels run after a real commit.
pytestmark = pytest.mark.django_db(transaction=True)


def activate(api, **body):
    return api.post(
        "/v1/controls/kill-switch", {"action": "activate", "scope": "global", "reason": "test", **body}, format="json"
    )


def test_global_activation_blocks_new_orders_and_cancels_working_ones(alice_api, officer, market):
    working = alice_api.post(
        "/v1/orders", order_body(type="limit", limit_price="99", client_order_id="w-1"), format="json"
    )
    assert working.json()["status"] == "submitted"

    response = activate(token_client(officer))

    assert response.status_code == 200
    assert response.json()["global"]["active"] is True
    assert SimOrder.objects.get(client_order_id="w-1").status == "canceled"
    denied = alice_api.post("/v1/orders", order_body(client_order_id="w-2"), format="json")
    assert denied.status_code == 400
    assert "kill_switch_active" in [v["code"] for v in denied.json()["violations"]]
    assert not SimOrder.objects.filter(client_order_id="w-2").exists()
    assert RiskEvent.objects.filter(kind="kill_switch_activated").count() == 1


def test_an_api_client_cannot_activate_the_global_switch_but_can_stop_its_own_strategy(alice_api, market):
    assert activate(alice_api).status_code == 403
    response = activate(alice_api, scope="strategy", strategy="alpha")
    assert response.status_code == 200
    assert KillSwitch.objects.get(strategy__slug="alpha").active


def test_a_client_cannot_touch_another_clients_strategy(alice_api, beta, market):
    assert activate(alice_api, scope="strategy", strategy="beta").status_code == 403
    assert activate(alice_api, scope="strategy", strategy="no-such-strategy").status_code == 404


def test_reset_needs_the_permission_and_a_reason(alice_api, officer, market):
    activate(token_client(officer))

    no_perm = alice_api.post(
        "/v1/controls/kill-switch", {"action": "deactivate", "scope": "global", "reason": "go"}, format="json"
    )
    no_reason = token_client(officer).post(
        "/v1/controls/kill-switch", {"action": "deactivate", "scope": "global"}, format="json"
    )

    assert no_perm.status_code == 403
    assert no_reason.status_code == 400
    assert KillSwitch.objects.get(strategy__isnull=True).active


@override_settings(KILL_SWITCH_RESET_APPROVALS=2)
def test_four_eyes_refuses_the_same_officer_twice_and_a_second_officer_completes_it(officer, second_officer, market):
    first, second = token_client(officer), token_client(second_officer)
    activate(first)
    body = {"action": "deactivate", "scope": "global", "reason": "all clear"}

    requested = first.post("/v1/controls/kill-switch", body, format="json")
    again = first.post("/v1/controls/kill-switch", body, format="json")
    approved = second.post("/v1/controls/kill-switch", body, format="json")

    assert requested.status_code == 202 and requested.json()["global"]["reset_pending"] is True
    assert again.status_code == 400 and "different officer" in again.json()["detail"]
    assert approved.status_code == 200 and approved.json()["global"]["active"] is False


def test_after_reset_orders_flow_again(alice_api, officer, market):
    api = token_client(officer)
    activate(api)
    api.post(
        "/v1/controls/kill-switch", {"action": "deactivate", "scope": "global", "reason": "resolved"}, format="json"
    )

    response = alice_api.post("/v1/orders", order_body(), format="json")

    assert response.status_code == 201
    kinds = list(RiskEvent.objects.order_by("at").values_list("kind", flat=True))
    assert kinds[-2:] == ["kill_switch_activated", "kill_switch_reset"]


def test_the_kill_switch_state_lists_global_and_visible_strategies(alice_api, beta, market):
    body = alice_api.get("/v1/controls/kill-switch").json()
    assert body["global"]["active"] is False
    assert [s["strategy"] for s in body["strategies"]] == ["alpha"]
