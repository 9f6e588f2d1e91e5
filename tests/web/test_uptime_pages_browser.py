"""The uptime pages in Debian's Chromium (the session's Playwright, see tests/conftest.py): create an HTTP
monitor through the form, "Test now" against a local HTTP server, open its page with the chart; a
heartbeat's snippets; the status-page editor; the list at phone width. Screenshots in test-artifacts/web/."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.conftest import Server, make_project
from tests.uptime.conftest import HttpTarget, http_target  # noqa: F401  (the local HTTP target fixture)
from tests.web.test_browser import log_in, shot
from tests.web.test_uptime_pages import record


def test_create_a_monitor_test_it_now_and_open_its_page(page: Page, server: Server,
                                                        http_target: HttpTarget) -> None:  # noqa: F811
    project = make_project(server, "Shop")
    log_in(page, server)
    page.goto(f"{server.url}/projects/{project.id}/issues")
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Monitors").click()
    page.wait_for_url(re.compile(r"/monitors$"))
    expect(page.get_by_role("heading", name="No monitors yet")).to_be_visible()
    page.get_by_role("link", name="New monitor").click()
    page.get_by_role("link", name="HTTP(S)").click()
    page.get_by_label("Name", exact=True).fill("Shop health")
    page.get_by_label("URL", exact=True).fill(http_target.url + "/ok")
    page.get_by_label("Conditions").fill('status == 200\nbody.status == "UP"\nresponse_time < 2s')
    page.get_by_label("SLA target (%)").fill("99.9")
    page.get_by_role("button", name="Test now").click()
    expect(page.get_by_role("heading", name="Check passed")).to_be_visible()
    assert http_target.hits == 1 and page.url.endswith("/monitors/test")  # the form again, nothing saved
    shot(page, "uptime-01-form-test-now")

    page.get_by_label("Conditions").fill('body.status == "DOWN"')
    page.get_by_role("button", name="Test now").click()
    expect(page.get_by_role("heading", name="Check failed")).to_be_visible()
    expect(page.locator("#test-result .field-error")).to_contain_text('body.status == "DOWN": was "UP"')
    page.get_by_label("Conditions").fill('status == 200\nbody.status == "UP"')
    page.get_by_label("Check every (seconds)").fill("5")
    page.get_by_role("button", name="Test now").click()  # errors come back next to their fields
    expect(page.locator("#e-interval_seconds")).to_contain_text("greater than or equal to 10")
    shot(page, "uptime-02-form-error")
    page.get_by_label("Check every (seconds)").fill("60")
    page.get_by_role("button", name="Create monitor").click()
    page.wait_for_url(re.compile(r"/monitors/\d+$"))
    monitor_id = int(page.url.rsplit("/", 1)[1])

    now = server.runtime.clock.now()
    for minutes in range(60, 0, -1):
        ok = minutes not in (30, 29)
        record(server, monitor_id, ok, now - 60 * minutes, 10.0 + (minutes % 7) * 3, None if ok else "status 500")
    page.reload()
    expect(page.locator("#response-chart canvas")).to_have_count(1)  # uPlot drew the chart
    expect(page.get_by_role("heading", name="SLA 99.9 %")).to_be_visible()
    expect(page.locator(".checks")).to_be_visible()
    shot(page, "uptime-03-monitor-page")

    page.get_by_role("link", name="← Monitors of Shop").click()
    expect(page.get_by_role("link", name="Shop health")).to_be_visible()
    expect(page.locator("svg.spark polyline")).to_have_count(1)
    shot(page, "uptime-04-monitors-list")
    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "uptime-05-monitors-list-phone")


def test_heartbeat_snippets_and_status_page_editor(page: Page, server: Server) -> None:
    project = make_project(server, "Jobs")
    log_in(page, server)
    page.goto(f"{server.url}/projects/{project.id}/monitors/new?type=heartbeat")
    page.get_by_label("Name", exact=True).fill("Nightly backup")
    page.get_by_label("Slug", exact=True).fill("backup")
    page.get_by_label("Cron expression", exact=True).fill("0 3 * * *")
    page.get_by_label("Time zone of the cron expression").fill("Europe/Paris")
    page.get_by_label("Maximum run time (seconds)").fill("3600")
    page.get_by_role("button", name="Create monitor").click()
    page.wait_for_url(re.compile(r"/monitors/\d+$"))
    page.get_by_role("button", name="Make a ping key for slug URLs").click()
    expect(page.locator("#ping-slug-url")).to_have_value(re.compile(r"/ping/[^/]+/backup$"))
    expect(page.locator("#cron-snippet")).to_contain_text("0 3 * * * curl")
    shot(page, "uptime-06-heartbeat")

    page.get_by_role("navigation", name="Project").get_by_role("link", name="Status pages").click()
    new_page = page.locator("#new-page")
    new_page.get_by_label("Slug").fill("jobs")
    new_page.get_by_label("Title").fill("Jobs status")
    page.get_by_role("button", name="Create status page").click()
    page.wait_for_url(re.compile(r"/status-pages/\d+/edit$"))
    page.get_by_label("Component 1 name").fill("Backups")
    page.get_by_label("Component 1 group").fill("Batch")
    page.get_by_label("Component 1 monitors").select_option(label="Nightly backup")
    page.get_by_label("Component 1 SLA target").fill("99.5")
    page.get_by_role("button", name="Save page").click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    # The heartbeat has not pinged yet: no data, neither a compliance nor a budget (docs/uptime.md).
    expect(page.locator(".sla-cell").first).to_contain_text("no data")
    expect(page.locator(".uptime-cell").first).to_contain_text("no data")
    incident = page.locator("#new-incident")
    incident.get_by_label("Title").fill("Backups delayed")
    incident.get_by_label("Message").fill("The storage is slow tonight.")
    page.get_by_role("button", name="Post incident").click()
    expect(page.locator(".incident-box")).to_contain_text("Backups delayed")
    expect(page.get_by_label("Incident title")).to_have_attribute("placeholder", "{component} is experiencing issues")
    shot(page, "uptime-07-status-editor")
    page.emulate_media(color_scheme="dark")
    shot(page, "uptime-07b-status-editor-dark")
    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "uptime-07c-status-editor-dark-phone")
    page.emulate_media(color_scheme="light")
    shot(page, "uptime-07d-status-editor-phone")


def test_secrets_are_masked_on_the_edit_form_until_an_editor_shows_them(
        page: Page, server: Server, http_target: HttpTarget) -> None:  # noqa: F811
    from tests.uptime.test_api import secret_monitors
    from watchkeeper.store.writer import call_each
    from watchkeeper.uptime.monitors import create_monitor
    from watchkeeper.uptime.specs import MonitorSpec

    project = make_project(server, "Shop")
    spec = MonitorSpec.model_validate(secret_monitors(http_target)[0])
    monitor = server.runtime.writer.run_sync(call_each, lambda conn: create_monitor(
        conn, project.id, spec, now=server.runtime.clock.now()))
    log_in(page, server)
    page.goto(f"{server.url}/monitors/{monitor.id}/edit")
    expect(page.get_by_label("URL", exact=True)).to_have_value(re.compile(r"://bob:\*{8}@.*api_key=\*{8}"))
    expect(page.get_by_label("Request body")).to_have_value("********")
    shot(page, "uptime-08-form-secrets-masked")
    page.get_by_role("button", name="Show stored secrets").click()
    expect(page.get_by_label("URL", exact=True)).to_have_value(re.compile(r"://bob:pw-in-url@.*api_key=qs-token-1"))
    expect(page.get_by_label("Request body")).to_have_value('{"login": "body-secret"}')
    shot(page, "uptime-09-form-secrets-shown")
