"""The one base exception for a request refused for a business reason: nothing changed.

A service raises a subclass (``orders.services.InvalidOrder``,
``risk.services.RiskActionError``, ...) carrying how it reads over HTTP; the
DRF exception handler (``core.problems.exception_handler``) turns every one
into problem+json, and the admin (``backoffice.admin_tools``) shows every one
as a message on the page. Neither lists the subclasses: a new refusal needs no
new ``except``.
"""

from __future__ import annotations

from typing import Any


class BusinessRefusal(Exception):
    """Refused for a business reason; nothing was changed. The class attributes say how the API answers."""

    status_code: int = 400
    slug: str = "refused"
    title: str | None = None  # None: the status's standard title
    headers: dict[str, str] = {}

    @property
    def detail(self) -> str:
        """The problem's ``detail`` (the admin shows ``str(exc)``)."""
        return str(self)

    def problem_extra(self) -> dict[str, Any]:
        """Members added to the problem body (e.g. ``errors``)."""
        return {}
