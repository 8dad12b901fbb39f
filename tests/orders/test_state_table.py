"""Every transition in the table is allowed; every other is refused."""

from __future__ import annotations

import pytest
from django_fsm import TransitionNotAllowed

from orders.models import Order
from orders.states import CORRECTIONS, TERMINAL, TRANSITIONS, OrderStatus, from_broker_status

ALL = list(OrderStatus.values)
TARGETS = [s for s in ALL if s not in {OrderStatus.PENDING, OrderStatus.DENIED}]
PAIRS = [(source, target) for source in ALL for target in TARGETS]


def _order_in(status: str) -> Order:
    return Order(status=status)


@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[f"{s}->{t}" for s, t in PAIRS])
def test_a_transition_is_allowed_exactly_when_the_table_has_it(source, target):
    order = _order_in(source)
    move = getattr(order, f"to_{target}")
    if target in TRANSITIONS[source]:
        move()
        assert order.status == target
    else:
        with pytest.raises(TransitionNotAllowed):
            move()
        assert order.status == source


def test_terminal_states_have_no_way_out():
    assert all(not TRANSITIONS[state] for state in TERMINAL)


def test_the_status_field_cannot_be_assigned_directly():
    order = _order_in(OrderStatus.SUBMITTED)
    with pytest.raises(AttributeError):
        order.status = OrderStatus.FILLED


@pytest.mark.parametrize(
    ("broker_status", "ours"),
    [
        ("new", "submitted"), ("accepted", "submitted"), ("pending_new", "submitted"), ("held", "submitted"),
        ("done_for_day", "submitted"), ("accepted_for_bidding", "submitted"), ("pending_review", "submitted"),
        ("calculated", "submitted"), ("stopped", "submitted"), ("suspended", "submitted"),
        ("partially_filled", "partially_filled"), ("filled", "filled"), ("pending_cancel", "pending_cancel"),
        ("canceled", "cancelled"), ("expired", "expired"), ("rejected", "rejected"), ("replaced", "cancelled"),
    ],
)
def test_alpaca_statuses_map_as_the_spec_says(broker_status, ours):
    assert from_broker_status(broker_status) == ours


# --- Late truth: the corrections table -------------------------------------------------

# The broker never says "unknown": no correction leads there (Order has no adopt_unknown).
CORRECTION_PAIRS = [(source, target) for source in ALL for target in TARGETS if target != OrderStatus.UNKNOWN]


def _closed_as_never_received(status: str) -> Order:
    import datetime as dt

    return Order(status=status, never_received_at=dt.datetime(2026, 11, 20, 15, 0, tzinfo=dt.UTC))


@pytest.mark.parametrize(("source", "target"), CORRECTION_PAIRS, ids=[f"{s}=>{t}" for s, t in CORRECTION_PAIRS])
def test_a_late_truth_correction_is_allowed_exactly_when_the_corrections_table_has_it(source, target):
    order = _closed_as_never_received(source)
    adopt = getattr(order, f"adopt_{target}")
    if target in CORRECTIONS.get(source, frozenset()):
        adopt()
        assert order.status == target
    else:
        with pytest.raises(TransitionNotAllowed):
            adopt()
        assert order.status == source


@pytest.mark.parametrize(
    ("source", "target"),
    [(s, t) for s, targets in CORRECTIONS.items() for t in sorted(targets)],
)
def test_a_correction_is_refused_to_an_order_not_closed_as_never_received(source, target):
    order = _order_in(source)  # e.g. rejected by the broker itself, or cancelled by a kill switch before the send
    with pytest.raises(TransitionNotAllowed):
        getattr(order, f"adopt_{target}")()
    assert order.status == source


def test_only_orders_closed_as_never_received_have_corrections_and_a_cancel_is_never_undone():
    assert set(CORRECTIONS) == {OrderStatus.REJECTED, OrderStatus.CANCELLED}
    # The back office decided to cancel: a working broker order is adopted as pending_cancel, not submitted.
    assert not CORRECTIONS[OrderStatus.CANCELLED] & {OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED}
    # The ordinary table still has no way out of a terminal state.
    assert all(not TRANSITIONS[state] for state in TERMINAL)
