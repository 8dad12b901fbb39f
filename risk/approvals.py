"""Four-eyes approval: one mechanism for every action a second officer must approve.

Resetting a kill switch and resetting the circuit breaker use it today; any
new action that needs two officers (a ledger adjustment, say) uses it the same
way, and gets the same rules, audit rows and admin buttons:

1. **Where the request waits.** Three fields on the row the action is about:
   ``<prefix>requested_by`` (FK to the user, null), ``<prefix>requested_at``
   and ``<prefix>reason``. A new model inherits them from
   ``risk.models.FourEyesRequestFields`` (prefix ``reset_``); the risk state
   keeps its older ``breaker_reset_*`` names (prefix ``breaker_reset_``).
2. **Describe the action once** with a ``FourEyes``: the prefix, the
   permission that may request, approve and reject, and the RiskEvent kinds
   of "requested" and "rejected" (the action's own service writes the event
   of the action itself, e.g. KILL_SWITCH_RESET, once it happens).
3. **Request / approve**: the action's service, inside its transaction and
   with the row locked, calls ``four_eyes_request_or_approve``. It returns
   True when the action may happen now: four-eyes is off
   (``four_eyes_required()`` is False), or a *different* officer's request is
   pending and this call approves it (the request is cleared). Otherwise it
   records the request (saved, audited) and returns False: the service
   answers "pending" and changes nothing else. The requester approving their
   own request is refused (``RiskActionError``).
4. **Reject**: ``four_eyes_reject`` clears a pending request, audited; only a
   different officer may reject it.
5. **Admin**: ``backoffice.admin_risk.four_eyes_actions`` builds the
   "Request / Approve / Reset" and "Reject reset request" buttons for any
   ``FourEyes``, with the same labels, explanations and visibility rules.

Whether two officers are needed is one setting for every such action
(``KILL_SWITCH_RESET_APPROVALS``: 1 or 2), read by ``four_eyes_required()``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Model
from django.utils import timezone

from risk.audit import risk_event_record
from risk.exceptions import RiskActionError
from risk.models import Strategy


def four_eyes_required() -> bool:
    """Whether a second, different officer must approve every four-eyes action."""
    return settings.KILL_SWITCH_RESET_APPROVALS >= 2


@dataclass(frozen=True)
class FourEyes:
    """One action under four-eyes: where its request waits and how it is audited."""

    prefix: str  # the request fields are <prefix>requested_by, <prefix>requested_at, <prefix>reason
    permission: str  # who may request, approve and reject
    requested_event: str  # RiskEventKind of "a request was recorded"
    rejected_event: str  # RiskEventKind of "a request was rejected"
    noun: str = "reset"  # what is requested, in refusals: "the reset you requested"

    def requested_by_id(self, obj: Model) -> int | None:
        return getattr(obj, f"{self.prefix}requested_by_id")

    def requested_by(self, obj: Model) -> Any:
        return getattr(obj, f"{self.prefix}requested_by")

    def requested_at(self, obj: Model) -> dt.datetime | None:
        return getattr(obj, f"{self.prefix}requested_at")

    def reason(self, obj: Model) -> str:
        return getattr(obj, f"{self.prefix}reason")

    def pending(self, obj: Model) -> bool:
        return self.requested_by_id(obj) is not None

    def pending_by_other(self, obj: Model, user: Any) -> bool:
        requested_by_id = self.requested_by_id(obj)
        return requested_by_id is not None and requested_by_id != user.pk

    def set_request(self, obj: Model, *, user: Any, at: dt.datetime, reason: str) -> None:
        setattr(obj, f"{self.prefix}requested_by", user)
        setattr(obj, f"{self.prefix}requested_at", at)
        setattr(obj, f"{self.prefix}reason", reason)

    def clear_request(self, obj: Model) -> None:
        """Forget a pending request (the caller saves): approved, rejected, or overtaken by a new activation."""
        setattr(obj, f"{self.prefix}requested_by", None)
        setattr(obj, f"{self.prefix}requested_at", None)
        setattr(obj, f"{self.prefix}reason", "")


def four_eyes_request_or_approve(
    four_eyes: FourEyes, obj: Model, *, acting_user: Any, reason: str, strategy: Strategy | None = None,
) -> bool:
    """True: act now (four-eyes off, or this approves another officer's request). False: request recorded.

    Call inside the action's transaction with ``obj`` locked, after its
    permission and reason checks.
    """
    if not four_eyes_required():
        return True
    requested_by_id = four_eyes.requested_by_id(obj)
    if requested_by_id is None:
        four_eyes.set_request(obj, user=acting_user, at=timezone.now(), reason=reason)
        obj.save()
        risk_event_record(kind=four_eyes.requested_event, acting_user=acting_user, strategy=strategy, reason=reason)
        return False
    if requested_by_id == acting_user.pk:
        raise RiskActionError(f"four-eyes: a different officer must approve the {four_eyes.noun} you requested")
    four_eyes.clear_request(obj)
    return True


def four_eyes_reject(
    four_eyes: FourEyes, obj: Model, *, acting_user: Any, reason: str, strategy: Strategy | None = None,
) -> None:
    """Clear another officer's pending request, audited. Call inside a transaction with ``obj`` locked."""
    requested_by_id = four_eyes.requested_by_id(obj)
    if requested_by_id is None:
        raise RiskActionError(f"there is no pending {four_eyes.noun} request")
    if requested_by_id == acting_user.pk:
        raise RiskActionError(f"four-eyes: a different officer must decide on the {four_eyes.noun} you requested")
    four_eyes.clear_request(obj)
    obj.save()
    risk_event_record(kind=four_eyes.rejected_event, acting_user=acting_user, strategy=strategy, reason=reason)
