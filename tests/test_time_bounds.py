"""Every time a client sends (query string or body) is finite and between 1970 and the end of year 9999:
anything else is a 422 naming the parameter, never a 500 from a date conversion or the database."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ProjectFixture

EXTREMES = ["1e20", "-1e20", "inf", "-inf", "nan", "1e308", "-1e308", "253402300800"]


def _schedule(api: httpx.Client) -> int:
    user_id, _ = make_user_of(api)
    layer = {"rotation": "daily", "length_days": 1, "handoff": "09:00", "start_date": "2026-01-01",
             "users": [user_id]}
    created = api.post("/api/v1/oncall/schedules", json={"name": "Ops", "time_zone": "UTC", "layers": [layer]})
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def make_user_of(api: httpx.Client) -> tuple[int, str]:
    created = api.post("/api/v1/users", json={"email": "oncall@example.com", "role": "member"})
    assert created.status_code == 201, created.text
    return created.json()["id"], created.json()["email"]


@pytest.mark.parametrize("value", EXTREMES)
def test_who_is_on_call_at_an_absurd_time_is_a_422_naming_at(api: httpx.Client, value: str) -> None:
    schedule_id = _schedule(api)
    answer = api.get(f"/api/v1/oncall/schedules/{schedule_id}/on-call", params={"at": value})
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == "at"
    # The bounds themselves are fine.
    for edge in ("0", "253402300799"):
        assert api.get(f"/api/v1/oncall/schedules/{schedule_id}/on-call", params={"at": edge}).status_code == 200


def test_an_uptime_range_over_all_of_time_is_a_422_naming_start_and_end(
    api: httpx.Client, project: ProjectFixture
) -> None:
    monitor = api.post(f"/api/v1/projects/{project.id}/monitors",
                       json={"name": "cron", "type": "heartbeat", "config": {}})
    assert monitor.status_code == 201, monitor.text
    path = f"/api/v1/monitors/{monitor.json()['id']}/uptime"
    answer = api.get(path, params={"start": "-1e308", "end": "1e308"})
    assert answer.status_code == 422, answer.text
    assert {e["field"] for e in answer.json()["errors"]} == {"start", "end"}
    for value in EXTREMES:
        one = api.get(path, params={"start": "0", "end": value})
        assert one.status_code == 422 and one.json()["errors"][0]["field"] == "end", (value, one.text)
    assert api.get(path, params={"start": "0", "end": "253402300799"}).status_code == 200
    assert api.get(f"/api/v1/monitors/{monitor.json()['id']}/results", params={"before": "1e20"}).status_code == 422


@pytest.mark.parametrize("value", [1e20, -1e20, 1e308])
def test_times_in_bodies_are_bounded_too(api: httpx.Client, project: ProjectFixture, value: float) -> None:
    schedule_id = _schedule(api)
    user_id = api.get("/api/v1/users").json()[-1]["id"]
    override = api.post(f"/api/v1/oncall/schedules/{schedule_id}/overrides",
                        json={"user_id": user_id, "starts_at": 0, "ends_at": value})
    assert override.status_code == 422 and override.json()["errors"][0]["field"] == "ends_at", override.text
    incident = api.post("/api/v1/incidents", json={"title": "x", "severity": "low", "impact_started_at": value})
    assert incident.status_code == 422 and incident.json()["errors"][0]["field"] == "impact_started_at"
    silence = api.post("/api/v1/silences",
                       json={"matchers": ["alertname=x"], "ends_at": value, "comment": "c"})
    assert silence.status_code == 422 and silence.json()["errors"][0]["field"] == "ends_at", silence.text



def test_a_month_before_1970_is_a_422_naming_month(api: httpx.Client, project: ProjectFixture) -> None:
    monitor = api.post(f"/api/v1/projects/{project.id}/monitors",
                       json={"name": "cron", "type": "heartbeat", "config": {}, "sla_target": 99.9})
    assert monitor.status_code == 201, monitor.text
    path = f"/api/v1/monitors/{monitor.json()['id']}/sla"
    for month in ("0000-01", "1969-12"):
        answer = api.get(path, params={"month": month})
        assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "month", answer.text
    assert api.get(path, params={"month": "9999-12"}).status_code == 200
