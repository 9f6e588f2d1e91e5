"""One definition of uptime and SLA (docs/uptime.md): the same monitor shows the same figure on every page
and API: the monitor's page, the monitors list, the uptime and SLA APIs, the status page editor, the public
status page (HTML and JSON), its SLA API and its uptime badge. Four monitors, each one case: down since it
was created, created mid-month, paused for a week, and down across the start of a maintenance window."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import ProjectFixture, Server, run_server
from tests.web.conftest import ADMIN_PASSWORD, log_in
from watchkeeper.config import Settings
from watchkeeper.lib.clock import ManualClock
from watchkeeper.store.writer import call_each
from watchkeeper.uptime.checkers import CheckResult
from watchkeeper.uptime.results import CheckOutcome, record_results

HOUR, DAY = 3600, 86400
DEC_1 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC).timestamp()
NOW = DEC_1 + 14 * DAY + 12 * HOUR  # Tuesday 15 December 2026, 12:00 UTC


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(DEC_1 - DAY)


@pytest.fixture
def server(settings: Settings, clock: ManualClock) -> Iterator[Server]:
    uptime = settings.uptime.model_copy(update={"status_page_cache_seconds": 0, "scheduler": False})
    with run_server(settings.model_copy(update={"uptime": uptime}), clock) as running:
        yield running


def record(server: Server, monitor_id: int, *outcomes: tuple[float, bool]) -> None:
    batch = [CheckOutcome(monitor_id, at, CheckResult(ok, 20.0 if ok else None, 200 if ok else 500,
                                                      None if ok else "status 500")) for at, ok in outcomes]
    server.runtime.writer.run_sync(call_each, lambda conn: record_results(conn, batch))


@dataclass
class Case:
    name: str
    monitor_id: int
    expected_30d: float  # = this month so far: every monitor was made in December
    expected_24h: float


def make_monitor(api: httpx.Client, clock: ManualClock, project: ProjectFixture, name: str, at: float) -> int:
    clock.set(at)
    answer = api.post(f"/api/v1/projects/{project.id}/monitors", json={
        "name": name, "type": "tcp", "sla_target": 99.9, "config": {"host": "127.0.0.1", "port": 1}})
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def percent(down: float, counted: float) -> float:
    return round(100 * (counted - down) / counted, 4)


def build(server: Server, api: httpx.Client, clock: ManualClock, project: ProjectFixture) -> list[Case]:
    # Down since it was created on Dec 10th (two failed checks confirm it; the outage starts at the first).
    down = make_monitor(api, clock, project, "Down since creation", DEC_1 + 9 * DAY)
    record(server, down, (DEC_1 + 9 * DAY, False), (DEC_1 + 9 * DAY + 60, False))
    # Created on Dec 8th, down one hour on Dec 9th: 7.5 days watched.
    mid = make_monitor(api, clock, project, "Created mid-month", DEC_1 + 7 * DAY)
    record(server, mid, (DEC_1 + 7 * DAY, True), (DEC_1 + 8 * DAY, False), (DEC_1 + 8 * DAY + 60, False),
           (DEC_1 + 8 * DAY + HOUR, True))
    # Since Dec 1st, down one hour on Dec 3rd, paused Dec 5th to Dec 12th: 4 + 3.5 days watched.
    paused = make_monitor(api, clock, project, "Paused a week", DEC_1)
    record(server, paused, (DEC_1, True), (DEC_1 + 2 * DAY, False), (DEC_1 + 2 * DAY + 60, False),
           (DEC_1 + 2 * DAY + HOUR, True))
    clock.set(DEC_1 + 4 * DAY)
    assert api.post(f"/api/v1/monitors/{paused}/pause").status_code == 200
    clock.set(DEC_1 + 11 * DAY)
    assert api.post(f"/api/v1/monitors/{paused}/resume").status_code == 200
    record(server, paused, (DEC_1 + 11 * DAY, True))
    # Since Dec 1st; maintenance Dec 10th 00:00-06:00; down from Dec 9th 23:00 to Dec 10th 01:00: one hour
    # of it outside the maintenance, 14.5 days less 6 hours watched.
    kept = make_monitor(api, clock, project, "Maintenance", DEC_1)
    window = api.post(f"/api/v1/projects/{project.id}/maintenance-windows", json={
        "title": "Upgrade", "starts_at": DEC_1 + 9 * DAY, "ends_at": DEC_1 + 9 * DAY + 6 * HOUR, "monitor_ids": [kept]})
    assert window.status_code == 201, window.text
    record(server, kept, (DEC_1, True), (DEC_1 + 9 * DAY - HOUR, False), (DEC_1 + 9 * DAY - HOUR + 60, False),
           (DEC_1 + 9 * DAY + HOUR, True))
    clock.set(NOW)
    return [
        Case("Down since creation", down, 0.0, 0.0),
        Case("Created mid-month", mid, percent(HOUR, 7.5 * DAY), 100.0),
        Case("Paused a week", paused, percent(HOUR, 7.5 * DAY), 100.0),
        Case("Maintenance", kept, percent(HOUR, 14.5 * DAY - 6 * HOUR), 100.0),
    ]


def row_text(html: str, attribute: str) -> str:
    """The text of the table row or block carrying `attribute` (e.g. 'data-range="30d"'), tags removed."""
    match = re.search(rf"<(tr|td|div)[^>]*{re.escape(attribute)}[^>]*>(.*?)</\1>", html, re.S)
    assert match, f"no element with {attribute}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(2))).strip()


def test_every_page_and_api_shows_the_same_uptime_and_sla(
        server: Server, admin: httpx.Client, api: httpx.Client, clock: ManualClock, project: ProjectFixture) -> None:
    cases = build(server, api, clock, project)
    admin = log_in(server, server.settings.admin_email, ADMIN_PASSWORD)  # the first session expired meanwhile
    page = api.post(f"/api/v1/projects/{project.id}/status-pages", json={
        "slug": "acme", "title": "Acme", "components": [
            {"name": c.name, "monitor_ids": [c.monitor_id], "sla_target": 99.9} for c in cases]})
    assert page.status_code == 201, page.text
    components = {c["name"]: c["id"] for c in page.json()["components"]}
    public = {c["name"]: c for c in httpx.get(f"{server.url}/status/acme/json").json()["components"]}
    public_html = httpx.get(f"{server.url}/status/acme").text
    editor = admin.get(f"/status-pages/{page.json()['id']}/edit").text
    page_sla = {c["name"]: c for c in api.get(f"/api/v1/status-pages/{page.json()['id']}/sla").json()["components"]}
    listing = admin.get(f"/projects/{project.id}/monitors").text

    for case in cases:
        p, met = case.expected_30d, case.expected_30d >= 99.9
        verdict = "met" if met else "missed"
        uptime = api.get(f"/api/v1/monitors/{case.monitor_id}/uptime").json()["ranges"]
        december = api.get(f"/api/v1/monitors/{case.monitor_id}/sla", params={"month": "2026-12"}).json()
        november = api.get(f"/api/v1/monitors/{case.monitor_id}/sla", params={"month": "2026-11"}).json()
        detail = admin.get(f"/monitors/{case.monitor_id}").text
        component = components[case.name]
        badge = httpx.get(f"{server.url}/status/acme/components/{component}/uptime.svg").text
        seen = {
            "api 30d": uptime["30d"]["uptime_percent"], "api 90d": uptime["90d"]["uptime_percent"],
            "api sla": december["compliance_percent"], "status page sla api": page_sla[case.name]["compliance_percent"],
            "public json": public[case.name]["uptime_30d_percent"],
        }
        assert seen == dict.fromkeys(seen, p), case.name
        assert uptime["24h"]["uptime_percent"] == case.expected_24h, case.name
        assert december["met"] is met and page_sla[case.name]["met"] is met, case.name
        # Before the monitor existed: no data, not "100 % MET".
        assert november["compliance_percent"] is None and november["met"] is None, case.name
        assert row_text(detail, 'data-range="30d"').startswith(f"30d {p:.3f} %"), case.name
        assert row_text(detail, 'data-month="2026-12"').startswith(f"2026-12 {p:.4f} %"), case.name
        assert row_text(detail, 'data-month="2026-12"').endswith(verdict), case.name
        assert row_text(detail, 'data-month="2026-11"') .startswith("2026-11 no data"), case.name
        assert row_text(detail, 'data-month="2026-11"').endswith("no data"), case.name
        assert f"{case.expected_24h:.2f} %" in row_text(listing, f'data-monitor="{case.monitor_id}"'), case.name
        assert row_text(editor, f'class="num uptime-cell" data-component="{component}"') == f"{p:.2f} %", case.name
        assert row_text(editor, f'class="sla-cell" data-component="{component}"').startswith(
            f"{p:.3f} % {verdict}"), case.name
        assert f"{p:.2f}%" in row_text(public_html, f'data-component="{component}"'), case.name
        assert f"{p:.2f}%" in badge, case.name
