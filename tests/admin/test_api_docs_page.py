"""The README's "log in, then open /v1/docs" works in a browser, with nothing fetched from outside.

The docs page runs with the officer's session (it can call the kill switch),
so Swagger UI is served by the back office itself (drf-spectacular-sidecar),
never from a CDN: it also works on a machine with no internet access.
"""

import pytest

from tests.admin.browser import log_in, new_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_logged_in_officer_sees_the_api_docs_with_nothing_loaded_from_another_host(browser, live_server, officer):
    page = new_page(browser)
    elsewhere: list[str] = []
    page.on("request", lambda r: None if r.url.startswith((live_server.url, "data:")) else elsewhere.append(r.url))
    log_in(page, live_server, officer.username)

    page.goto(f"{live_server.url}/v1/docs")
    page.wait_for_selector(".swagger-ui .opblock-summary-path", timeout=15_000)

    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/v1/orders" in p for p in paths) and any("/v1/controls/kill-switch" in p for p in paths), paths
    assert elsewhere == []
