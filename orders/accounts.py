"""Creating the people who use the back office: API clients and risk officers."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.db import transaction
from rest_framework.authtoken.models import Token

from risk.models import Strategy

API_CLIENTS = "API clients"
RISK_OFFICERS = "Risk officers"
AUDITORS = "Auditors"


@transaction.atomic
def api_client_create(*, name: str, strategy_slugs: list[str]) -> tuple[AbstractUser, str]:
    """Create or update an API client granted these strategies (PAPER strategies are created if missing).

    API clients have no usable password and are never staff: they cannot log
    in to the admin, only call /v1 with their token.
    """
    User = get_user_model()
    user, created = User.objects.get_or_create(username=name)
    if created:
        user.set_unusable_password()
    user.is_staff = False
    user.is_superuser = False
    user.save()
    user.groups.add(Group.objects.get_or_create(name=API_CLIENTS)[0])
    for slug in strategy_slugs:
        strategy, _ = Strategy.objects.get_or_create(slug=slug, defaults={"name": slug})
        strategy.clients.add(user)
    token, _ = Token.objects.get_or_create(user=user)
    return user, token.key


@transaction.atomic
def risk_officer_create(*, username: str, password: str, email: str = "") -> AbstractUser:
    User = get_user_model()
    user, _ = User.objects.get_or_create(username=username, defaults={"email": email})
    user.is_staff = True
    user.set_password(password)
    user.save()
    user.groups.add(Group.objects.get(name=RISK_OFFICERS))
    return user


def random_password() -> str:
    return secrets.token_urlsafe(18)
