"""Channels and routes in a real browser (Debian's Chromium driven by Playwright): on a fresh install the
admin follows the banner, adds a webhook channel, sends it a test notification (delivered to a local HTTP
receiver), and adds a route that sends critical alerts to it; an alert posted like Prometheus does then
reaches the receiver. Screenshots go to test-artifacts/web/notify-*.png."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.alerting.receivers import HttpReceiver
from tests.conftest import Server, make_token
from tests.web.conftest import ARTIFACTS, Console
from tests.web.test_alerting_pages_browser import log_in, new_page, pages  # noqa: F401 - fixture


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"notify-{name}.png"), full_page=True)


def test_a_webhook_channel_and_a_route_are_created_in_the_browser(
    fast_server: Server, receiver: HttpReceiver, browser: Browser, console: Console,
    pages: list[Page],  # noqa: F811
) -> None:
    page = new_page(browser, console)
    pages.append(page)
    log_in(page, fast_server)
    banner = page.locator(".setup-banner")
    expect(banner).to_contain_text("Alerts reach no one yet")
    shot(page, "banner")
    banner.get_by_role("link", name="Add a notification channel").click()
    page.wait_for_url("**/alerting/channels/new")

    page.get_by_label("Name", exact=True).fill("ops-webhook")
    page.get_by_label("Kind").select_option("webhook")
    expect(page.locator('fieldset[data-kind="email"]')).to_be_hidden()  # only the chosen kind's settings
    webhook = page.locator('fieldset[data-kind="webhook"]')
    webhook.get_by_label("URL", exact=True).fill(f"{receiver.url}/hooks/T0/secret-token")
    webhook.get_by_label("HMAC secret").fill("sign-me")
    shot(page, "channel-form")
    page.get_by_role("button", name="Add channel").click()
    page.wait_for_url("**/alerting/channels?done=channel-added")
    expect(page.get_by_role("status")).to_contain_text("Channel added.")
    # The channel exists but no route uses it yet: the banner now leads to the routing tree.
    expect(page.locator(".setup-banner")).to_contain_text("no route sends them to a channel")
    shot(page, "banner-route")
    expect(page.locator("body")).not_to_contain_text("secret-token")

    page.get_by_role("button", name="Send test notification to ops-webhook").click()
    (test,) = receiver.wait_for(1)
    assert test.path == "/hooks/T0/secret-token" and test.json()["receiver"] == "ops-webhook"
    page.reload()
    expect(page.locator(".receiver", has_text="ops-webhook").locator(".badge.delivery.sent")).to_have_count(1)
    shot(page, "channels")

    page.get_by_role("link", name="Routing").first.click()
    page.wait_for_url("**/alerting/routing")
    page.get_by_role("link", name="Add a child route to the root route").click()
    page.get_by_label("Matchers").fill('severity="critical"')
    page.get_by_label("Channel").select_option("ops-webhook")
    page.get_by_label("Group wait").fill("soon")
    page.get_by_role("button", name="Add route").click()
    expect(page.locator("#route-group_wait-error")).to_contain_text("not a duration")
    expect(page.get_by_label("Matchers")).to_have_value('severity="critical"')  # the input is kept
    shot(page, "route-form-error")
    # The form came back with 422, which Chromium reports on the console: expected here, and only that.
    assert console.errors == ["console error: Failed to load resource: the server responded with a status of 422 "
                              "(Unprocessable Entity)"]
    console.errors.clear()
    page.get_by_label("Group wait").fill("0s")
    page.get_by_role("button", name="Add route").click()
    page.wait_for_url("**/alerting/routing?done=route-added")
    child = page.locator(".route-children .route-box")
    expect(child).to_contain_text('severity="critical"')
    expect(child).to_contain_text("ops-webhook")
    shot(page, "routing")
    page.goto(f"{fast_server.url}/projects")
    expect(page.get_by_role("heading").first).to_be_visible()
    expect(page.locator(".setup-banner")).to_have_count(0)  # a route sends alerts to a channel now

    token = make_token(fast_server)
    posted = httpx.post(f"{fast_server.url}/api/v2/alerts", headers={"Authorization": f"Bearer {token}"},
                        json=[{"labels": {"alertname": "DiskFull", "severity": "critical"}}])
    assert posted.status_code == 200
    (_, alert) = receiver.wait_for(2)
    assert alert.json()["alerts"][0]["labels"]["alertname"] == "DiskFull"


@pytest.mark.parametrize(("scheme", "width"), [("dark", 1280), ("light", 390)])
def test_the_channel_and_route_forms_in_dark_mode_and_at_phone_width(
    fast_server: Server, browser: Browser, console: Console, pages: list[Page], scheme: str,  # noqa: F811
    width: int,
) -> None:
    page = new_page(browser, console, width=width, scheme=scheme)  # type: ignore[arg-type]
    pages.append(page)
    log_in(page, fast_server)
    for path, name in (("/alerting/channels", "channels-empty"), ("/alerting/channels/new", "channel-new"),
                       ("/alerting/routing", "routing-db")):
        page.goto(fast_server.url + path)
        shot(page, f"{name}-{scheme}-{width}")
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, (path, overflow)
