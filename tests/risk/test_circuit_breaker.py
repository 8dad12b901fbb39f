"""The circuit breaker walks warning -> tripped -> kill switch as equity falls, and stays latched."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core import mail

from risk import alerts, services
from risk.models import KillSwitch, RiskEvent, RiskState

pytestmark = pytest.mark.django_db
D = Decimal


def record(equity: str) -> RiskState:
    return services.equity_record(equity=D(equity), day_start_equity=D("100000"))


def test_it_walks_warning_tripped_kill_switch_and_stays_latched_on_recovery(
    settings, django_capture_on_commit_callbacks
):
    settings.ADMINS = [("risk", "risk@example.com")]
    with django_capture_on_commit_callbacks(execute=True):
        assert record("100000").breaker_state == "closed"
        assert record("98000").breaker_state == "warning"  # 2 % daily
        assert record("98500").breaker_state == "closed"  # a warning clears itself
        assert record("97000").breaker_state == "tripped"  # 3 % daily: reduce-only
        assert record("99500").breaker_state == "tripped"  # latched
        assert not KillSwitch.objects.get(strategy__isnull=True).active
        services.equity_record(equity=D("89500"), day_start_equity=D("89500"))  # 10.5 % below the 100,000 peak
    assert KillSwitch.objects.get(strategy__isnull=True).active
    assert KillSwitch.objects.get(strategy__isnull=True).source == "circuit_breaker"
    changes = [e.new["state"] for e in RiskEvent.objects.filter(kind="breaker_changed").order_by("at", "id")]
    assert changes == ["warning", "closed", "tripped"]
    alerts.alerts_deliver_pending()  # the alert delivery job
    assert any("KILL SWITCH" in m.subject for m in mail.outbox)


def test_reset_needs_permission_and_restarts_the_peak(officer, alice):
    from django.core.exceptions import PermissionDenied

    record("100000")
    record("96000")
    with pytest.raises(PermissionDenied):
        services.circuit_breaker_reset(acting_user=alice, reason="no")
    outcome = services.circuit_breaker_reset(acting_user=officer, reason="reviewed")
    state = RiskState.current()
    assert outcome.done and state.breaker_state == "closed"
    assert state.peak_equity == D("96000")
