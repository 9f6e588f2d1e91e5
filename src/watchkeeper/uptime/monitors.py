"""Monitors in the database: create, change, pause, delete, read."""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, select, update

from watchkeeper.uptime.specs import MonitorSpec
from watchkeeper.uptime.tables import monitor_pauses, monitors, outages

SPEC_COLUMNS = ("name", "slug", "type", "interval_seconds", "timeout_seconds", "failures_to_down",
                "successes_to_up", "sla_target", "paused")


class MonitorConflict(Exception):
    """Another monitor of the project has this slug, or the monitor is managed by the monitors file."""


@dataclass(slots=True)
class Monitor:
    id: int
    project_id: int
    uuid: str
    name: str
    slug: str | None
    type: str
    config: dict[str, Any]
    interval_seconds: int
    timeout_seconds: float
    failures_to_down: int
    successes_to_up: int
    sla_target: float | None
    paused: bool
    managed_by: str | None
    created_at: float
    updated_at: float
    status: str
    status_changed_at: float | None
    consecutive_failures: int
    consecutive_successes: int
    failing_since: float | None
    degraded: bool
    last_check_at: float | None
    last_error: str | None
    cert_warned_days: int | None
    cert_expires_at: float | None
    heartbeat_deadline: float | None
    run_started_at: float | None
    first_result_at: float | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def monitor_from_row(row: Any) -> Monitor:
    values = dict(row._mapping)
    values["config"] = orjson.loads(values["config"])
    values["paused"] = bool(values["paused"])
    values["degraded"] = bool(values["degraded"])
    return Monitor(**values)


def _spec_values(spec: MonitorSpec) -> dict[str, Any]:
    values = {name: getattr(spec, name) for name in SPEC_COLUMNS}
    values["config"] = orjson.dumps(spec.config).decode()
    return values


def _slug_taken(conn: Connection, project_id: int, slug: str | None, except_id: int | None = None) -> bool:
    if slug is None:
        return False
    query = select(monitors.c.id).where(monitors.c.project_id == project_id, monitors.c.slug == slug)
    if except_id is not None:
        query = query.where(monitors.c.id != except_id)
    return conn.execute(query).first() is not None


def create_monitor(conn: Connection, project_id: int, spec: MonitorSpec, *, now: float,
                   managed_by: str | None = None) -> Monitor:
    """Add a monitor; it starts as "new" (or "paused") and reports nothing until its first checks.

    >>> # create_monitor(conn, 1, MonitorSpec(name="Site", type="http", config={"url": "https://x.io"}), now=t)
    """
    if _slug_taken(conn, project_id, spec.slug):
        raise MonitorConflict(f"slug: another monitor of this project is called {spec.slug!r}")
    values = _spec_values(spec) | {
        "project_id": project_id, "uuid": str(uuidlib.uuid4()), "managed_by": managed_by,
        "created_at": now, "updated_at": now, "status": "paused" if spec.paused else "new",
        "status_changed_at": now,
    }
    monitor_id = conn.execute(monitors.insert().values(values)).inserted_primary_key[0]  # type: ignore[index]
    if spec.paused:
        _record_pause(conn, monitor_id, True, now)
    found = get_monitor(conn, monitor_id)
    assert found is not None
    return found


def change_monitor(conn: Connection, monitor: Monitor, spec: MonitorSpec, *, now: float) -> Monitor:
    """Replace a monitor's settings. Its state is kept unless the type changed or it was (un)paused."""
    if _slug_taken(conn, monitor.project_id, spec.slug, except_id=monitor.id):
        raise MonitorConflict(f"slug: another monitor of this project is called {spec.slug!r}")
    values = _spec_values(spec) | {"updated_at": now}
    if spec.type != monitor.type or spec.paused != monitor.paused:
        values |= _reset_state(now, paused=spec.paused)
        _end_outage(conn, monitor.id, now)
        if spec.paused != monitor.paused:
            _record_pause(conn, monitor.id, spec.paused, now)
    conn.execute(update(monitors).where(monitors.c.id == monitor.id).values(values))
    found = get_monitor(conn, monitor.id)
    assert found is not None
    return found


