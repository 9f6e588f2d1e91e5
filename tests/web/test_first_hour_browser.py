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


def test_project_settings_errors_and_deleting_a_project_in_the_browser(
    page: Page, server: Server, console: Console
) -> None:
    from tests.conftest import make_user

    keep = make_project(server, "Checkout")
    doomed = make_project(server, "Old shop")
    make_project(server, "Checkout", team="Search")  # same name, another team: the switcher tells them apart
    log_in(page, server)
    page.goto(f"{server.url}/projects")
    page.locator(".switcher summary").click()
    expect(page.locator(".switcher").get_by_text("Search")).to_be_visible()
    shot(page, "first-hour-projects-switcher-1280")
    page.goto(f"{server.url}/projects/{keep.id}/settings")
    page.get_by_label(re.compile("^Keep events for")).fill("forever")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#e-retention_days")).to_have_text("a whole number from 1 to 3,650, or empty")
    expect(page.get_by_label(re.compile("^Keep events for"))).to_have_value("forever")
    # The browser logs the 422 answer (the status of a refused form); nothing else may complain.
    assert [e for e in console.errors if "status of 422" not in e] == []
    console.errors.clear()
    shot(page, "first-hour-settings-errors-1280")
    page.goto(f"{server.url}/projects/{doomed.id}/settings")
    page.get_by_label(re.compile("to confirm")).fill("Old shop")
    page.get_by_role("button", name="Delete project").click()
    page.wait_for_url(re.compile(r"/projects\?deleted="))
    expect(page.get_by_role("status")).to_have_text("Project “Old shop” deleted.")
    shot(page, "first-hour-projects-deleted-1280")
    _, email = make_user(server, role="member", team=None)
    page.get_by_label("Your account").click()
    page.get_by_role("button", name="Log out").click()
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill("password-123")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("You are in no team yet.")).to_be_visible()
    shot(page, "first-hour-teamless-1280")


def test_changed_pages_on_a_phone(phone: Page, server: Server) -> None:
    project = make_project(server, "Checkout service (payments)")
    log_in(phone, server)
    for path, name in ((f"/projects/{project.id}/settings", "settings"), ("/projects", "projects"),
                       (f"/projects/{project.id}/status-pages", "maintenance"), ("/alerting/silences", "silences")):
        phone.goto(server.url + path)
        shot(phone, f"first-hour-{name}-390")
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390, path
    phone.get_by_label("Your account").click()
    expect(phone.get_by_role("button", name="Log out")).to_be_visible()
    shot(phone, "first-hour-account-menu-390")


def test_a_one_time_password_leads_to_the_password_form_in_the_browser(page: Page, server: Server) -> None:
    from watchkeeper.auth.users import create_user
    from watchkeeper.store.engine import for_writing

    with for_writing(server.runtime.engine).begin() as conn:
        create_user(conn, "new@example.com", "one-time-pass-1", role="member", now=server.runtime.clock.now(),
                    one_time=True)
    page.goto(server.url + "/login")
    page.get_by_label("E-mail").fill("new@example.com")
    page.get_by_label("Password").fill("one-time-pass-1")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(server.url + "/account?change=required")
    expect(page.locator("#change-required")).to_contain_text("one-time password")
    shot(page, "first-hour-one-time-password-1280")
    page.get_by_label("Current password").fill("one-time-pass-1")
    page.get_by_label(re.compile("^New password \\(")).fill("my-own-password-1")
    page.get_by_label("New password again").fill("my-own-password-1")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_contain_text("Password changed")
    page.goto(server.url + "/projects")
    expect(page).to_have_url(server.url + "/projects")


def test_the_override_form_error_in_the_browser(page: Page, server: Server, console: Console) -> None:
    log_in(page, server)
    page.goto(server.url + "/oncall/new")
    page.get_by_label("Name").fill("Ops")
    page.locator("[name=users_0]").fill(server.settings.admin_email)
    page.locator("[name=start_date_0]").fill("2026-03-20")
    page.get_by_role("button", name=re.compile("Create|Save")).click()
    page.wait_for_url(re.compile(r"/oncall/\d+$"))
    form = page.locator("#new-override")
    form.locator("[name=starts_at]").fill("2026-03-27 12:00")
    form.locator("[name=ends_at]").fill("2026-03-27 09:00")
    form.get_by_role("button", name="Add override").click()
    expect(page.locator("#e-ends_at")).to_have_text("must be after the start")
    assert [e for e in console.errors if "status of 422" not in e] == []
    console.errors.clear()
    shot(page, "first-hour-override-error-1280")
    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "first-hour-override-error-390")
