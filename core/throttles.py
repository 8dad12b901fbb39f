"""The per-client request ceiling on /v1: DRF's own throttles, on the shared cache.

Two windows per client (the token's user, or the address of an anonymous
caller): a burst ceiling per second and a sustained one per minute, rates from
``API_CLIENT_RATE_PER_SECOND`` / ``API_CLIENT_RATE_PER_MINUTE`` (backoffice.config).
The history lives in the default cache (Redis in production, the embedded
file cache otherwise), so every web process counts the same requests.

DRF checks throttles in ``APIView.initial``, after authentication and before
the view runs: the body is parsed lazily inside the view, so a throttled
request is answered 429 before a byte of it is parsed and before anything is
stored. The answer is problem+json with ``Retry-After`` (core.problems).
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from rest_framework.throttling import BaseThrottle, UserRateThrottle


class _ClientThrottle(UserRateThrottle):
    def get_rate(self) -> str | None:
        # DRF builds the throttles per request; reading the live settings (not
        # DRF's import-time copy) lets an override (a test, a benchmark) apply.
        rates: dict[str, str] = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]  # type: ignore[assignment]
        return rates[self.scope] if self.scope else None

    def wait(self) -> float:
        """Always a positive wait, so a 429 always carries ``Retry-After``.

        DRF's own answer is None when concurrent requests overfilled the
        window; then the wait is until the oldest request in it expires.
        """
        suggested = super().wait()
        if suggested is not None:
            return suggested
        oldest = self.history[-1] if self.history else self.now
        return max(1.0, math.ceil(self.duration - (self.now - oldest)))


class ClientBurstThrottle(_ClientThrottle):
    scope = "client_burst"


class ClientSustainedThrottle(_ClientThrottle):
    scope = "client_sustained"


class ClientAssetLookupThrottle(_ClientThrottle):
    """A client's budget of broker asset lookups the cache cannot answer (new symbols), per minute.

    Not a view throttle: order entry asks it only on a cache miss, so
    repeating known symbols costs nothing, and a client inventing symbols
    spends this budget instead of the account's broker rate limit.
    """

    scope = "client_asset_lookups"


def client_address(request: Any) -> str | None:
    """The caller's address, one rule for the throttles and the admin lockout.

    DRF's: REMOTE_ADDR, or behind the deployment's proxy (``NUM_PROXIES``) the
    address that proxy appended to X-Forwarded-For, never one the client wrote.
    """
    return BaseThrottle().get_ident(request)
