"""The one writer of the risk audit trail (RiskEvent)."""

from __future__ import annotations

from typing import Any

from core.actors import actor_label
from risk.models import RiskEvent, Strategy


def risk_event_record(
    *,
    kind: str,
    acting_user: Any | None,
    job: str | None = None,
    label: str | None = None,
    strategy: Strategy | None = None,
    reason: str = "",
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
) -> RiskEvent:
    """Write one row of the risk audit trail, inside the caller's transaction.

    The one writer of RiskEvent: risk's own services, and other apps recording
    a risk-relevant event they decided (a reconciliation break found or
    handled), which must not write risk's table themselves. ``label`` names a
    job acting under its own label (``job:reconcile``); else the actor's.
    """
    user = acting_user if getattr(acting_user, "is_authenticated", False) else None
    return RiskEvent.objects.create(
        kind=kind,
        actor=user,
        actor_label=label or actor_label(acting_user, job),
        strategy=strategy,
        reason=reason,
        old=old or {},
        new=new or {},
    )
