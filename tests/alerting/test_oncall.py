"""On-call schedules: rotations in the schedule's zone (across DST), layers, overrides, upcoming shifts,
and the API on the real server with a manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.conftest import Server, make_token, make_user, run_server
from watchkeeper.alerting.oncall import Override, Schedule
from watchkeeper.config import AlertingSettings, Settings
from watchkeeper.lib.clock import ManualClock

BERLIN = ZoneInfo("Europe/Berlin")


def local(text: str, zone: ZoneInfo = BERLIN) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def daily(users: list[int], start: str = "2026-03-20", handoff: str = "09:00", **extra: object) -> dict[str, object]:
    return {"rotation": "daily", "length_days": 1, "handoff": handoff, "start_date": start, "users": users} | extra


def test_a_daily_berlin_handoff_stays_at_nine_local_across_the_spring_change() -> None:
    # Summer time starts on 2026-03-29 at 02:00 local: 09:00 is 08:00 UTC before, 07:00 UTC after.
    schedule = Schedule(1, "ops", "Europe/Berlin", [daily([1, 2])], [])
    assert schedule.on_call_at(local("2026-03-28T08:59")) == schedule.on_call_at(local("2026-03-27T09:00"))
    before, after = schedule.on_call_at(local("2026-03-29T08:59")), schedule.on_call_at(local("2026-03-29T09:00"))
    assert before != after
    assert schedule.on_call_at(local("2026-03-30T08:59:59")) == after
    assert schedule.on_call_at(local("2026-03-30T09:00")) == before
    shifts = schedule.shifts(local("2026-03-27T12:00"), local("2026-03-31T12:00"))
    handoffs = [datetime.fromtimestamp(s["starts_at"], BERLIN).strftime("%m-%d %H:%M") for s in shifts[1:]]
    assert handoffs == ["03-28 09:00", "03-29 09:00", "03-30 09:00", "03-31 09:00"]
    # In UTC the hand-off moved by an hour across the change.
    utc = [datetime.fromtimestamp(s["starts_at"], ZoneInfo("UTC")).hour for s in shifts[1:]]
    assert utc == [8, 7, 7, 7]


def test_a_weekly_rotation_keeps_its_local_handoff_across_the_autumn_change() -> None:
    # Winter time from 2026-10-25 03:00 local; Monday hand-offs at 10:00 either side.
    layer = {"rotation": "weekly", "length_days": 7, "handoff": "10:00", "start_date": "2026-10-12", "users": [5, 6, 7]}
    schedule = Schedule(1, "ops", "Europe/Berlin", [layer], [])
    shifts = schedule.shifts(local("2026-10-12T10:00"), local("2026-11-02T10:00"))
    assert [s["user_id"] for s in shifts] == [5, 6, 7]
    assert [datetime.fromtimestamp(s["starts_at"], BERLIN).strftime("%a %H:%M") for s in shifts] == ["Mon 10:00"] * 3
    assert shifts[1]["ends_at"] - shifts[1]["starts_at"] == 7 * 86400 + 3600  # the week with the extra hour
    assert schedule.on_call_at(local("2026-11-02T10:00")) == 5


def test_custom_lengths_nobody_before_the_start_and_the_last_layer_wins() -> None:
    base = {"rotation": "custom", "length_days": 3, "handoff": "00:00", "start_date": "2026-01-01", "users": [1, 2]}
    evenings = daily([9], start="2026-01-02", handoff="18:00")
    schedule = Schedule(1, "ops", "UTC", [base], [])
    assert schedule.on_call_at(local("2025-12-31T23:00", ZoneInfo("UTC"))) is None
    assert schedule.on_call_at(local("2026-01-03T23:00", ZoneInfo("UTC"))) == 1
    assert schedule.on_call_at(local("2026-01-04T00:00", ZoneInfo("UTC"))) == 2
    layered = Schedule(1, "ops", "UTC", [base, evenings], [])
    assert layered.on_call_at(local("2026-01-01T20:00", ZoneInfo("UTC"))) == 1  # second layer not started
    assert layered.on_call_at(local("2026-01-02T20:00", ZoneInfo("UTC"))) == 9


def test_an_override_covers_its_window_only_and_splits_the_shifts() -> None:
    start, end = local("2026-03-21T12:00"), local("2026-03-21T15:00")
    schedule = Schedule(1, "ops", "Europe/Berlin", [daily([1, 2])], [Override(1, 42, start, end)])
    assert schedule.on_call_at(start - 1) == 2 and schedule.on_call_at(start) == 42
    assert schedule.on_call_at(end - 1) == 42 and schedule.on_call_at(end) == 2
    shifts = schedule.shifts(local("2026-03-21T09:00"), local("2026-03-22T09:00"))
    assert [(s["user_id"], s["starts_at"], s["ends_at"]) for s in shifts] == [
        (2, local("2026-03-21T09:00"), start), (42, start, end), (2, end, local("2026-03-22T09:00"))]


@pytest.fixture
def oncall_server(settings: Settings) -> Iterator[tuple[Server, ManualClock]]:
    clock = ManualClock(local("2026-03-28T12:00"))
    quiet = settings.model_copy(update={"alerting": AlertingSettings(evaluator=False)})
    with run_server(quiet, clock) as server:
        yield server, clock


def test_the_api_says_who_is_on_call_now_and_at_a_time_and_lists_shifts(oncall_server: tuple[Server, ManualClock]
                                                                        ) -> None:
    server, clock = oncall_server
    alice, _ = make_user(server)
    bob, _ = make_user(server)
    admin = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {make_token(server)}"})
    member = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {make_token(server, role='member')}"})
    body = {"name": "Ops", "time_zone": "Europe/Berlin", "layers": [daily([alice, bob], start="2026-03-28")]}
    assert member.post("/api/v1/oncall/schedules", json=body).status_code == 403
    created = admin.post("/api/v1/oncall/schedules", json=body)
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    assert member.get(f"/api/v1/oncall/schedules/{sid}/on-call").json()["user_id"] == alice
    at = local("2026-03-29T09:30")
    assert member.get(f"/api/v1/oncall/schedules/{sid}/on-call", params={"at": at}).json()["user_id"] == bob
    shifts = member.get(f"/api/v1/oncall/schedules/{sid}/shifts", params={"days": 3}).json()["shifts"]
    assert [s["user_id"] for s in shifts] == [alice, bob, alice, bob]
    assert shifts[1]["starts_at"] == local("2026-03-29T09:00")
    override = admin.post(f"/api/v1/oncall/schedules/{sid}/overrides",
                          json={"user_id": bob, "starts_at": clock.now(), "ends_at": clock.now() + 3600})
    assert override.status_code == 201
    assert member.get("/api/v1/oncall/schedules").json()["schedules"][0]["on_call_user_id"] == bob
    clock.advance(3600)
    assert member.get(f"/api/v1/oncall/schedules/{sid}/on-call").json()["user_id"] == alice
    bad = admin.post("/api/v1/oncall/schedules", json=body | {"name": "Other", "time_zone": "Mars/Olympus"})
    assert bad.status_code == 422 and "time zone" in bad.text
    unknown = admin.post("/api/v1/oncall/schedules", json=body | {"name": "Third", "layers": [daily([99999])]})
    assert unknown.status_code == 422 and "99999" in unknown.text
    assert admin.delete(f"/api/v1/oncall/schedules/{sid}").status_code == 204
    assert member.get(f"/api/v1/oncall/schedules/{sid}").status_code == 404
