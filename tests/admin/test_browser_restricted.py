"""An officer keeps the restricted list in a real browser: restrict a symbol, see an order denied, lift it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders import services as order_services
from risk.models import RestrictedSymbol, RiskEvent, RiskEventKind
from tests.admin.browser import log_in, new_page, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def submit(alice, alpha):
    request = order_services.OrderRequest(strategy=alpha, symbol="NVDA", side="buy", qty=Decimal("1"), type="market")
    return order_services.order_submit(acting_user=alice, request=request).order


def test_an_officer_restricts_a_symbol_and_lifts_it_in_the_browser(browser, live_server, officer, alice, alpha, market):
    from playwright.sync_api import expect

    expect.set_options(timeout=8_000)
    page = new_page(browser)
    log_in(page, live_server, "olivia")

    page.goto(f"{live_server.url}/admin/risk/restrictedsymbol/")
    page.click("text=Add restricted symbol")
    page.fill("#id_symbol", "nvda")
    page.click("input[name=_save]")
    expect(page.locator(".errorlist")).to_contain_text("A reason is required to restrict a symbol.")
    page.fill("#id_reason", "research embargo until Friday")
    page.click("input[name=_save]")
    expect(page.locator("#result_list")).to_contain_text("NVDA")
    expect(page.locator("#result_list")).to_contain_text("research embargo until Friday")
    screenshot(page, "restricted-list")

    denied = submit(alice, alpha)
    assert [v["code"] for v in denied.violations] == ["restricted_symbol"]

    page.click("#result_list >> text=NVDA")
    expect(page.locator("#audit-trail")).to_contain_text("research embargo until Friday")
    page.click("text=Remove from the restricted list")
    page.fill("textarea[name=reason]", "embargo lifted")
    page.click('[data-confirm="remove"]')
    expect(page.locator(".messagelist")).to_contain_text("NVDA removed from the restricted list")
    expect(page.locator("#content")).not_to_contain_text("NVDA")

    assert not RestrictedSymbol.objects.exists()
    assert list(RiskEvent.objects.order_by("at", "id").values_list("kind", "reason")) == [
        (RiskEventKind.RESTRICTED_SYMBOL_ADDED, "research embargo until Friday"),
        (RiskEventKind.RESTRICTED_SYMBOL_REMOVED, "embargo lifted"),
    ]
    assert submit(alice, alpha).status == "submitted"
