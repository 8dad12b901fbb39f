"""What the risk layer refuses for a business reason: nothing changed (a core BusinessRefusal)."""

from __future__ import annotations

from core.exceptions import BusinessRefusal


class RiskActionError(BusinessRefusal):
    """A request the risk layer refuses for a business reason (shown to the user as a 4xx)."""

    slug = "control-refused"
    title = "Not possible now"


class ModeTransitionRefused(RiskActionError):
    """A paper/live transition whose preconditions do not hold."""

    slug = "mode-transition-refused"
    title = "Mode transition refused"
