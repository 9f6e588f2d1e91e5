"""The alerting pages in a real browser (Debian's Chromium driven by Playwright, launched as in
test_browser.py): create a threshold rule through the form with its back-test, silence an alert from
the alerts page, look at the routing and channels pages; light, dark and phone width. Screenshots go to
test-artifacts/web/alerting-*.png."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import Server, make_project
from tests.web.conftest import ADMIN_PASSWORD, ARTIFACTS, Console, ensure_admin
from tests.web.test_alerting_pages import (  # noqa: F401 - fixtures
    add_errors,
    alerting_server,
    alerts_of,
    clock,
    engine_of,
    rules_of,
    spike,
    wait_until,
)
from watchkeeper.alerting.silences import list_silences
from watchkeeper.lib.clock import ManualClock


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"alerting-{name}.png"), full_page=True)


def new_page(browser: Browser, console: Console, *, width: int = 1280,
             scheme: Literal["dark", "light"] = "light") -> Page:
    context = browser.new_context(viewport={"width": width, "height": 900}, timezone_id="Europe/Paris",
                                  color_scheme=scheme)
    page = context.new_page()
    console.watch(page)
    return page


@pytest.fixture
def pages(browser: Browser, console: Console) -> Iterator[list[Page]]:
    opened: list[Page] = []
    yield opened
    for page in opened:
        page.context.close()
    assert console.errors == []
    assert console.dialogs == []


def log_in(page: Page, server: Server) -> None:
    ensure_admin(server)
    page.goto(server.url + "/login")
    page.get_by_label("E-mail").fill(server.settings.admin_email)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(server.url + "/projects")


def test_a_threshold_rule_is_back_tested_and_created_and_an_alert_silenced_in_the_browser(
    alerting_server: Server, clock: ManualClock, browser: Browser, console: Console,  # noqa: F811
    pages: list[Page],
) -> None:
    server = alerting_server
    shop = make_project(server, "Shop")
    wait_until(lambda: len(rules_of(server, shop.id)) >= 5)
    for minutes_ago in (300, 299, 120):
        add_errors(engine_of(server), shop.id, clock.now() - minutes_ago * 60, 9)
    spike(server, clock, shop)

    page = new_page(browser, console)
    pages.append(page)
    log_in(page, server)
    page.goto(f"{server.url}/projects/{shop.id}/rules")
    expect(page.get_by_role("link", name="Error spike")).to_be_visible()
    page.get_by_role("link", name="New rule").click()
    page.wait_for_url(re.compile(r"/rules/new$"))
    expect(page.locator('fieldset[data-kind="event"]')).to_be_hidden()  # only the chosen kind's settings
    page.get_by_label("Name", exact=True).fill("Checkout errors")
    page.get_by_label("Severity", exact=True).select_option("critical")
    threshold = page.get_by_role("group", name=re.compile("^Threshold settings"))
    threshold.get_by_label("Metric", exact=True).select_option("errors")
    threshold.get_by_label("Aggregation", exact=True).select_option("count")
    threshold.get_by_label("Window (minutes)", exact=True).fill("1")
    threshold.get_by_label("Threshold", exact=True).fill("5")
    page.get_by_label("Summary", exact=True).fill("{{ value }} errors in a minute")
    page.get_by_role("button", name=re.compile("Back-test")).click()
    expect(page.locator("#backtest .backtest-table")).to_be_visible()
    expect(page.locator("#backtest-chart canvas")).to_have_count(1)  # uPlot drew the timeline
    expect(page.locator("#backtest")).to_contain_text("It would have fired 3 times")
    shot(page, "01-rule-form-backtest")

    threshold.get_by_label("Window (minutes)", exact=True).fill("0")
    page.get_by_role("button", name="Create rule").click()
    expect(page.locator("#rule-threshold-window-minutes-error")).to_contain_text("greater than or equal to 1")
    expect(page.get_by_label("Name", exact=True)).to_have_value("Checkout errors")  # the form comes back as typed
    # The browser logs the 422 answer (the status of a refused form); nothing else may complain.
    assert [e for e in console.errors if "status of 422" not in e] == []
    console.errors.clear()
    shot(page, "02-rule-form-error")
    threshold.get_by_label("Window (minutes)", exact=True).fill("1")
    page.get_by_role("button", name="Create rule").click()
    page.wait_for_url(re.compile(r"/rules\?saved="))
    expect(page.get_by_role("status")).to_have_text("Rule saved.")
    expect(page.get_by_role("link", name="Checkout errors")).to_be_visible()
    shot(page, "03-rules")

    page.get_by_role("navigation", name="Project").get_by_role("link", name="Alerts").click()
    page.wait_for_url(re.compile(r"/alerts$"))
    wait_until(lambda: any(a.labels["alertname"] == "Checkout errors" and a.state == "firing"
                           for a in alerts_of(server)))
    page.reload()
    firing = page.locator("#state-firing").locator("xpath=..")
    expect(firing).to_contain_text("Checkout errors")
    expect(firing).to_contain_text("Error spike")
    shot(page, "04-alerts")

    row = firing.locator("tr", has_text="Error spike")
    row.get_by_role("link", name="Silence this").click()
    page.wait_for_url(re.compile(r"/alerting/silences\?"))
    expect(page.get_by_label("Label name 1")).to_have_value("alertname")
    expect(page.get_by_label("Value 1")).to_have_value("Error spike")
    page.get_by_label("or lasts").fill("90m")
    page.get_by_label("Comment", exact=True).fill("Deploying the checkout fix")
    shot(page, "05-silence-form")
    page.get_by_role("button", name="Create silence").click()
    page.wait_for_url(re.compile(r"created="))
    active = page.locator("section.silence-state").first
    expect(active).to_contain_text("Deploying the checkout fix")
    expect(active.locator(".matching")).to_have_text("1")
    shot(page, "06-silences")
    with server.runtime.engine.connect() as conn:
        [silence] = list_silences(conn)
    assert silence.ends_at - silence.starts_at == 5400

    page.goto(f"{server.url}/projects/{shop.id}/alerts")
    expect(page.locator("#state-silenced")).to_contain_text("Silenced")
    page.goto(f"{server.url}/alerting/routing")
    page.get_by_label(re.compile("^Labels")).fill("alertname=Error spike\nseverity=critical\nproject=shop")
    page.get_by_role("button", name="Find the routes").click()
    expect(page.locator(".route.matched")).to_have_count(2)
    shot(page, "07-routing")
    page.goto(f"{server.url}/alerting/channels")
    page.get_by_role("button", name="Send test notification to hook").click()
    expect(page.get_by_role("status")).to_contain_text("Test notification queued for hook")
    shot(page, "08-channels")


@pytest.mark.parametrize("scheme, width", [("dark", 1280), ("light", 390)])
def test_the_alerting_pages_in_dark_mode_and_at_phone_width(
    alerting_server: Server, clock: ManualClock, browser: Browser, console: Console,  # noqa: F811
    pages: list[Page], scheme: Literal["dark", "light"], width: int,
) -> None:
    server = alerting_server
    shop = make_project(server, "Shop")
    wait_until(lambda: len(rules_of(server, shop.id)) >= 5)
    spike(server, clock, shop)
    page = new_page(browser, console, scheme=scheme, width=width)
    pages.append(page)
    log_in(page, server)
    name = f"{scheme}-{width}"
    for path, shot_name in ((f"/projects/{shop.id}/alerts", "alerts"), (f"/projects/{shop.id}/rules", "rules"),
                            (f"/projects/{shop.id}/rules/new", "rule-form"), ("/alerting/silences", "silences"),
                            ("/alerting/routing", "routing"), ("/alerting/channels", "channels")):
        page.goto(server.url + path)
        expect(page.locator("main h1")).to_be_visible()
        if shot_name == "rule-form":
            page.get_by_label("Name", exact=True).fill("Spike")
            page.get_by_role("group", name=re.compile("^Threshold settings")).get_by_label(
                "Threshold", exact=True).fill("5")
            page.get_by_role("button", name=re.compile("Back-test")).click()
            expect(page.locator("#backtest-chart canvas")).to_have_count(1)
        # Nothing wider than the screen except inside the boxes that scroll on purpose.
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, (path, overflow)
        shot(page, f"{name}-{shot_name}")
