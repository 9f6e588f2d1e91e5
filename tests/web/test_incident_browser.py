"""The incident and on-call pages in a real browser (Debian's Chromium via Playwright): acknowledge an
incident, add a note, resolve it, save the post-mortem; the on-call list. Screenshots go to
test-artifacts/web/ (incident-*.png, oncall-*.png)."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.conftest import Server, make_user
from tests.web.conftest import ensure_admin
from tests.web.test_browser import log_in, shot
from watchkeeper.alerting.escalation import PolicyIn, create_policy
from watchkeeper.alerting.incidents import add_event, declare
from watchkeeper.alerting.oncall import LayerIn, ScheduleIn, create_schedule
from watchkeeper.alerting.routing import load_config
from watchkeeper.store.engine import for_writing


def test_acknowledge_note_resolve_and_postmortem_in_the_browser(page: Page, server: Server) -> None:
    now = server.runtime.clock.now()
    with for_writing(server.runtime.engine).begin() as conn:
        incident = declare(conn, title="Checkout API is down", severity="critical", now=now - 300,
                           impact_started_at=now - 420, source="an alert")
        add_event(conn, incident.id, "alert.fired", "Checkout API is down (critical)", at=now - 420)
    log_in(page, server)
    page.get_by_role("link", name="Incidents", exact=True).click()
    page.wait_for_url(server.url + "/incidents")
    expect(page.get_by_role("link", name="Checkout API is down")).to_be_visible()
    shot(page, "incident-01-list")

    page.get_by_role("link", name="Checkout API is down").click()
    page.wait_for_url(re.compile(r"/incidents/\d+$"))
    expect(page.locator("#incident-state")).to_have_text("triggered")
    shot(page, "incident-02-triggered")
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.locator("#incident-state")).to_have_text("acknowledged")
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)

    page.get_by_label("Add a note").fill("Payment provider returns 502; failing over to the backup")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator(".timeline")).to_contain_text("failing over to the backup")
    shot(page, "incident-03-acknowledged-with-note")

    page.get_by_role("button", name="Resolve").click()
    expect(page.locator("#incident-state")).to_have_text("resolved")
    timeline = page.locator(".timeline li")
    expect(timeline).to_have_count(5)  # triggered, alert fired, acknowledged, note, resolved
    editor = page.get_by_label("Markdown")
    expect(editor).to_have_value(re.compile(r"## Timeline[\s\S]*failing over to the backup"))
    editor.fill(editor.input_value().replace("_Why it happened; keep asking why._", "The provider's TLS change."))
    page.get_by_role("button", name="Save post-mortem").click()
    expect(page.get_by_role("status")).to_have_text("Post-mortem saved.")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export Markdown").click()
    path = download.value.path()
    assert "The provider's TLS change." in path.read_text()
    shot(page, "incident-04-resolved-postmortem")

    page.get_by_role("link", name="Incidents", exact=True).click()
    page.get_by_label("State").select_option("resolved")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("link", name="Checkout API is down")).to_be_visible()


def test_the_oncall_pages_show_who_is_on_call(page: Page, server: Server) -> None:
    ensure_admin(server)  # before any other user: the admin is made on an empty database only
    alice, alice_email = make_user(server)
    bob, _ = make_user(server)
    with for_writing(server.runtime.engine).begin() as conn:
        schedule = create_schedule(conn, ScheduleIn(name="Platform", time_zone="Europe/Berlin", layers=[
            LayerIn(rotation="daily", handoff="09:00", start_date="2026-01-01", users=[alice, bob])]),
            now=server.runtime.clock.now())
        create_policy(conn, PolicyIn.model_validate({"name": "Ops", "repeat": 1, "steps": [
            {"targets": [{"kind": "schedule", "id": schedule.id}], "minutes": 5},
            {"targets": [{"kind": "user", "id": bob}, {"kind": "receiver", "name": "log"}], "minutes": 10}]}),
            load_config(None), now=server.runtime.clock.now())
    log_in(page, server)
    page.get_by_role("link", name="On-call", exact=True).click()
    on_call = page.locator(".oncall-now").inner_text()
    expect(page.locator(".shifts li")).to_have_count(3)  # the next three hand-offs
    expect(page.locator(".policy-steps li").first).to_contain_text("on call in Platform")
    shot(page, "oncall-01-list")
    page.get_by_role("link", name="Platform").click()
    expect(page.locator("#on-call-now")).to_have_text(on_call)
    shot(page, "oncall-02-schedule")
    page.get_by_role("link", name="Edit schedule").click()
    expect(page.get_by_label("Users in order (e-mails, comma separated)").first).to_have_value(
        re.compile("^" + re.escape(alice_email) + ", member-"))
    shot(page, "oncall-03-edit")
