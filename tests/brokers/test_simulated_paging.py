"""Listing orders pages through the book: calls grow with pages, never with orders."""

from __future__ import annotations

import datetime as dt
from itertools import islice

import pytest
from django.utils import timezone

from brokers.base import MAX_PAGE_SIZE
from brokers.exceptions import BrokerRejected
from brokers.models import SimOrder, SimOrderStatus
from brokers.simulated import SimulatedBroker
from tests.brokers.factories import SimOrderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker() -> SimulatedBroker:
    return SimulatedBroker()


def _working_orders(count: int) -> set[str]:
    # Three submission instants shared by hundreds of orders each: paging must
    # break ties on something stable, or it loses or repeats orders.
    now = timezone.now()
    instants = [now - dt.timedelta(seconds=seconds) for seconds in (30, 20, 10)]
    orders = [SimOrderFactory(submitted_at=instants[index % 3]) for index in range(count)]
    return {str(order.broker_order_id) for order in orders}


def test_1203_open_orders_come_back_in_exactly_three_counted_pages_each_once(broker: SimulatedBroker) -> None:
    expected = _working_orders(1203)
    SimOrderFactory.create_batch(5, status=SimOrderStatus.FILLED)

    seen = [order.broker_order_id for order in broker.iter_orders(status="open")]

    assert broker.counter.by_operation == {"list_orders": 3}
    assert len(seen) == 1203
    assert set(seen) == expected


def test_orders_closing_between_pages_neither_hide_nor_repeat_the_rest(broker: SimulatedBroker) -> None:
    expected = _working_orders(1203)
    pages = broker.iter_orders(status="open")
    first_page = [order.broker_order_id for order in islice(pages, MAX_PAGE_SIZE)]
    # A tick fills half of what the first page showed before the next page is read.
    SimOrder.objects.filter(broker_order_id__in=first_page[::2]).update(status=SimOrderStatus.FILLED)

    rest = [order.broker_order_id for order in pages]

    assert set(first_page) | set(rest) == expected
    assert len(first_page) + len(rest) == 1203
    assert broker.counter.by_operation == {"list_orders": 3}


def test_closed_orders_are_listed_when_updated_after_the_given_time(broker: SimulatedBroker) -> None:
    now = timezone.now()
    recent = SimOrderFactory(status=SimOrderStatus.FILLED, updated_at=now)
    SimOrderFactory(status=SimOrderStatus.CANCELED, updated_at=now - dt.timedelta(hours=2))
    SimOrderFactory(status=SimOrderStatus.NEW)

    closed = list(broker.iter_orders(status="closed", after=now - dt.timedelta(hours=1)))

    assert [order.broker_order_id for order in closed] == [str(recent.broker_order_id)]
    assert broker.counter.by_operation == {"list_orders": 1}


def test_an_empty_book_costs_one_call(broker: SimulatedBroker) -> None:
    assert list(broker.iter_orders(status="open")) == []
    assert broker.counter.by_operation == {"list_orders": 1}


@pytest.mark.parametrize(("status", "page_size"), [("all", 10), ("open", 0), ("open", MAX_PAGE_SIZE + 1)])
def test_it_refuses_a_listing_alpaca_would_refuse(broker: SimulatedBroker, status: str, page_size: int) -> None:
    with pytest.raises(BrokerRejected):
        broker.iter_orders(status=status, page_size=page_size)
