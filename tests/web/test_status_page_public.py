"""What the public status page publishes: automatic incidents in neutral words from the page's editable
template (never the monitor's internal name or error, such as a heartbeat's "no ping since … due by …"),
times readable and localised, the reader's dark mode, and a title that does not read "Acme Status status".
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import ProjectFixture, Server, run_server
from tests.web.conftest import ADMIN_PASSWORD, Console, log_in
from tests.web.test_browser import shot
from tests.web.test_pages import post_form
from watchkeeper.config import Settings
from watchkeeper.lib.clock import ManualClock
from watchkeeper.store.writer import call_each
from watchkeeper.uptime.heartbeats import sweep_heartbeats

START = dt.datetime(2026, 12, 7, 14, 5, tzinfo=dt.UTC).timestamp()
INTERNAL = ("no ping since", "due by", "Backup job (db-01)", "exit status")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def server(settings: Settings, clock: ManualClock) -> Iterator[Server]:
    uptime = settings.uptime.model_copy(update={"status_page_cache_seconds": 0, "scheduler": False})
    with run_server(settings.model_copy(update={"uptime": uptime}), clock) as running:
        yield running


def heartbeat_page(api: httpx.Client, project: ProjectFixture, title: str = "Acme Status") -> tuple[int, dict]:
    made = api.post(f"/api/v1/projects/{project.id}/monitors", json={
        "name": "Backup job (db-01)", "type": "heartbeat", "config": {"period_seconds": 3600, "grace_seconds": 60}})
    assert made.status_code == 201, made.text
    page = api.post(f"/api/v1/projects/{project.id}/status-pages", json={
        "slug": "acme", "title": title,
        "components": [{"name": "Nightly backups", "monitor_ids": [made.json()["id"]]}]})
    assert page.status_code == 201, page.text
    return made.json()["id"], page.json()


def go_late(server: Server, clock: ManualClock, ping_url: str) -> None:
    """A ping, then none for longer than the period and grace: the heartbeat is down (late)."""
    assert httpx.get(ping_url).status_code == 200
    clock.advance(3600 + 61)
    assert server.runtime.writer.run_sync(call_each, lambda conn: sweep_heartbeats(conn, clock.now())) == 1


def published(server: Server) -> str:
    return "\n".join(httpx.get(f"{server.url}/status/acme{tail}").text for tail in ("", "/json", "/feed.atom", "/rss"))


def test_a_late_heartbeat_posts_a_neutral_incident_from_the_pages_template(
        server: Server, admin: httpx.Client, api: httpx.Client, clock: ManualClock, project: ProjectFixture) -> None:
    monitor_id, page = heartbeat_page(api, project)
    ping = f"{server.url}/ping/{api.get(f'/api/v1/monitors/{monitor_id}').json()['ping_url'].rsplit('/', 1)[1]}"
    go_late(server, clock, ping)
    (incident,) = httpx.get(f"{server.url}/status/acme/json").json()["incidents"]
    assert incident["title"] == "Nightly backups is experiencing issues"
    assert incident["updates"][0]["message"].startswith("We are investigating issues with Nightly backups.")
    text = published(server)
    assert not [word for word in INTERNAL if word in text], text
    # Inside Watchkeeper the details stay: the monitor's outage keeps the error.
    (outage,) = api.get(f"/api/v1/monitors/{monitor_id}/outages").json()["outages"]
    assert outage["first_error"].startswith("no ping since")
    httpx.get(ping)  # recovers: the incident is resolved in the same neutral words
    (incident,) = httpx.get(f"{server.url}/status/acme/json").json()["incidents"]
    assert incident["status"] == "resolved" and incident["updates"][0]["message"] == (
        "Nightly backups is working normally again.")

    # The page's own words, set in the editor; {component} is the component's name.
    admin = log_in(server, server.settings.admin_email, ADMIN_PASSWORD)  # the clock moved past the first session
    editor = f"/status-pages/{page['id']}/edit"
    assert 'placeholder="{component} is experiencing issues"' in admin.get(editor).text
    fields = {"slug": "acme", "title": "Acme Status", "c0_name": "Nightly backups",
              "c0_monitors": [str(monitor_id)], "c0_sla": ""}
    too_long = post_form(admin, editor, editor, fields | {"incident_title": "x" * 201})
    assert too_long.status_code == 422 and 'id="p-incident-title"' in too_long.text
    assert 'aria-invalid="true"' in too_long.text.split('id="p-incident-title"')[1].split(">")[0]
    saved = post_form(admin, editor, editor, fields | {
        "incident_title": "Delays on {component}", "incident_message": "{component} may be slower than usual."})
    assert saved.status_code == 303, saved.text[:2000]
    assert api.get(f"/api/v1/projects/{project.id}/status-pages").json()["status_pages"][0]["incident_title"] == (
        "Delays on {component}")
    go_late(server, clock, ping)
    latest = httpx.get(f"{server.url}/status/acme/json").json()["incidents"][0]
    assert latest["title"] == "Delays on Nightly backups"
    assert latest["updates"][0]["message"] == "Nightly backups may be slower than usual."
    assert not [word for word in INTERNAL if word in published(server)]
    # Over the API too, with a clear error for a wrong value.
    wrong = api.put(f"/api/v1/status-pages/{page['id']}", json={
        "slug": "acme", "title": "Acme Status", "incident_message": "x" * 2001})
    assert wrong.status_code == 422 and "incident_message" in wrong.text


@pytest.fixture
def reader(browser: Browser, console: Console) -> Iterator[Page]:
    """A reader in Paris whose system is in dark mode (the page has no login)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Europe/Paris",
                                  locale="en-GB", color_scheme="dark")
    page = context.new_page()
    console.watch(page)  # a script or style refused by the page's CSP is a console error: the test fails
    yield page
    context.close()
    assert console.errors == []


