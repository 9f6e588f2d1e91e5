"""Alerts and incidents link to what caused them, and the rule form refuses templates over their bounds,
in a real browser (Debian's Chromium via Playwright). Screenshots go to test-artifacts/web/links-*.png."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Server, make_project, make_token, make_user, run_server, team_id
from tests.web.conftest import Console, ensure_admin
from tests.web.test_browser import log_in, shot
from watchkeeper.alerting.escalation import PolicyIn, create_policy
from watchkeeper.alerting.incidents import list_incidents
from watchkeeper.alerting.routing import load_config
from watchkeeper.config import AlertingSettings, Settings
from watchkeeper.store.engine import for_writing


@pytest.fixture
def server(settings: Settings) -> Iterator[Server]:
    fast = settings.model_copy(update={"alerting": AlertingSettings(
        evaluation_interval_seconds=0.1, dispatch_interval_seconds=0.1, incident_interval_seconds=0.2)})
    with run_server(fast) as running:
        ensure_admin(running)  # before the tests' users: the admin is made on an empty database only
        yield running


def test_an_alert_and_its_incident_link_to_the_failed_heartbeat(page: Page, server: Server) -> None:
    shop = make_project(server, "Shop")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {make_token(server)}"}) as api:
        deadline = time.monotonic() + 20
        while len(api.get(f"/api/v1/projects/{shop.id}/alert-rules").json()["rules"]) < 8:
            assert time.monotonic() < deadline, "no default rule pack"
            time.sleep(0.05)
        job = api.post(f"/api/v1/projects/{shop.id}/monitors", json={
            "name": "Nightly backup", "type": "heartbeat", "config": {"period_seconds": 86400}}).json()
    assert httpx.get(f"{server.url}/ping/{job['uuid']}/1").status_code == 200
    deadline = time.monotonic() + 20
    while True:
        with server.runtime.engine.connect() as conn:
            found = list_incidents(conn)
        if found:
            break
        assert time.monotonic() < deadline, "no incident"
        time.sleep(0.05)
    incident = found[0]

    log_in(page, server)
    page.goto(f"{server.url}/projects/{shop.id}/alerts")
    cause = page.get_by_role("link", name=f"Monitor #{job['id']}")
    expect(cause).to_be_visible()
    expect(page.get_by_text("the job reported failure (exit status 1)")).to_be_visible()
    shot(page, "links-01-alert-links-to-its-monitor")
    cause.click()
    page.wait_for_url(f"{server.url}/monitors/{job['id']}")

    page.goto(f"{server.url}/incidents/{incident.id}")
    source = page.locator("#incident-source")
    expect(source).to_have_text(f"Monitor #{job['id']}")
    expect(page.get_by_role("link", name="Nightly backup reported a failure")).to_have_attribute(
        "href", f"/monitors/{job['id']}")
    shot(page, "links-02-incident-source")
    source.click()
    page.wait_for_url(f"{server.url}/monitors/{job['id']}")


def test_the_oncall_page_names_each_policys_team_and_the_rule_form_refuses_a_huge_template(
        page: Page, server: Server, console: Console) -> None:
    shop = make_project(server, "Shop")
    alice, _ = make_user(server)
    with for_writing(server.runtime.engine).begin() as conn:
        team = team_id(conn, "Tests")
        body = PolicyIn.model_validate({"name": "Shop on-call", "team_id": team, "project_id": shop.id,
                                        "steps": [{"targets": [{"kind": "user", "id": alice}], "minutes": 10}]})
        create_policy(conn, body, load_config(None), now=time.time())
    log_in(page, server)
    page.goto(f"{server.url}/oncall")
    expect(page.locator(".policies h3")).to_contain_text("team Tests")
    shot(page, "links-03-oncall-policy-team")

    page.goto(f"{server.url}/projects/{shop.id}/rules/new")
    page.get_by_label("Name", exact=True).fill("Probe")
    page.get_by_role("group", name=re.compile("^Threshold settings")).get_by_label("Threshold", exact=True).fill("5")
    page.get_by_label("Summary", exact=True).fill("{{ 'a' * 50000000 }}")
    page.get_by_role("button", name="Create rule").click()
    expect(page.locator("#rule-ann-summary-error")).to_contain_text("larger than the template limit")
    expect(page.get_by_label("Summary", exact=True)).to_have_value("{{ 'a' * 50000000 }}")
    # The browser logs the 422 answer (the status of a refused form); nothing else may complain.
    assert [e for e in console.errors if "status of 422" not in e] == []
    console.errors.clear()
    shot(page, "links-04-rule-form-template-bound")
