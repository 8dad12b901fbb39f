"""The small set of failures the order pipeline must tell apart.

The distinction that matters is whether the broker may have acted:

* ``BrokerRejected``: the broker answered and said no (a 4xx with a message).
  Nothing was created; do not retry.
* ``BrokerOutcomeUnknown``: we cannot tell whether the broker acted (timeout,
  5xx, a connection dropped after the request left). The order must be looked
  up by its ``client_order_id`` before anything else is done with it.
* ``BrokerRateLimited``: a 429. The broker did not act; ``reset_at`` says when
  it will listen again. For a submit it is still treated as unknown by the
  pipeline (SPEC 3.2) and resolved by lookup.
* ``BrokerUnavailable``: the request never reached the broker (connection
  refused, DNS). Safe to retry later.
"""

from __future__ import annotations

import datetime as dt


class BrokerError(Exception):
    """Base of every failure raised by a broker adapter."""


class BrokerRejected(BrokerError):
    def __init__(self, message: str, *, status: int | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class BrokerOutcomeUnknown(BrokerError):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class BrokerRateLimited(BrokerOutcomeUnknown):
    def __init__(self, message: str, *, reset_at: dt.datetime | None = None) -> None:
        super().__init__(message, status=429)
        self.reset_at = reset_at


class BrokerUnavailable(BrokerError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OrderNotFound(BrokerError):
    """The broker has no order with that id."""
