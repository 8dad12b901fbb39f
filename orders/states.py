"""Order states, the one transition table, and the broker status mapping.

The table is modelled on NautilusTrader's order FSM: every edge a real broker
can produce is here, including the races (a fill after a cancel request, a
cancel refused because the order filled, an ``unknown`` send that turns out to
exist). The django-fsm transitions on ``Order`` are generated from this table,
and the state diagram in docs/architecture.md is drawn from it.
"""

from __future__ import annotations

from django.db import models


class OrderStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DENIED = "denied", "Denied"
    SUBMITTED = "submitted", "Submitted"
    PARTIALLY_FILLED = "partially_filled", "Partially filled"
    PENDING_CANCEL = "pending_cancel", "Pending cancel"
    UNKNOWN = "unknown", "Unknown"
    FILLED = "filled", "Filled"
    CANCELLED = "cancelled", "Cancelled"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"


S = OrderStatus

TERMINAL: frozenset[str] = frozenset({S.DENIED, S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED})
WORKING: frozenset[str] = frozenset(s for s in S.values if s not in TERMINAL)

TRANSITIONS: dict[str, frozenset[str]] = {
    # Stored after the risk check; the sender moves it once the broker answers.
    # pending -> cancelled: the kill switch was activated before the send.
    S.PENDING: frozenset(
        {S.SUBMITTED, S.PARTIALLY_FILLED, S.FILLED, S.REJECTED, S.UNKNOWN, S.CANCELLED, S.EXPIRED, S.PENDING_CANCEL}
    ),
    S.SUBMITTED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELLED, S.REJECTED, S.EXPIRED}),
    S.PARTIALLY_FILLED: frozenset({S.FILLED, S.PENDING_CANCEL, S.CANCELLED, S.EXPIRED}),
    # A fill may arrive after the cancel request; a refused cancel puts the order back to work.
    S.PENDING_CANCEL: frozenset({S.CANCELLED, S.FILLED, S.PARTIALLY_FILLED, S.SUBMITTED, S.EXPIRED, S.REJECTED}),
    # The send's outcome was ambiguous; the broker's answer to a lookup decides.
    S.UNKNOWN: frozenset(
        {S.SUBMITTED, S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELLED, S.REJECTED, S.EXPIRED}
    ),
    S.DENIED: frozenset(),
    S.FILLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}


# Late truth (SPEC 3.2): corrections of an order the back office closed as
# never received (an ambiguous send the broker did not show over the horizon:
# rejected; a cancel requested before the broker ever showed the order:
# cancelled) and that the broker shows after all. These are the only edges out
# of a terminal state; only ``order_adopt_late_truth`` takes them, and only for
# an order marked ``never_received_at`` (the django-fsm condition on
# ``Order.adopt_*``). A self-edge adopts fills or the broker's id without a new
# state. An order cancelled locally stays meant to be cancelled: a broker order
# still working is adopted as ``pending_cancel`` (its cancel is sent), never
# back to ``submitted``.
CORRECTIONS: dict[str, frozenset[str]] = {
    S.REJECTED: frozenset(
        {S.SUBMITTED, S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELLED, S.EXPIRED, S.REJECTED}
    ),
    S.CANCELLED: frozenset({S.PENDING_CANCEL, S.FILLED, S.CANCELLED, S.EXPIRED, S.REJECTED}),
}


def sources_of(target: str, table: dict[str, frozenset[str]] = TRANSITIONS) -> list[str]:
    """Every state from which ``target`` may be entered (by ``table``: the transitions, or the corrections)."""
    return [source for source, targets in table.items() if target in targets]


# Alpaca's status words (the simulated broker speaks the same) -> our states.
BROKER_STATUS: dict[str, str] = {
    **dict.fromkeys(
        [
            "new",
            "accepted",
            "pending_new",
            "accepted_for_bidding",
            "done_for_day",
            "held",
            "pending_review",
            "calculated",
            "stopped",
            "suspended",
        ],
        S.SUBMITTED,
    ),
    "partially_filled": S.PARTIALLY_FILLED,
    "filled": S.FILLED,
    "pending_cancel": S.PENDING_CANCEL,
    "canceled": S.CANCELLED,
    "expired": S.EXPIRED,
    "rejected": S.REJECTED,
    # Replaced by an amend (orders.services.amend): over; its replacement is an order of its own.
    "replaced": S.CANCELLED,
    "pending_replace": S.SUBMITTED,
}


def from_broker_status(status: str) -> str:
    """Our state for a broker status word; an unheard-of word is treated as still working."""
    return BROKER_STATUS.get(status.lower(), S.SUBMITTED)