def test_the_public_page_follows_dark_mode_and_shows_local_times(
        server: Server, api: httpx.Client, clock: ManualClock, project: ProjectFixture, reader: Page) -> None:
    monitor_id, _ = heartbeat_page(api, project)
    ping = f"{server.url}/ping/{api.get(f'/api/v1/monitors/{monitor_id}').json()['ping_url'].rsplit('/', 1)[1]}"
    go_late(server, clock, ping)  # down at 15:06 UTC (the deadline), found at 15:06:01
    raw = httpx.get(f"{server.url}/status/acme")
    assert "script-src 'self'" in raw.headers["content-security-policy"]
    # Without JavaScript: readable UTC, not ISO with T and Z.
    assert re.search(r'<time datetime="2026-12-07T15:06:00Z">7 Dec 2026, 15:06 UTC</time>', raw.text)
    assert "T15:06:00Z<" not in raw.text

    reader.goto(f"{server.url}/status/acme")
    expect(reader).to_have_title("Acme Status")  # not "Acme Status status"
    first = reader.locator(".incident time").first
    expect(first).to_have_attribute("data-localised", "1")
    expect(first).to_contain_text("16:06")  # Paris is UTC+1 in December
    expect(first).to_have_attribute("title", "7 Dec 2026, 15:06 UTC")
    dark = reader.evaluate("getComputedStyle(document.body).backgroundColor")
    assert dark == "rgb(15, 18, 22)", dark
    shot(reader, "status-01-public-dark")
    reader.emulate_media(color_scheme="light")
    assert reader.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"
    shot(reader, "status-02-public-light")
    reader.set_viewport_size({"width": 390, "height": 844})
    shot(reader, "status-03-public-light-phone")
    reader.emulate_media(color_scheme="dark")
    shot(reader, "status-04-public-dark-phone")

    renamed = api.get(f"/api/v1/projects/{project.id}/status-pages").json()["status_pages"][0]
    assert api.put(f"/api/v1/status-pages/{renamed['id']}", json={
        "slug": "acme", "title": "Acme", "components": [{"name": "Nightly backups", "monitor_ids": [monitor_id]}],
    }).status_code == 200
    reader.reload()
    expect(reader).to_have_title("Acme status")
