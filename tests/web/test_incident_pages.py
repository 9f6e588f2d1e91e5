"""The incident and on-call pages over HTTP (a logged-in admin and member), and the signed links from
notifications: shown with a button, used once, refused when expired, used or forged."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Server, make_user, run_server
from tests.web.conftest import ADMIN_PASSWORD, ensure_admin, form_token, log_in
from watchkeeper.alerting import links
from watchkeeper.alerting.incidents import declare
from watchkeeper.config import AlertingSettings, Settings
from watchkeeper.lib.clock import ManualClock
from watchkeeper.store.engine import for_writing

START = 1_774_598_400.0  # 2026-03-27 08:00 UTC


@pytest.fixture
def site(settings: Settings) -> Iterator[tuple[Server, ManualClock]]:
    clock = ManualClock(START)
    quiet = settings.model_copy(update={"alerting": AlertingSettings(evaluator=False, link_secret="k")})
    with run_server(quiet, clock) as server:
        yield server, clock


@pytest.fixture
def admin_client(site: tuple[Server, ManualClock]) -> Iterator[httpx.Client]:
    server, _ = site
    ensure_admin(server)
    client = log_in(server, server.settings.admin_email, ADMIN_PASSWORD)
    yield client
    client.close()


def new_incident(server: Server, title: str = "Checkout down", severity: str = "critical") -> int:
    with for_writing(server.runtime.engine).begin() as conn:
        return declare(conn, title=title, severity=severity, now=server.runtime.clock.now(),
                       impact_started_at=server.runtime.clock.now() - 120).id


def test_an_incident_is_acknowledged_noted_resolved_and_its_postmortem_saved_and_exported(
        site: tuple[Server, ManualClock], admin_client: httpx.Client) -> None:
    _server, clock = site
    listing = admin_client.get("/incidents")
    token = form_token(listing.text)
    declared = admin_client.post("/incidents", data={"csrf_token": token, "title": "Payments <b>slow</b>",
                                                     "severity": "high"})
    assert declared.status_code == 303
    url = declared.headers["location"]
    page = admin_client.get(url)
    assert "Payments &lt;b&gt;slow&lt;/b&gt;" in page.text and ">triggered<" in page.text
    clock.advance(60)
    assert admin_client.post(f"{url}/state", data={"csrf_token": token, "state": "acknowledged"}).status_code == 303
    assert admin_client.post(f"{url}/notes", data={"csrf_token": token, "text": "Rolled back 1.2.3"}).status_code == 303
    clock.advance(600)
    assert admin_client.post(f"{url}/state", data={"csrf_token": token, "state": "resolved"}).status_code == 303
    again = admin_client.post(f"{url}/state", data={"csrf_token": token, "state": "acknowledged"})
    assert again.status_code == 409
    html = admin_client.get(url).text
    assert "Rolled back 1.2.3" in html and ">resolved<" in html and "Acknowledge</button>" not in html
    draft = re.search(r'<textarea name="markdown"[^>]*>(.*?)</textarea>', html, re.S)
    assert draft and "## Timeline" in draft.group(1) and "note: Rolled back 1.2.3" in draft.group(1)
    saved = admin_client.post(f"{url}/postmortem", data={"csrf_token": token, "markdown": "# PM\r\n\r\nDone."})
    assert saved.status_code == 303
    export = admin_client.get(f"{url}/postmortem.md")
    assert export.headers["content-type"].startswith("text/markdown") and export.text == "# PM\n\nDone."
    assert "attachment" in export.headers["content-disposition"]
    assert admin_client.post(f"{url}/state", data={"state": "resolved"}).status_code == 403  # no CSRF token
    metrics = admin_client.get("/incidents").text
    # One high incident: detected 0 s after its declared impact, acknowledged after 1 min, resolved after 11.
    assert re.search(r"sev-high\">high</span></td><td class=\"num\">1</td><td class=\"num\">0 s</td>"
                     r"<td class=\"num\">1 min</td><td class=\"num\">11 min</td>", metrics), metrics
    open_only = admin_client.get("/incidents", params={"state": "open"}).text
    assert "Payments" not in open_only
    assert "Payments" in admin_client.get("/incidents", params={"severity": "high"}).text


def link_for(server: Server, incident_id: int, action: str, expires: float) -> str:
    return links.sign(b"k", incident_id, action, expires)


def test_a_signed_link_acknowledges_once_and_is_refused_when_used_expired_or_forged(
        site: tuple[Server, ManualClock]) -> None:
    server, clock = site
    incident_id = new_incident(server)
    token = link_for(server, incident_id, "acknowledge", clock.now() + 3600)
    with httpx.Client(base_url=server.url) as anonymous:
        shown = anonymous.get(f"/incident-links/{token}")
        assert shown.status_code == 200 and "Acknowledge incident #" in shown.text
        assert "Content-Security-Policy" in shown.headers
        done = anonymous.post(f"/incident-links/{token}")
        assert done.status_code == 200 and "is now <strong>acknowledged</strong>" in done.text
        used = anonymous.post(f"/incident-links/{token}")
        assert used.status_code == 410 and "used already" in used.text
        resolve = link_for(server, incident_id, "resolve", clock.now() + 3600)
        late_ack = link_for(server, incident_id, "acknowledge", clock.now() + 3600)
        assert "is now <strong>resolved</strong>" in anonymous.post(f"/incident-links/{resolve}").text
        assert "was resolved already" in anonymous.post(f"/incident-links/{late_ack}").text
        expired = link_for(server, incident_id, "resolve", clock.now() + 60)
        clock.advance(61)
        answer = anonymous.get(f"/incident-links/{expired}")
        assert answer.status_code == 410 and "expired" in answer.text
        forged = token.rsplit(".", 1)[0] + ".AAAA"
        assert anonymous.post(f"/incident-links/{forged}").status_code == 404
        assert anonymous.get("/incident-links/nonsense").status_code == 404
        other = links.sign(b"another server", incident_id, "resolve", clock.now() + 3600)
        assert "not a Watchkeeper link" in anonymous.get(f"/incident-links/{other}").text


def test_a_member_sees_the_schedules_but_only_an_admin_changes_them(site: tuple[Server, ManualClock],
                                                                   admin_client: httpx.Client) -> None:
    server, _clock = site
    _, email = make_user(server, role="member")
    token = form_token(admin_client.get("/oncall/new").text)
    created = admin_client.post("/oncall", data={
        "csrf_token": token, "name": "Ops", "time_zone": "Europe/Berlin", "rotation_0": "daily",
        "length_days_0": "1", "handoff_0": "09:00", "start_date_0": "2026-03-20",
        "users_0": f"{server.settings.admin_email}, {email}"})
    assert created.status_code == 303, created.text
    url = created.headers["location"]
    page = admin_client.get(url).text
    assert "On call now" in page and "Europe/Berlin" in page
    assert admin_client.post(url + "/overrides", data={"csrf_token": token, "user_id": "1",
                                                       "starts_at": "2026-03-27T09:00",
                                                       "ends_at": "2026-03-27T12:00"}).status_code == 303
    assert "covers" in admin_client.get(url).text
    bad = admin_client.post("/oncall", data={"csrf_token": token, "name": "X", "time_zone": "Nowhere/City",
                                             "users_0": email, "rotation_0": "daily", "handoff_0": "09:00",
                                             "start_date_0": "2026-03-20"})
    assert bad.status_code == 422 and "time zone" in bad.text
    member = log_in(server, email, "password-123")
    assert "Ops" in member.get("/oncall").text
    assert member.get("/oncall/new").status_code == 403
    member_token = form_token(member.get(url).text)
    assert member.post(url + "/delete", data={"csrf_token": member_token}).status_code == 403
