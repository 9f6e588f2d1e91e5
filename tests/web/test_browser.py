"""The pages in a real browser: Debian's Chromium driven by Playwright.

One browser for the session; each test gets a fresh context and fails on any console error or
uncaught page error. Screenshots go to test-artifacts/web/ (printed at the end of the session).
"""

from __future__ import annotations

import re

import sentry_sdk
from playwright.sync_api import Browser, Page, expect

from tests.conftest import Server, make_project
from tests.web.conftest import ADMIN_PASSWORD, ARTIFACTS, Console, ensure_admin, sentry

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_ATTRIBUTE = '" onmouseover="alert(1)'


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(page: Page, server: Server) -> None:
    ensure_admin(server)
    page.goto(server.url + "/projects")
    assert "/login" in page.url
    shot(page, "01-login")
    page.get_by_label("E-mail").fill(server.settings.admin_email)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(server.url + "/projects")


class CheckoutFailed(Exception):
    pass


def _checkout(cart: dict[str, int]) -> None:
    total = sum(cart.values())
    raise CheckoutFailed(f"cart total {total} is over the limit")


def test_log_in_create_project_send_error_resolve_log_out(page: Page, server: Server) -> None:
    log_in(page, server)
    shot(page, "02-projects-empty")
    page.get_by_role("link", name="New project").first.click()
    page.get_by_label("Name").fill("Shop backend")
    page.get_by_role("button", name="Create project").click()
    page.wait_for_url(re.compile(r"/projects/\d+/setup$"))
    dsn = page.locator("#dsn-value").input_value()
    assert dsn.startswith("http://") and "@127.0.0.1" in dsn
    shot(page, "03-setup")

    page.get_by_role("navigation", name="Project").get_by_role("link", name="Issues").click()
    assert page.get_by_role("heading", name="Waiting for the first error in Shop backend").is_visible()
    with sentry(dsn):
        try:
            _checkout({"book": 12, "lamp": 40})
        except CheckoutFailed:
            assert sentry_sdk.capture_exception()

    page.reload()
    link = page.get_by_role("link", name=re.compile("CheckoutFailed: cart total 52 is over the limit"))
    assert link.is_visible()
    expect(page.locator("#spark-1 svg.spark polyline")).to_have_count(1)  # fetched after the list is shown
    shot(page, "04-issues")

    link.click()
    page.wait_for_url(re.compile(r"/issues/\d+"))
    assert page.get_by_role("heading", level=1).inner_text().endswith("CheckoutFailed: cart total 52 is over the limit")
    assert page.locator(".frame.in-app").count() >= 1
    assert page.locator("#occurrences canvas").count() >= 1  # uPlot drew the chart
    assert page.get_by_role("link", name="production").first.is_visible()
    shot(page, "05-issue")

    page.get_by_role("button", name="Resolve").click()
    page.wait_for_load_state()
    assert page.locator(".facts .badge.status").first.text_content() == "resolved"
    assert page.get_by_role("button", name="Unresolve").is_visible()
    shot(page, "06-issue-resolved")

    nav = page.get_by_role("navigation", name="Project")
    nav.get_by_role("link", name="Issues").click()
    assert page.get_by_text("No issues match these filters").is_visible()  # resolved: not in the default list
    page.get_by_label("resolved", exact=True).check()  # htmx swaps the results in place
    expect(page.get_by_role("link", name=re.compile("CheckoutFailed"))).to_be_visible()
    expect(page).to_have_url(re.compile(r"status=resolved"))
    page.get_by_label("7d", exact=True).check()
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"range=7d.*status=resolved|status=resolved.*range=7d"))
    page.locator("#select-all").check()
    assert page.locator('input[name="ids"]').first.is_checked()
    shot(page, "13-issues-resolved-7d")

    nav.get_by_role("link", name="Settings").click()
    page.get_by_label("Keep events for (days)").fill("30")
    page.get_by_role("button", name="Save settings").click()
    assert page.get_by_role("status").inner_text() == "Saved."
    shot(page, "11-settings")
    nav.get_by_role("link", name="Keys").click()
    assert page.locator("input[id^=dsn-]").first.input_value() == dsn
    shot(page, "12-keys")

    page.get_by_label("Your account").click()  # the account menu holds the log-out button
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/login"))
    page.goto(server.url + "/projects")
    assert "/login" in page.url  # the session is gone


