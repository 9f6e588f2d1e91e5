"""Retention: every stored data class has a `retention.` setting, the profiles set them (development
short, production long), old setting names still work, and the one retention job enforces them all."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, Table, func, insert, select, update

from tests.conftest import ProjectFixture, Server, make_project, make_token, run_server
from tests.errors.test_retention import send_everything
from watchkeeper.alerting.incident_tables import alert_occurrences, incident_events, incidents
from watchkeeper.alerting.tables import notification_outbox, silences
from watchkeeper.auth.tables import audit_log
from watchkeeper.config import ConfigError, RetentionSettings, Settings, load_settings
from watchkeeper.errors.tables import attachments, envelope_items, events, issues, transactions
from watchkeeper.privacy import data_classes, enforce_retention
from watchkeeper.store.engine import for_writing
from watchkeeper.uptime.results import DAY, HOUR, MINUTE
from watchkeeper.uptime.tables import check_results, heartbeat_pings, monitor_rollups, outages

RETAINED = [c for c in data_classes() if c.setting]


def test_every_data_class_declares_its_retention_and_a_setting_that_exists() -> None:
    names = [c.name for c in data_classes()]
    assert len(names) == len(set(names))
    for data_class in data_classes():
        assert data_class.setting or data_class.kept, data_class.name
        if data_class.setting:
            assert data_class.setting in RetentionSettings.model_fields and data_class.expire is not None
    # Every retention setting is some class's (no setting that nothing reads).
    days = {name for name in RetentionSettings.model_fields if name.endswith("_days")}
    assert days == {c.setting for c in RETAINED}
    domains = {c.domain for c in data_classes()}
    assert {"errors", "uptime", "alerting", "incidents", "accounts"} <= domains


def test_development_shortens_only_what_was_never_deleted_and_never_below_yesterdays_retention() -> None:
    development = load_settings(environ={}).retention
    production = load_settings(environ={"WATCHKEEPER_PROFILE": "production"}).retention
    # The classes that had a retention before this release keep it in every profile (an install upgraded
    # without naming a profile runs `development` and must not lose data it kept yesterday).
    before = {"error_events_days": 90, "transactions_days": 90, "envelope_items_days": 90, "attachments_days": 90,
              "check_results_days": 7, "heartbeat_pings_days": 7, "minute_rollups_days": 14, "hour_rollups_days": 120}
    for data_class in RETAINED:
        name = data_class.setting or ""
        short, long = getattr(development, name), getattr(production, name)
        if name in before:
            assert short == long == before[name], name
        else:
            assert short < long, data_class.name


def test_a_setting_per_class_from_the_environment_and_the_old_names_still_work(tmp_path: Any) -> None:
    settings = load_settings(environ={"WATCHKEEPER_PROFILE": "production",
                                      "WATCHKEEPER_RETENTION__CHECK_RESULTS_DAYS": "2"})
    assert settings.retention.check_results_days == 2 and settings.retention.heartbeat_pings_days == 7
    old = tmp_path / "old.yaml"
    old.write_text("retention:\n  default_days: 30\nuptime:\n  raw_retention_days: 3\n"
                   "  hour_rollup_retention_days: 60\n")
    settings = load_settings(old, environ={})
    assert (settings.retention.error_events_days, settings.retention.attachments_days) == (30, 30)
    assert (settings.retention.check_results_days, settings.retention.heartbeat_pings_days) == (3, 3)
    assert settings.retention.hour_rollups_days == 60
    both = tmp_path / "both.yaml"
    both.write_text("retention:\n  check_results_days: 5\nuptime:\n  raw_retention_days: 3\n")
    with pytest.raises(ConfigError, match=r"uptime\.raw_retention_days.*retention\.check_results_days"):
        load_settings(both, environ={})


def run_job(server: Server, settings: Settings, now: float) -> dict[str, int]:
    async def write(fn: Callable[[Connection], int]) -> int:
        with for_writing(server.runtime.engine).begin() as conn:
            return fn(conn)

    return asyncio.run(enforce_retention(write, now, settings))


def with_days(server: Server, days: float, **overrides: float) -> Settings:
    values = {c.setting: days for c in RETAINED if c.setting} | overrides
    retention = server.settings.retention.model_copy(update={**values, "batch_size": 2})
    return server.settings.model_copy(update={"retention": retention})


TABLES: dict[str, tuple[Table, Any]] = {
    "error_events": (events, None), "transactions": (transactions, None), "envelope_items": (envelope_items, None),
    "attachments": (attachments, None), "check_results": (check_results, None),
    "heartbeat_pings": (heartbeat_pings, None), "minute_rollups": (monitor_rollups, MINUTE),
    "hour_rollups": (monitor_rollups, HOUR), "day_rollups": (monitor_rollups, DAY), "outages": (outages, None),
    "alert_history": (alert_occurrences, None), "notifications": (notification_outbox, None),
    "expired_silences": (silences, None), "incidents": (incidents, None), "audit_log": (audit_log, None),
}


def rows(server: Server) -> dict[str, int]:
    with server.runtime.engine.connect() as conn:
        found = {}
        for name, (table, resolution) in TABLES.items():
            query = select(func.count()).select_from(table)
            if resolution is not None:
                query = query.where(table.c.resolution == resolution)
            found[name] = conn.execute(query).scalar_one()
        return found


def steady(found: dict[str, int]) -> dict[str, int]:
    return {name: count for name, count in found.items() if name != "alert_history"}


def has_history(server: Server) -> bool:
    with server.runtime.engine.connect() as conn:
        return conn.execute(select(alert_occurrences.c.fingerprint).where(
            alert_occurrences.c.fingerprint == "f1")).first() is not None


def everything(server: Server, api: httpx.Client, project: ProjectFixture) -> None:
    """A row of every class: through ingest, pings and the API where they make them, else as they store them."""
    for n in range(3):
        send_everything(server, project, f"Error{n}")
    monitor = api.post(f"/api/v1/projects/{project.id}/monitors", json={
        "name": "backup", "slug": "backup", "type": "heartbeat", "config": {"period_seconds": 3600}}).json()
    for _ in range(3):
        assert httpx.post(f"{server.url}/ping/{monitor['uuid']}", content=b"ok").status_code == 200
    api.post("/api/v1/users", json={"email": "audited@example.com", "role": "member"}).raise_for_status()
    silence = {"matchers": [{"name": "job", "value": "x", "isRegex": False, "isEqual": True}],
               "startsAt": "2020-01-01T00:00:00Z", "createdBy": "t", "comment": "c",
               "endsAt": datetime.fromtimestamp(time.time() + 60, UTC).isoformat().replace("+00:00", "Z")}
    api.post("/api/v2/silences", json=silence).raise_for_status()
    incident = api.post("/api/v1/incidents", json={"title": "Checkout down", "project_id": project.id}).json()
    api.post(f"/api/v1/incidents/{incident['id']}/state", json={"state": "resolved"}).raise_for_status()
    now = time.time()
    with for_writing(server.runtime.engine).begin() as conn:
        conn.execute(insert(attachments).values(project_id=project.id, event_id=uuid.uuid4().hex, filename="a.txt",
                                                size=1, received=now, data=b"x"))
        conn.execute(insert(check_results), [{"monitor_id": monitor["id"], "at": now - i, "ok": True}
                                             for i in range(5)])
        conn.execute(insert(monitor_rollups), [
            {"monitor_id": monitor["id"], "resolution": resolution, "bucket": int(now // resolution * resolution),
             "checks": 1, "failures": 0, "maintenance_checks": 0, "response_ms_sum": 1.0, "response_count": 1}
            for resolution in (MINUTE, HOUR, DAY)])
        conn.execute(insert(outages).values(monitor_id=monitor["id"], started_at=now - 60, ended_at=now))
        conn.execute(insert(alert_occurrences).values(fingerprint="f1", starts_at=now - 60, severity="high",
                                                      name="HighErrors", resolved_at=now))
        conn.execute(insert(notification_outbox).values(receiver="log", integration="log", group_key="g",
                                                        payload="{}", status="sent", next_attempt_at=now,
                                                        created_at=now, sent_at=now))


def test_the_one_retention_job_enforces_every_class_in_bounded_batches(
    server: Server, api: httpx.Client, project: ProjectFixture
) -> None:
    everything(server, api, project)
    before = rows(server)
    assert all(before.values()), before
    assert before["check_results"] == 5 and before["heartbeat_pings"] == 3  # more than one batch of 2

    # Within every class's retention nothing goes, whatever the profile. (The live evaluator may add
    # alert history meanwhile, from the default rules; the row made here stands for it.)
    assert run_job(server, with_days(server, 10), time.time() + 9 * 86400) == {}
    assert steady(rows(server)) == steady(before) and has_history(server)
    # One class past its retention: only it goes.
    deleted = run_job(server, with_days(server, 10, check_results_days=1), time.time() + 2 * 86400)
    assert deleted == {"check_results": 5}
    assert steady(rows(server)) == steady(before) | {"check_results": 0} and has_history(server)
    # All past it: every class is empty, the issues with their events, the incident with its timeline.
    started = time.time()
    deleted = run_job(server, with_days(server, 10), time.time() + 11 * 86400)
    assert set(deleted) >= set(TABLES) - {"check_results"}
    # Firings of the default rules' alerts on this project that were still going on when the job ran
    # are current, not history (the live evaluator may resolve them since).
    with server.runtime.engine.connect() as conn:
        history = conn.execute(select(func.count()).select_from(alert_occurrences)
                               .where(alert_occurrences.c.resolved_at < started)).scalar_one()
    assert history == 0
    assert steady(rows(server)) == dict.fromkeys(steady(before), 0) and not has_history(server)
    with server.runtime.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(issues)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(incident_events)).scalar_one() == 0


def test_docs_privacy_lists_every_data_class_with_its_setting_and_both_defaults() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "privacy.md").read_text()
    development = load_settings(environ={}).retention
    production = load_settings(environ={"WATCHKEEPER_PROFILE": "production"}).retention
    for data_class in data_classes():
        assert f"`{data_class.name}`" in text, data_class.name
        if data_class.setting:
            row = f"`retention.{data_class.setting}` | {getattr(development, data_class.setting):g} | " \
                  f"{getattr(production, data_class.setting):g} |"
            assert row in text, row


def test_the_server_runs_the_retention_job_for_every_domain_at_start(settings: Settings) -> None:
    with run_server(settings) as server:
        project = make_project(server)
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {make_token(server)}"},
                          timeout=30) as api:
            send_everything(server, project, "AError")
            monitor = api.post(f"/api/v1/projects/{project.id}/monitors", json={
                "name": "backup", "slug": "backup", "type": "heartbeat", "config": {"period_seconds": 3600}}).json()
            assert httpx.post(f"{server.url}/ping/{monitor['uuid']}", content=b"ok").status_code == 200
            api.post("/api/v1/users", json={"email": "audited@example.com", "role": "member"}).raise_for_status()
        # A year passes (development profile: events 14 days, pings 3, audit log 30).
        with for_writing(server.runtime.engine).begin() as conn:
            for table, column in ((events, events.c.received), (heartbeat_pings, heartbeat_pings.c.at),
                                  (audit_log, audit_log.c.at)):
                conn.execute(update(table).values({column.name: column - 365 * 86400}))
        aged = {name: rows(server)[name] for name in ("error_events", "heartbeat_pings", "audit_log")}
        assert all(aged.values()), aged
    with run_server(settings) as server:
        deadline = time.monotonic() + 60
        while any(rows(server)[name] for name in aged) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert {name: rows(server)[name] for name in aged} == dict.fromkeys(aged, 0)
