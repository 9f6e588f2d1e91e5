"""The public status page in a real browser (Debian's chromium): no login, no console errors."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import ProjectFixture, Server, run_server
from tests.uptime.conftest import HttpTarget
from tests.uptime.test_status_pages import make_page, record
from tests.web.test_browser import shot
from watchkeeper.config import Settings


@pytest.fixture
def server(settings: Settings) -> Iterator[Server]:
    uptime = settings.uptime.model_copy(update={"status_page_cache_seconds": 0, "scheduler": False})
    with run_server(settings.model_copy(update={"uptime": uptime})) as running:
        yield running


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    yield context.new_page()
    context.close()


def test_status_page_in_a_browser(server: Server, api: httpx.Client, project: ProjectFixture,
                                  http_target: HttpTarget, page: Page) -> None:
    _, ids = make_page(api, project, http_target)
    now = server.runtime.clock.now()
    for monitor_id in ids:
        record(server, monitor_id, True, now)
    record(server, ids[0], False, now + 1, "status 500")
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(f"{server.url}/status/acme")
    expect(page).to_have_title("Acme <Services> status")
    expect(page.locator("#overall")).to_have_text("Some systems are down")
    expect(page.locator(".component")).to_have_count(2)
    expect(page.locator(".component").first).to_have_attribute("data-status", "down")
    expect(page.locator(".component").first.locator(".bars span")).to_have_count(90)
    expect(page.locator(".incident").first).to_contain_text("Website is experiencing issues")
    # The style sheet is allowed by the page's strict policy ('self'): the banner is red.
    expect(page.locator("#overall")).to_have_css("background-color", "rgb(209, 45, 32)")
    shot(page, "status-page")
    assert errors == []