def _reset_state(now: float, *, paused: bool) -> dict[str, Any]:
    # A resumed monitor starts over as "new": what happened while paused is not an outage.
    return {"status": "paused" if paused else "new", "status_changed_at": now, "consecutive_failures": 0,
            "consecutive_successes": 0, "degraded": False, "heartbeat_deadline": None, "run_started_at": None}


def _end_outage(conn: Connection, monitor_id: int, now: float) -> None:
    # A monitor that starts over is no longer down: its open outage (if any) ends here.
    conn.execute(update(outages).where(outages.c.monitor_id == monitor_id, outages.c.ended_at.is_(None))
                 .values(ended_at=now))


def set_paused(conn: Connection, monitor_id: int, paused: bool, *, now: float) -> None:
    changed = conn.execute(update(monitors).where(monitors.c.id == monitor_id, monitors.c.paused != paused)
                           .values(paused=paused, updated_at=now, **_reset_state(now, paused=paused))).rowcount
    if changed:
        _end_outage(conn, monitor_id, now)
        _record_pause(conn, monitor_id, paused, now)


def _record_pause(conn: Connection, monitor_id: int, paused: bool, now: float) -> None:
    # Paused time is left out of uptime and SLA (docs/uptime.md), so when it began and ended is kept.
    if paused:
        conn.execute(monitor_pauses.insert().values(monitor_id=monitor_id, started_at=now))
    else:
        conn.execute(update(monitor_pauses).where(monitor_pauses.c.monitor_id == monitor_id,
                                                  monitor_pauses.c.ended_at.is_(None)).values(ended_at=now))


def delete_monitor(conn: Connection, monitor_id: int) -> None:
    conn.execute(delete(monitors).where(monitors.c.id == monitor_id))


def get_monitor(conn: Connection, monitor_id: int) -> Monitor | None:
    row = conn.execute(select(monitors).where(monitors.c.id == monitor_id)).first()
    return monitor_from_row(row) if row else None


def find_monitor_by_uuid(conn: Connection, value: str) -> Monitor | None:
    row = conn.execute(select(monitors).where(monitors.c.uuid == value)).first()
    return monitor_from_row(row) if row else None


def find_monitor_by_slug(conn: Connection, project_id: int, slug: str) -> Monitor | None:
    row = conn.execute(select(monitors).where(monitors.c.project_id == project_id, monitors.c.slug == slug)).first()
    return monitor_from_row(row) if row else None


@dataclass(frozen=True, slots=True)
class MonitorFilter:
    status: str | None = None
    type: str | None = None
    search: str | None = None


def find_monitors(conn: Connection, project_id: int, wanted: MonitorFilter, limit: int,
                  offset: int) -> tuple[list[Monitor], int]:
    """A page of a project's monitors matching the filter, and how many match in all."""
    conditions = [monitors.c.project_id == project_id]
    if wanted.status is not None:
        conditions.append(monitors.c.status == wanted.status)
    if wanted.type is not None:
        conditions.append(monitors.c.type == wanted.type)
    if wanted.search:
        pattern = "%" + wanted.search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(func.lower(monitors.c.name).like(pattern, escape="\\")
                          | func.coalesce(monitors.c.slug, "").like(pattern, escape="\\"))
    total = conn.execute(select(func.count()).select_from(monitors).where(*conditions)).scalar_one()
    rows = conn.execute(select(monitors).where(*conditions).order_by(monitors.c.id).limit(limit).offset(offset))
    return [monitor_from_row(row) for row in rows], int(total)


def checked_monitors() -> tuple[Any, ...]:
    """The WHERE clauses of the monitors the scheduler checks (not paused, not heartbeats)."""
    return (monitors.c.paused.is_(False), monitors.c.type != "heartbeat")


def list_monitors(conn: Connection, project_id: int | None = None, *, checked_only: bool = False,
                  ids: list[int] | None = None) -> list[Monitor]:
    """Monitors of a project (all projects when None); `checked_only`: the ones the scheduler runs."""
    query = select(monitors).order_by(monitors.c.id)
    if project_id is not None:
        query = query.where(monitors.c.project_id == project_id)
    if ids is not None:
        query = query.where(monitors.c.id.in_(ids))
    if checked_only:
        query = query.where(*checked_monitors())
    return [monitor_from_row(row) for row in conn.execute(query)]
