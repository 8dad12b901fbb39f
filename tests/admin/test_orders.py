"""Orders in the admin: read-only, filtered on indexes, cancelled through order_cancel, fast with many rows."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.models import Order, OrderTransition
from tests.admin.conftest import logged_in, make_orders
from tests.jobs.helpers import working_book

pytestmark = pytest.mark.django_db
LIST = "/admin/orders/order/"


def listed(client, query: str = "") -> list[str]:
    page = client.get(LIST + query).content.decode()
    return re.findall(r'<td class="field-client_order_id">([^<]+)</td>', page)


def test_it_filters_by_status_strategy_symbol_and_date(officer_client, alpha, beta):
    make_orders(alpha, 2, prefix="a-filled")
    make_orders(alpha, 1, status="submitted", prefix="a-working")
    make_orders(beta, 1, symbol="MSFT", prefix="b-msft")
    old = make_orders(beta, 1, prefix="b-old")[0]
    Order.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=40))

    assert listed(officer_client, "?status__exact=submitted") == ["a-working-0"]
    assert sorted(listed(officer_client, f"?strategy__id__exact={beta.pk}")) == ["b-msft-0", "b-old-0"]
    assert listed(officer_client, "?symbol=msft") == ["b-msft-0"]
    past_week = re.search(r'href="(\?created_at__gte=[^"]+)">Past 7 days', officer_client.get(LIST).content.decode())
    assert sorted(listed(officer_client, past_week.group(1).replace("&amp;", "&"))) == [
        "a-filled-0", "a-filled-1", "a-working-0", "b-msft-0"
    ]


def test_it_finds_an_order_by_its_exact_client_or_broker_order_id(officer_client, alpha):
    make_orders(alpha, 12)

    assert listed(officer_client, "?q=o-11") == ["o-11"]
    assert listed(officer_client, "?q=o-broker-3") == ["o-3"]
    assert listed(officer_client, "?q=o-1") == ["o-1"]  # exact, not "starts with"


def test_it_shows_the_transition_history_read_only(officer_client, alpha):
    order = make_orders(alpha, 1, status="filled")[0]
    OrderTransition.objects.create(order=order, from_status="", to_status="pending", actor_label="alice")
    OrderTransition.objects.create(order=order, from_status="pending", to_status="filled", actor_label="job:order_sync",
                                   reason="broker says filled")

    page = officer_client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()

    assert "transition history" in page.lower()
    assert "broker says filled" in page and "job:order_sync" in page
    assert 'name="transitions-0-reason"' not in page  # read-only: no inputs
    assert 'type="submit" value="Save"' not in page


def test_nobody_adds_changes_or_deletes_an_order_by_hand(alpha):
    order = make_orders(alpha, 1, status="submitted")[0]
    root = logged_in(get_user_model().objects.create_superuser("root", "root@example.com", "x" * 14))

    assert root.get(LIST + "add/").status_code == 403
    assert root.post(f"{LIST}{order.pk}/change/", {"symbol": "MSFT"}).status_code == 403
    assert root.post(f"{LIST}{order.pk}/delete/", {"post": "yes"}).status_code == 403
    order.refresh_from_db()
    assert order.symbol == "AAPL" and order.status == "submitted"


def test_it_cancels_a_working_order_through_order_cancel_with_a_reason(officer, officer_client, alpha, market):
    order = working_book(alpha, 1)[0]

    page = officer_client.get(f"{LIST}{order.pk}/change/").content.decode()
    response = officer_client.post(f"{LIST}{order.pk}/cancel/", {"reason": "stale quote"}, follow=True)

    assert f'href="{LIST}{order.pk}/cancel/"' in page
    order.refresh_from_db()
    assert order.status in {"pending_cancel", "cancelled"}
    transition = order.transitions.get(to_status="pending_cancel")
    assert transition.actor == officer and transition.reason == "stale quote"
    assert "Cancel requested" in response.content.decode()


def test_the_cancel_action_confirms_with_a_reason_then_cancels_the_working_orders(officer_client, alpha, market):
    book = working_book(alpha, 3)
    done = make_orders(alpha, 1, status="filled", prefix="done")[0]
    selected = [str(o.pk) for o in book[:2]] + [str(done.pk)]
    action = {"action": "cancel_orders", "index": "0", "_selected_action": selected}

    confirm = officer_client.post(LIST, action).content.decode()
    officer_client.post(LIST, {**action, "confirm": "yes", "reason": "too close to the close"})

    assert "Request cancel of 2 working orders?" in confirm
    statuses = dict(Order.objects.values_list("client_order_id", "status"))
    assert statuses[book[0].client_order_id] != "submitted" and statuses[book[1].client_order_id] != "submitted"
    assert statuses[book[2].client_order_id] == "submitted"  # not selected
    assert statuses["done-0"] == "filled"


def test_an_auditor_cannot_cancel_an_order(auditor_client, alpha, market):
    order = working_book(alpha, 1)[0]

    page = auditor_client.get(f"{LIST}{order.pk}/change/").content.decode()
    by_button = auditor_client.post(f"{LIST}{order.pk}/cancel/", {"reason": "forged"})
    by_action = auditor_client.post(
        LIST, {"action": "cancel_orders", "index": "0", "_selected_action": [str(order.pk)], "confirm": "yes",
               "reason": "forged"},
    )

    assert "Cancel order" not in page
    assert by_button.status_code == 403 and by_action.status_code == 403
    order.refresh_from_db()
    assert order.status == "submitted" and not order.transitions.exists()


def test_a_forged_cancel_is_refused_and_changes_nothing(forgers, alpha, market):
    order = working_book(alpha, 1)[0]
    for who, client in forgers.items():
        assert client.post(f"{LIST}{order.pk}/cancel/", {"reason": "forged"}).status_code == 403, who
        response = client.post(LIST, {"action": "cancel_orders", "index": "0", "_selected_action": [str(order.pk)],
                                      "confirm": "yes", "reason": "forged"})
        assert response.status_code == 403, who
    order.refresh_from_db()
    assert order.status == "submitted"


# --- A million orders -----------------------------------------------------------------


def queries_for_the_list(client, query: str = "") -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(LIST + query).status_code == 200
    return [q["sql"] for q in captured.captured_queries]


@pytest.mark.parametrize("query", ["", "?status__exact=filled", "?symbol=AAPL&strategy__id__exact={alpha}", "?q=o-3"])
def test_the_order_list_runs_the_same_queries_for_10_and_200_orders(officer_client, alpha, beta, query):
    query = query.format(alpha=alpha.pk)
    make_orders(alpha, 10)
    small = queries_for_the_list(officer_client, query)
    make_orders(beta, 190, prefix="more")
    large = queries_for_the_list(officer_client, query)

    assert len(small) == len(large)
    assert len(large) <= 12


def test_the_order_list_never_counts_the_orders_table(officer_client, alpha):
    make_orders(alpha, 200)

    for query in ["", "?status__exact=filled", "?p=2"]:
        sql = queries_for_the_list(officer_client, query)
        counts = [s for s in sql if "COUNT(" in s.upper() and "orders_order" in s]
        assert counts == [], counts


def test_the_order_list_pages_with_previous_and_next_links(officer_client, alpha):
    make_orders(alpha, 150)

    first = officer_client.get(LIST).content.decode()
    second = officer_client.get(LIST + "?p=2").content.decode()

    assert "Rows 1–100 (page 1)" in first and 'rel="next"' in first and 'rel="prev"' not in first
    assert "Rows 101–150 (page 2)" in second and 'rel="prev"' in second and 'rel="next"' not in second
    assert "Show all" not in first


def test_a_pending_cancel_order_keeps_its_cancel_button_and_asking_again_sends_the_cancel(
    officer_client, alpha, market
):
    """adr/0011: the admin no longer hides pending_cancel orders from its cancel action; asking again re-sends."""
    from brokers.models import SimOrder

    order = working_book(alpha, 1)[0]
    Order.objects.filter(pk=order.pk).update(status="pending_cancel")  # its first cancel was lost

    page = officer_client.get(f"{LIST}{order.pk}/change/").content.decode()
    officer_client.post(f"{LIST}{order.pk}/cancel/", {"reason": "still working at the broker"}, follow=True)

    assert f'href="{LIST}{order.pk}/cancel/"' in page
    assert "Cancel (driven by the status sync until the broker confirms)" in page
    assert SimOrder.objects.get(client_order_id=order.client_order_id).status == "canceled"
    order.refresh_from_db()
    assert order.status == "cancelled" and order.cancel_attempts == 1


def test_the_cancel_action_includes_pending_cancel_orders(officer_client, alpha, market):
    from brokers.models import SimOrder

    book = working_book(alpha, 2)
    Order.objects.filter(pk=book[0].pk).update(status="pending_cancel")
    action = {"action": "cancel_orders", "index": "0", "_selected_action": [str(o.pk) for o in book]}

    confirm = officer_client.post(LIST, action).content.decode()
    officer_client.post(LIST, {**action, "confirm": "yes", "reason": "stop both"})

    assert "Request cancel of 2 working orders?" in confirm
    assert set(SimOrder.objects.values_list("status", flat=True)) == {"canceled"}


def test_an_officer_sees_when_an_order_was_closed_as_never_received_and_its_late_truth_row(
    officer_client, alpha, market
):
    from decimal import Decimal

    from brokers.models import SimOrder
    from orders import services

    sent = timezone.now() - dt.timedelta(minutes=10)
    order = Order.objects.create(
        client_order_id="late-admin", strategy=alpha, symbol="AAPL", side="buy", qty=Decimal("2"), type="market",
        fingerprint="x", status="unknown", created_at=sent, sent_at=sent,
    )
    services.orders_sync()  # past the horizon, not found: closed as never received
    closed = officer_client.get(f"{LIST}{order.pk}/change/").content.decode().lower()
    assert "closed as never received" in closed
    assert timezone.now().strftime("%Y-%m-%d") in closed.split("closed as never received")[1][:400]

    now = timezone.now()
    SimOrder.objects.create(client_order_id="late-admin", symbol="AAPL", side="buy", qty=Decimal("2"), type="market",
                            time_in_force="day", status="filled", filled_qty=Decimal("2"),
                            filled_avg_price=Decimal("100"), submitted_at=now, updated_at=now)
    services.orders_sync()

    adopted = officer_client.get(f"{LIST}{order.pk}/change/").content.decode()
    assert "late truth: broker shows filled" in adopted
