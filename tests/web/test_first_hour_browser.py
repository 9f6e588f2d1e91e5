"""The first hour in a real browser (Chromium): the shell at 1280 px and on a phone (390 px), the
project settings with their delete block, and the maintenance form's once/recurring switch."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sentry_sdk
from playwright.sync_api import Browser, Page, expect

from tests.conftest import ProjectFixture, Server, make_project
from tests.web.conftest import Console, sentry
from tests.web.test_browser import log_in, shot


@pytest.fixture
def phone(browser: Browser, console: Console) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True, timezone_id="Europe/Paris")
    page = context.new_page()
    console.watch(page)
    yield page
    context.close()
    assert console.errors == []


def _with_issues(server: Server, name: str = "Checkout service (payments)") -> ProjectFixture:
    project = make_project(server, name)
    with sentry(project.dsn):
        for n in range(3):
            try:
                raise ValueError(f"card declined for order {n}")
            except ValueError:
                sentry_sdk.capture_exception()
    return project


def test_the_top_bar_stays_one_row_at_1280_px(page: Page, server: Server) -> None:
    project = _with_issues(server)
    log_in(page, server)
    page.goto(f"{server.url}/projects/{project.id}/issues")
    expect(page.locator(".issue-title").first).to_be_visible()
    height = page.locator("header.topbar").bounding_box()["height"]  # type: ignore[index]
    brand = page.locator(".brand").bounding_box()
    logout = page.get_by_label("Your account").bounding_box()
    shot(page, "first-hour-issues-1280")
    assert brand and logout and abs(brand["y"] - logout["y"]) < 20, (brand, logout)
    assert height <= 60, height
    tabs = page.get_by_role("navigation", name="Project")
    assert tabs.evaluate("el => el.scrollWidth <= el.clientWidth"), "the project tabs had to scroll at 1280 px"


def test_on_a_phone_the_first_issue_shows_without_scrolling_past_the_filters(phone: Page, server: Server) -> None:
    project = _with_issues(server)
    log_in(phone, server)
    phone.goto(f"{server.url}/projects/{project.id}/issues")
    first = phone.locator(".issue-title").first
    expect(first).to_be_visible()
    box = first.bounding_box()
    shot(phone, "first-hour-issues-390")
    assert box is not None and box["y"] < 420, box  # in the top half of the screen, not below 620 px of filters
    toggle = phone.get_by_role("button", name=re.compile("Filters"))
    expect(phone.locator(".issue-filters")).to_be_hidden()
    toggle.click()
    expect(phone.locator(".issue-filters")).to_be_visible()
    expect(phone.locator("#filterbar")).to_be_visible()
    shot(phone, "first-hour-issues-390-filters-open")


def test_the_maintenance_form_shows_the_fields_of_the_chosen_kind_and_saves_both(page: Page, server: Server) -> None:
    project = make_project(server, "Shop")
    log_in(page, server)
    page.goto(f"{server.url}/projects/{project.id}/status-pages")
    form = page.locator("#new-window")
    shot(page, "first-hour-maintenance-once-1280")
    expect(form.get_by_label(re.compile("^Starts"))).to_be_visible()
    expect(form.get_by_label(re.compile("^Cron"))).to_be_hidden()
    form.get_by_text("Recurring (cron)").click()
    expect(form.get_by_label(re.compile("^Starts"))).to_be_hidden()
    expect(form.get_by_label(re.compile("^Cron"))).to_be_visible()
    shot(page, "first-hour-maintenance-recurring-1280")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280, page.evaluate(
        "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 1280)"
        ".map(e => e.tagName + '.' + e.className + '#' + e.id)")
    form.get_by_label("Title").fill("Nightly backup")
    form.get_by_label(re.compile("^Cron")).fill("0 2 * * *")
    form.get_by_label(re.compile("^Duration")).fill("30")
    form.get_by_role("button", name="Schedule").click()
    expect(page.get_by_role("cell", name="Nightly backup")).to_be_visible()
    form = page.locator("#new-window")
    expect(form.get_by_label(re.compile("^Cron"))).to_be_hidden()  # back to "once" for the next one
    form.get_by_label("Title").fill("Database upgrade")
    # dates are typed and shown as 2030-01-02 22:00 whatever the browser's locale (no mm/dd/yyyy)
    starts = form.get_by_label(re.compile("^Starts"))
    expect(starts).to_have_attribute("type", "text")
    expect(starts).to_have_attribute("placeholder", "YYYY-MM-DD HH:MM")
    starts.fill("2030-01-02 22:00")
    form.get_by_label(re.compile("^Ends")).fill("2030-01-02 23:30")
    form.get_by_role("button", name="Schedule").click()
    expect(page.get_by_role("cell", name="Database upgrade")).to_be_visible()
    expect(page.get_by_text("next: 2030-01-02 22:00 \u2013 2030-01-02 23:30")).to_be_visible()
    shot(page, "first-hour-maintenance-saved-1280")
