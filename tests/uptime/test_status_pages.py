"""Public status pages: HTML, JSON, feeds, badges, automatic incidents, caching."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ProjectFixture, Server, run_server
from tests.uptime.conftest import HttpTarget
from watchkeeper.config import Settings
from watchkeeper.store.writer import call_each
from watchkeeper.uptime.checkers import CheckResult
from watchkeeper.uptime.results import CheckOutcome, record_results


@pytest.fixture
def server(settings: Settings) -> Iterator[Server]:
    """No page cache (these tests look at changes at once) and no scheduler (outcomes are recorded here)."""
    uptime = settings.uptime.model_copy(update={"status_page_cache_seconds": 0, "scheduler": False})
    with run_server(settings.model_copy(update={"uptime": uptime})) as running:
        yield running


def record(server: Server, monitor_id: int, ok: bool, at: float, error: str | None = None) -> None:
    outcome = CheckOutcome(monitor_id, at, CheckResult(ok, 12.0 if ok else None, 200 if ok else 500, error))
    server.runtime.writer.run_sync(call_each, lambda conn: record_results(conn, [outcome]))


def make_page(api: httpx.Client, project: ProjectFixture, target: HttpTarget) -> tuple[dict[str, Any], list[int]]:
    ids = [api.post(f"/api/v1/projects/{project.id}/monitors", json={
        "name": name, "type": "http", "failures_to_down": 1, "config": {"url": target.url + "/health"}}).json()["id"]
        for name in ("Web", "API", "Database")]
    page = api.post(f"/api/v1/projects/{project.id}/status-pages", json={
        "slug": "acme", "title": "Acme <Services>", "description": "How we are doing",
        "components": [{"name": "Website", "group": "Frontend", "monitor_ids": [ids[0]]},
                       {"name": "Backend", "group": "Platform", "monitor_ids": [ids[1], ids[2]]}]})
    assert page.status_code == 201, page.text
    return page.json(), ids


def test_page_shows_components_and_overall_status(server: Server, api: httpx.Client, project: ProjectFixture,
                                                 http_target: HttpTarget) -> None:
    _, ids = make_page(api, project, http_target)
    now = server.runtime.clock.now()
    for monitor_id in ids:
        record(server, monitor_id, True, now)
    data = httpx.get(f"{server.url}/status/acme/json").json()
    assert data["status"] == "up" and data["status_text"] == "All systems operational"
    assert [(c["name"], c["group"], c["status"]) for c in data["components"]] == [
        ("Website", "Frontend", "up"), ("Backend", "Platform", "up")]
    assert len(data["components"][0]["days"]) == 90 and data["components"][0]["days"][-1]["uptime_percent"] == 100
    record(server, ids[2], False, now + 1, "status 500")
    data = httpx.get(f"{server.url}/status/acme/json").json()
    assert data["status"] == "down" and [c["status"] for c in data["components"]] == ["up", "down"]
    html = httpx.get(f"{server.url}/status/acme")
    assert html.status_code == 200 and "Acme &lt;Services&gt;" in html.text and "Some systems are down" in html.text
    assert httpx.get(f"{server.url}/status/nope").status_code == 404
    assert httpx.get(f"{server.url}/status/nope/json").json()["detail"] == "status page 'nope' not found"


def test_outages_open_and_resolve_incidents_shown_in_feeds(server: Server, api: httpx.Client,
                                                           project: ProjectFixture, http_target: HttpTarget) -> None:
    _, ids = make_page(api, project, http_target)
    now = server.runtime.clock.now()
    record(server, ids[1], True, now)
    record(server, ids[1], False, now + 60, "status 500")
    (incident,) = httpx.get(f"{server.url}/status/acme/json").json()["incidents"]
    # The component's name in neutral words; the monitor ("API") and its error stay internal.
    assert incident["title"] == "Backend is experiencing issues" and incident["status"] == "investigating"
    assert "status 500" not in incident["updates"][0]["message"]
    record(server, ids[1], True, now + 120)
    (incident,) = httpx.get(f"{server.url}/status/acme/json").json()["incidents"]
    assert incident["status"] == "resolved" and [u["status"] for u in incident["updates"]] == [
        "resolved", "investigating"]
    atom = ET.fromstring(httpx.get(f"{server.url}/status/acme/feed.atom").content)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    titles = [e.findtext("a:title", namespaces=ns) for e in atom.findall("a:entry", ns)]
    assert titles == ["[resolved] Backend is experiencing issues"]
    rss = ET.fromstring(httpx.get(f"{server.url}/status/acme/rss").content)
    assert [i.findtext("title") for i in rss.iter("item")] == ["[resolved] Backend is experiencing issues"]


def test_manual_incidents_and_updates(server: Server, api: httpx.Client, project: ProjectFixture,
                                      http_target: HttpTarget) -> None:
    page, _ = make_page(api, project, http_target)
    posted = api.post(f"/api/v1/status-pages/{page['id']}/incidents", json={
        "title": "Slow logins", "status": "identified", "message": "A cache node failed."})
    assert posted.status_code == 201
    incident_id = posted.json()["id"]
    update = api.post(f"/api/v1/status-pages/{page['id']}/incidents/{incident_id}/updates",
                      json={"status": "resolved", "message": "Replaced."})
    assert update.status_code == 201
    (shown,) = httpx.get(f"{server.url}/status/acme/json").json()["incidents"]
    assert shown["status"] == "resolved" and shown["updates"][0]["message"] == "Replaced."
    assert "Slow logins" in httpx.get(f"{server.url}/status/acme").text


def test_badges(server: Server, api: httpx.Client, project: ProjectFixture, http_target: HttpTarget) -> None:
    page, ids = make_page(api, project, http_target)
    now = server.runtime.clock.now()
    for monitor_id in ids:
        record(server, monitor_id, True, now)
    badge = httpx.get(f"{server.url}/status/acme/badge.svg")
    assert badge.headers["content-type"] == "image/svg+xml" and "operational" in badge.text
    ET.fromstring(badge.content)  # well-formed SVG
    component = page["components"][0]["id"]
    uptime = httpx.get(f"{server.url}/status/acme/components/{component}/uptime.svg")
    assert "100.00%" in uptime.text
    assert httpx.get(f"{server.url}/status/acme/components/999999/uptime.svg").status_code == 404


def test_page_api_validates(api: httpx.Client, project: ProjectFixture, http_target: HttpTarget) -> None:
    make_page(api, project, http_target)
    path = f"/api/v1/projects/{project.id}/status-pages"
    taken = api.post(path, json={"slug": "acme", "title": "Again"})
    assert taken.status_code == 409 and "slug" in taken.json()["detail"]
    stranger = api.post(path, json={"slug": "b", "title": "B", "components": [{"name": "x", "monitor_ids": [99999]}]})
    assert stranger.status_code == 422 and "components.0.monitor_ids" in stranger.json()["detail"]
    bad_slug = api.post(path, json={"slug": "Not A Slug", "title": "B"})
    assert bad_slug.status_code == 422 and "slug" in bad_slug.json()["detail"]


def test_computed_page_is_cached(settings: Settings, http_target: HttpTarget) -> None:
    from tests.conftest import make_project, make_token

    uptime = settings.uptime.model_copy(update={"status_page_cache_seconds": 60, "scheduler": False})
    with run_server(settings.model_copy(update={"uptime": uptime})) as running:
        project = make_project(running)
        with httpx.Client(base_url=running.url, headers={"Authorization": f"Bearer {make_token(running)}"}) as api:
            make_page(api, project, http_target)
        first = httpx.get(f"{running.url}/status/acme/json").json()
        second = httpx.get(f"{running.url}/status/acme/json")
        assert second.json()["generated_at"] == first["generated_at"]
        assert second.headers["cache-control"] == "public, max-age=60"


def test_component_sla_per_calendar_month(server: Server, api: httpx.Client, project: ProjectFixture,
                                          http_target: HttpTarget) -> None:
    page, ids = make_page(api, project, http_target)
    body = {"slug": "acme", "title": "Acme", "components": [
        {"name": "Website", "monitor_ids": [ids[0]], "sla_target": 99.9},
        {"name": "Backend", "monitor_ids": [ids[1], ids[2]]}]}
    changed = api.put(f"/api/v1/status-pages/{page['id']}", json=body)
    assert changed.status_code == 200 and [c["sla_target"] for c in changed.json()["components"]] == [99.9, None]
    now = server.runtime.clock.now()
    record(server, ids[0], False, now - 600, "status 500")
    record(server, ids[0], True, now - 300)
    sla = api.get(f"/api/v1/status-pages/{page['id']}/sla").json()
    (website,) = sla["components"]
    assert website["name"] == "Website" and website["target_percent"] == 99.9
    assert website["downtime_minutes"] == pytest.approx(5, abs=0.01)
    assert website["budget_remaining_minutes"] == pytest.approx(website["budget_minutes"] - 5, abs=0.01)
    assert api.get(f"/api/v1/status-pages/{page['id']}/sla?month=2026-13").status_code == 422
    assert api.put(f"/api/v1/status-pages/{page['id']}", json={**body, "components": [
        {"name": "W", "monitor_ids": [ids[0]], "sla_target": 100}]}).status_code == 422


def test_every_public_status_answer_carries_the_security_headers(server: Server, api: httpx.Client,
                                                                  project: ProjectFixture,
                                                                  http_target: HttpTarget) -> None:
    page, _ = make_page(api, project, http_target)
    component = page["components"][0]["id"]
    for path in ("", "/json", "/feed.atom", "/rss", "/badge.svg", f"/components/{component}/uptime.svg"):
        for slug in ("acme", "nope"):
            answer = httpx.get(f"{server.url}/status/{slug}{path}")
            assert answer.status_code == (200 if slug == "acme" else 404), (slug, path)
            policy = answer.headers.get("Content-Security-Policy", "")
            assert policy.startswith("default-src 'none'") and "script-src 'self';" in policy, (slug, path, policy)
            assert "unsafe" not in policy, (slug, path, policy)
            assert "frame-ancestors 'none'" in policy
            assert answer.headers.get("X-Frame-Options") == "DENY", (slug, path)
            assert answer.headers.get("X-Content-Type-Options") == "nosniff", (slug, path)
