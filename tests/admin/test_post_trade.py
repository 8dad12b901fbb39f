"""What a risk officer sees after the orders are in: valued positions, P&L per strategy, the fills blotter, CSV."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

from orders.models import Fill, Order, Position
from risk.models import RiskEvent, RiskEventKind
from risk.services import equity_record
from tests.admin.conftest import make_orders

pytestmark = pytest.mark.django_db


@pytest.fixture
def book(alpha, beta, market):
    """Equity $200,000. alpha: long 1,234.5 AAPL @ $95.125 (last $100), sold MSFT today for +$1,500. beta: flat."""
    equity_record(equity=Decimal("200000"), day_start_equity=Decimal("200000"), job="test")
    order = make_orders(alpha, 1, symbol="MSFT", prefix="sold")[0]
    Position.objects.create(strategy=alpha, symbol="AAPL", qty=Decimal("1234.5"), avg_price=Decimal("95.125"))
    Position.objects.create(strategy=alpha, symbol="MSFT", qty=Decimal("0"), realized_pnl=Decimal("1500"))
    Position.objects.create(strategy=beta, symbol="SPY", qty=Decimal("0"), realized_pnl=Decimal("-20"))
    Fill.objects.create(order=order, strategy=alpha, symbol="MSFT", side="sell", qty=Decimal("10"),
                        price=Decimal("400"), cumulative_qty=Decimal("10"), realized_pnl=Decimal("1500"))
    return order


def _csv(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment; filename=")
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_positions_are_valued_with_dollars_separators_and_no_trailing_zeros(officer_client, book):
    page = officer_client.get("/admin/orders/position/?open=yes").content.decode()

    assert '<td class="field-quantity">1234.5</td>' in page
    assert '<td class="field-average_price">$95.12</td>' in page
    assert '<td class="field-last_price">$100.00</td>' in page
    assert '<td class="field-market_value">$123,450.00</td>' in page
    assert '<td class="field-unrealised">+$6,018.19</td>' in page  # (100 - 95.125) x 1234.5
    assert '<td class="field-pct_of_equity">61.72 %</td>' in page


def test_the_positions_page_shows_each_positions_concentration_against_the_limit(officer_client, book, beta):
    Position.objects.create(strategy=beta, symbol="AAPL", qty=Decimal("-100"), avg_price=Decimal("101"))

    page = officer_client.get("/admin/orders/position/?open=yes").content.decode()

    # alpha's $123,450 of AAPL is over the 30 % limit of $200,000 equity: highlighted.
    assert '<td class="field-concentration"><span class="bo-badge bo-breach">61.7 % of 30 %</span></td>' in page
    # beta's short $10,000 counts by its size, under the limit: plain.
    assert '<td class="field-concentration">5.0 % of 30 %</td>' in page


def test_the_positions_page_shows_pnl_per_strategy_today_and_since_inception(officer_client, book):
    page = officer_client.get("/admin/orders/position/").content.decode()

    alpha = page[page.index('data-strategy="alpha"'):].split("</tr>")[0]
    beta = page[page.index('data-strategy="beta"'):].split("</tr>")[0]
    # open, realised today, unrealised, today, realised since inception, since inception
    assert [cell.split("<")[0] for cell in alpha.split("<td")[2:]] == [
        ">1", ">+$1,500.00", ">+$6,018.19", ">+$7,518.19", ">+$1,500.00", ">+$7,518.19"
    ]
    assert "-$20.00" in beta


def test_the_fills_blotter_reads_like_a_trader_writes(officer_client, book):
    page = officer_client.get("/admin/orders/fill/").content.decode()

    assert '<td class="field-execution">Sell 10 MSFT</td>' in page
    assert '<td class="field-price_display">$400.00</td>' in page
    assert '<td class="field-value">$4,000.00</td>' in page
    assert '<td class="field-realised">+$1,500.00</td>' in page


def test_orders_export_as_csv_with_the_lists_filters(officer_client, alpha, beta):
    make_orders(alpha, 3, status="filled", prefix="a")
    make_orders(beta, 2, status="submitted", prefix="b")

    rows = _csv(officer_client.get("/admin/orders/order/export.csv?status__exact=submitted"))

    assert [r["client_order_id"] for r in rows] == ["b-0", "b-1"]
    assert rows[0]["strategy"] == "beta" and rows[0]["qty"] == "1" and rows[0]["status"] == "submitted"
    assert 'href="/admin/orders/order/export.csv?status__exact=submitted"' in officer_client.get(
        "/admin/orders/order/?status__exact=submitted"
    ).content.decode()


def test_fills_and_risk_events_export_as_csv(officer_client, book):
    RiskEvent.objects.create(kind=RiskEventKind.LIMIT_UPDATED, actor_label="olivia", reason="=HYPERLINK(1)",
                             old={"max_notional": "50000"}, new={"max_notional": "25000"})

    fills = _csv(officer_client.get("/admin/orders/fill/export.csv"))
    events = _csv(officer_client.get("/admin/risk/riskevent/export.csv?kind__exact=limit_updated"))

    assert [(f["symbol"], f["side"], f["qty"], f["price"], f["value"], f["realized_pnl"]) for f in fills] == [
        ("MSFT", "sell", "10", "400", "4000", "1500")
    ]
    assert fills[0]["client_order_id"] == book.client_order_id
    assert [(e["kind"], e["actor"], e["old"], e["new"]) for e in events] == [
        ("limit_updated", "olivia", '{"max_notional": "50000"}', '{"max_notional": "25000"}')
    ]
    assert events[0]["reason"] == "'=HYPERLINK(1)"  # a spreadsheet reads it as text, not as a formula


def test_an_export_needs_the_lists_view_permission(stan_client, alice_client, book):
    assert stan_client.get("/admin/orders/fill/export.csv").status_code == 403
    assert alice_client.get("/admin/orders/fill/export.csv").status_code == 302  # not staff: to the login page
    assert not Order.objects.filter(client_order_id__startswith="x").exists()


def test_the_audit_trail_shows_values_as_people_read_them(officer, officer_client, alpha):
    from risk.services import killswitch_activate, killswitch_reset

    killswitch_activate(acting_user=officer, strategy=alpha, reason="drill")
    killswitch_reset(acting_user=officer, strategy=alpha, reason="drill over")

    page = officer_client.get("/admin/risk/riskevent/").content.decode()
    trail = page[page.index('id="result_list"'):].split("</table>")[0]

    assert "True" not in trail and "False" not in trail
    assert "Active</span> yes → <strong>no</strong>" in page
    assert "ACTOR LABEL" not in page.upper().replace("ACTOR_LABEL", "")
    assert '<th scope="col" class="column-who">' in page