def test_event_data_is_shown_as_text_never_run(page: Page, server: Server) -> None:
    project = make_project(server, "Hostile")

    def handler(comment: str) -> None:
        payload = {"title": XSS_ATTRIBUTE, "body": XSS_SCRIPT}  # noqa: F841 - sent as a frame variable
        raise ValueError(XSS_SCRIPT + comment)

    with sentry(project.dsn) as scope:
        scope.set_tag("customer", XSS_ATTRIBUTE)
        scope.add_breadcrumb(message=XSS_SCRIPT, category="ui" + XSS_ATTRIBUTE)
        try:
            handler(XSS_ATTRIBUTE)
        except ValueError:
            assert sentry_sdk.capture_exception()
        sentry_sdk.capture_message(XSS_SCRIPT + XSS_ATTRIBUTE)

    log_in(page, server)
    page.goto(f"{server.url}/projects/{project.id}/issues")
    assert page.get_by_text(XSS_SCRIPT + XSS_ATTRIBUTE).first.is_visible()
    shot(page, "07-hostile-issues")
    page.get_by_role("link", name=re.compile("ValueError")).click()
    page.wait_for_url(re.compile(r"/issues/\d+"))
    page.locator(".frame.in-app summary").first.hover()
    shot(page, "08-hostile-issue")

    assert page.evaluate("document.querySelectorAll('[onmouseover]').length") == 0
    assert page.evaluate("document.querySelectorAll('main script:not([type=\"application/json\"])').length") == 0
    text = page.locator("main").inner_text()
    assert XSS_SCRIPT in text and XSS_ATTRIBUTE in text
    for element in page.locator("text=" + XSS_ATTRIBUTE).all()[:5]:
        element.hover()


def assert_fits_the_screen(page: Page) -> None:
    """Nothing sticks out sideways on a 390 px phone (wide tables and the project tabs scroll inside their own box)."""
    wide = page.evaluate(
        "[...document.querySelectorAll('body *')]"
        ".filter(e => e.getBoundingClientRect().right > 391 && !e.closest('.scroll, .tabs'))"
        ".map(e => e.tagName + '.' + e.className)"
    )
    assert wide == [], f"wider than a 390px screen: {wide}"


def test_phone_width_dark_theme_and_keyboard(browser: Browser, server: Server, console: Console) -> None:
    project = make_project(server, "Mobile")
    with sentry(project.dsn) as scope:
        scope.add_breadcrumb(message="GET /api/v1/checkout/basket?with=a-long-query-string", category="httplib")
        sentry_sdk.capture_message("Checkout slow on phones")
    context = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark", is_mobile=True)
    page = context.new_page()
    console.watch(page)
    log_in(page, server)
    page.goto(f"{server.url}/projects/{project.id}/issues?range=7d")
    shot(page, "09-phone-dark-issues")
    assert_fits_the_screen(page)
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 18, 22)"

    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.locator("#theme-toggle").click()  # auto -> light
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    page.get_by_role("link", name="Checkout slow on phones").click()
    page.wait_for_url(re.compile(r"/issues/\d+"))
    shot(page, "10-phone-light-issue")
    assert_fits_the_screen(page)
    context.close()
    assert console.errors == []


def test_account_page_and_audit_log(page: Page, server: Server) -> None:
    make_project(server, "Billing")
    log_in(page, server)
    page.get_by_label("Your account").click()
    page.get_by_role("link", name="Your account and API tokens").click()
    page.wait_for_url(server.url + "/account")
    page.get_by_label("IANA name, like Europe/Paris").fill("Asia/Tokyo")
    page.get_by_role("button", name="Save time zone").click()
    assert page.get_by_role("status").inner_text() == "Time zone saved."
    page.get_by_label("Token name").fill(XSS_SCRIPT)
    page.get_by_label("Read-only").check()
    page.get_by_label("Billing").check()
    page.get_by_role("button", name="Create token").click()
    assert page.locator("#new-token").input_value().startswith("wk_")
    assert page.get_by_role("cell", name=XSS_SCRIPT).is_visible()
    assert page.get_by_role("cell", name="read-only; projects: Billing").is_visible()
    shot(page, "14-account")

    page.get_by_role("link", name="Admin", exact=True).click()
    page.wait_for_url(server.url + "/admin/users")
    page.get_by_label("E-mail").fill("ann@example.com")
    page.get_by_role("button", name="Create user").click()
    assert len(page.locator("#one-time-password").input_value()) >= 16
    shot(page, "15-admin-users")
    page.get_by_role("navigation", name="Administration").get_by_role("link", name="Teams").click()
    page.get_by_label("New team name").fill("Payments")
    page.get_by_role("button", name="Create team").click()
    team = page.locator("section.card", has=page.get_by_role("heading", name="Payments"))
    team.get_by_label("User to add to Payments").select_option(label="ann@example.com")
    team.get_by_role("button", name="Add member").click()
    team.get_by_label("Project for Payments").select_option(label="Billing")
    team.get_by_role("button", name="Add project").click()
    assert team.get_by_text("ann@example.com").is_visible() and team.get_by_role("link", name="Billing").is_visible()
    shot(page, "16-admin-teams")
    page.get_by_role("navigation", name="Administration").get_by_role("link", name="Audit log").click()
    rows = page.locator("table.audit tbody tr")
    expect(rows).to_have_count(5)
    assert "team.project_add" in rows.first.inner_text()  # newest first
    assert XSS_SCRIPT in page.locator("main").inner_text()  # the token's name, as text
    shot(page, "17-audit-log")

    page.set_viewport_size({"width": 390, "height": 844})
    for path, name in (("/account", "18-phone-account"), ("/admin/users", "19-phone-admin-users"),
                       ("/admin/teams", "20-phone-admin-teams"), ("/admin/audit", "21-phone-audit-log")):
        page.goto(server.url + path)
        shot(page, name)
        assert_fits_the_screen(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
