"""How an actor is named in audit rows (OrderTransition, RiskEvent): one spelling for every app."""

from __future__ import annotations

from typing import Any


def actor_label(user: Any | None, job: str | None = None) -> str:
    if job:
        return f"job:{job}"
    if user is None or not getattr(user, "is_authenticated", False):
        return "system"
    return str(user.get_username())
