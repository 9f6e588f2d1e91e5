"""Retention: the retention job removes error data older than each project's retention, keeps the rest."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from sqlalchemy import Connection, func, select, update

from tests.conftest import ProjectFixture, Server, make_project
from watchkeeper.errors.tables import (
    envelope_items,
    events,
    issue_hour_counts,
    issue_minute_counts,
    issue_tags,
    issues,
    transactions,
)
from watchkeeper.privacy import enforce_retention
from watchkeeper.store.engine import for_writing

DAY = 86400.0


def send_envelope(server: Server, project: ProjectFixture, *items: tuple[str, dict[str, Any]]) -> None:
    lines = [orjson.dumps({"event_id": uuid.uuid4().hex})]
    for kind, payload in items:
        lines += [orjson.dumps({"type": kind}), orjson.dumps(payload)]
    response = httpx.post(
        f"{server.url}/api/{project.id}/envelope/",
        content=b"\n".join(lines) + b"\n",
        headers={"X-Sentry-Auth": f"Sentry sentry_key={project.public_key}, sentry_version=7"},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def send_everything(server: Server, project: ProjectFixture, kind: str) -> None:
    now = time.time()
    send_envelope(
        server,
        project,
        ("event", {"event_id": uuid.uuid4().hex, "exception": {"values": [{"type": kind, "value": "x"}]}}),
        (
            "transaction",
            {
                "event_id": uuid.uuid4().hex,
                "type": "transaction",
                "transaction": "/checkout",
                "start_timestamp": now - 1,
                "timestamp": now,
                "contexts": {"trace": {"trace_id": uuid.uuid4().hex, "span_id": uuid.uuid4().hex[:16]}},
            },
        ),
        (
            "session",
            {"sid": uuid.uuid4().hex, "status": "ok", "started": "2024-01-01T00:00:00Z", "attrs": {"release": "app@1"}},
        ),
    )


def counts(server: Server, project_id: int) -> dict[str, int]:
    with server.runtime.engine.connect() as conn:
        return {
            table.name: conn.execute(
                select(func.count()).select_from(table).where(table.c.project_id == project_id)
            ).scalar_one()
            for table in (events, transactions, envelope_items, issues)
        }


def run_retention(server: Server, now: float, default_days: int = 90) -> int:
    """The retention job with every error class kept `default_days`, two rows per batch."""
    days = {f"{name}_days": default_days for name in ("error_events", "transactions", "envelope_items", "attachments")}
    retention = server.settings.retention.model_copy(update={**days, "batch_size": 2})
    settings = server.settings.model_copy(update={"retention": retention})

    async def write(fn: Callable[[Connection], int]) -> int:
        with for_writing(server.runtime.engine).begin() as conn:
            return fn(conn)

    return sum(asyncio.run(enforce_retention(write, now, settings)).values())


def test_nothing_is_deleted_before_the_retention_ends(server: Server, project: ProjectFixture) -> None:
    send_everything(server, project, "AError")
    before = counts(server, project.id)
    assert before == {"events": 1, "transactions": 1, "envelope_items": 1, "issues": 1}
    assert run_retention(server, time.time() + 89 * DAY) == 0
    assert counts(server, project.id) == before


def test_expired_data_and_issues_left_without_events_are_deleted(server: Server, project: ProjectFixture) -> None:
    for n in range(3):
        send_everything(server, project, f"Error{n}")
    with server.runtime.engine.connect() as conn:
        assert conn.execute(select(func.sum(issue_hour_counts.c.count))).scalar_one() == 3
    assert run_retention(server, time.time() + 91 * DAY) > 0
    assert counts(server, project.id) == {"events": 0, "transactions": 0, "envelope_items": 0, "issues": 0}
    with server.runtime.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(issue_tags)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(issue_minute_counts)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(issue_hour_counts)).scalar_one() == 0


def test_an_issue_keeps_its_recent_events_and_loses_its_old_ones(
    server: Server, project: ProjectFixture, api: httpx.Client
) -> None:
    send_everything(server, project, "AError")
    send_everything(server, project, "AError")
    with for_writing(server.runtime.engine).begin() as conn:
        # the first event arrived 100 days ago
        first = conn.execute(select(func.min(events.c.id))).scalar_one()
        conn.execute(update(events).where(events.c.id == first).values(received=time.time() - 100 * DAY))
    run_retention(server, time.time())
    assert counts(server, project.id)["events"] == 1
    assert counts(server, project.id)["issues"] == 1
    issue = api.get(f"/api/v1/projects/{project.id}/issues").json()["issues"][0]
    remaining = api.get(f"/api/v1/issues/{issue['id']}/events").json()["events"]
    assert len(remaining) == 1


def test_each_project_keeps_data_for_its_own_retention(server: Server, api: httpx.Client) -> None:
    short = make_project(server, "Short")
    default = make_project(server, "Default")
    long = make_project(server, "Long")
    api.patch(f"/api/v1/projects/{short.id}", json={"retention_days": 7}).raise_for_status()
    api.patch(f"/api/v1/projects/{long.id}", json={"retention_days": 365}).raise_for_status()
    for project in (short, default, long):
        send_everything(server, project, "AError")
    run_retention(server, time.time() + 30 * DAY, default_days=90)
    assert counts(server, short.id) == {"events": 0, "transactions": 0, "envelope_items": 0, "issues": 0}
    full = {"events": 1, "transactions": 1, "envelope_items": 1, "issues": 1}
    assert counts(server, default.id) == full and counts(server, long.id) == full
    run_retention(server, time.time() + 100 * DAY, default_days=90)
    assert counts(server, default.id)["events"] == 0
    assert counts(server, long.id) == full
