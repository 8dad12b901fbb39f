"""Shared by the risk services: permission and reason checks, audit values."""


from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied

from risk.exceptions import RiskActionError

logger = logging.getLogger(__name__)
User = AbstractBaseUser | AnonymousUser


def _require_perm(user: Any | None, perm: str) -> None:
    if user is None:
        return  # system jobs act with the system's authority
    if not (getattr(user, "is_active", False) and user.has_perm(perm)):
        raise PermissionDenied(f"missing permission {perm}")


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise RiskActionError("a reason is required")
    return reason


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


# --- Limits -----------------------------------------------------------------


def _apply_changes(instance: Any, changes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    old, new = {}, {}
    for name, value in changes.items():
        field = instance._meta.get_field(name)
        value = field.to_python(value)
        current = getattr(instance, name)
        if current != value:
            old[name], new[name] = _jsonable(current), _jsonable(value)
            setattr(instance, name, value)
    return old, new


