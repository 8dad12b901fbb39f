"""Playwright driving Debian's Chromium (never a downloaded browser) against pytest-django's live server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connections

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
PASSWORD = "correct horse battery staple"  # tests.factories.UserFactory's


def chromium(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """One Chromium per test (half a second): Playwright's sync API keeps an event loop
    running in this thread while it lives, which Django's ORM refuses to share unless
    DJANGO_ALLOW_ASYNC_UNSAFE is set; scoping both to the test keeps every other test safe."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/ensure-chromium.sh)", pytrace=False)
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
            # Inside sync_playwright the test runs in a greenlet whose context gives Django a
            # database connection of its own (asgiref's Local is context-local). Close it here,
            # or it outlives the test and PostgreSQL refuses to drop the test database.
            connections.close_all()


def new_page(browser, *, width: int = 1440, height: int = 1000):
    context = browser.new_context(viewport={"width": width, "height": height}, color_scheme="light")
    context.set_default_timeout(10_000)
    return context.new_page()


def log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
