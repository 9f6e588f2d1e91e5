"""The uptime domain's data classes and what it stores about one person (GDPR).

Uptime stores few personal data: a heartbeat ping's log may print an e-mail or an address, a status
page's incident update may name someone, and a monitor's configuration may hold an e-mail (a
basic-auth user, an address in the URL). Logs and updates are redacted on erasure; a monitor is
configuration its owner edits, so export lists it and erase leaves it (docs/privacy.md).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, select, tuple_, update

from watchkeeper.lib.data_classes import DataClass, Expiry, Person
from watchkeeper.uptime.results import DAY, HOUR, MINUTE
from watchkeeper.uptime.tables import (
    check_results,
    heartbeat_pings,
    incident_updates,
    incidents,
    monitor_rollups,
    monitors,
    outages,
)


def expire_check_results(conn: Connection, run: Expiry) -> int:
    ids = select(check_results.c.id).where(check_results.c.at < run.now - run.days * 86400).limit(run.batch_size)
    return int(conn.execute(delete(check_results).where(check_results.c.id.in_(ids.scalar_subquery()))).rowcount)


def expire_heartbeat_pings(conn: Connection, run: Expiry) -> int:
    ids = select(heartbeat_pings.c.id).where(heartbeat_pings.c.at < run.now - run.days * 86400).limit(run.batch_size)
    return int(conn.execute(delete(heartbeat_pings).where(heartbeat_pings.c.id.in_(ids.scalar_subquery()))).rowcount)


def _expire_rollups(resolution: int) -> Any:
    def expire(conn: Connection, run: Expiry) -> int:
        t = monitor_rollups
        key = tuple_(t.c.monitor_id, t.c.resolution, t.c.bucket)
        old = (select(t.c.monitor_id, t.c.resolution, t.c.bucket)
               .where(t.c.resolution == resolution, t.c.bucket < run.now - run.days * 86400).limit(run.batch_size))
        return int(conn.execute(delete(t).where(key.in_(old))).rowcount)

    return expire


def expire_outages(conn: Connection, run: Expiry) -> int:
    ids = select(outages.c.id).where(outages.c.ended_at < run.now - run.days * 86400).limit(run.batch_size)
    return int(conn.execute(delete(outages).where(outages.c.id.in_(ids.scalar_subquery()))).rowcount)


DATA_CLASSES: tuple[DataClass, ...] = (
    DataClass("uptime", "check_results", "raw results of HTTP/TCP/DNS/TLS checks", "check_results_days",
              expire_check_results),
    DataClass("uptime", "heartbeat_pings", "heartbeat pings with their logs", "heartbeat_pings_days",
              expire_heartbeat_pings),
    DataClass("uptime", "minute_rollups", "per-minute uptime and response-time rollups", "minute_rollups_days",
              _expire_rollups(MINUTE)),
    DataClass("uptime", "hour_rollups", "per-hour rollups with response-time sketches", "hour_rollups_days",
              _expire_rollups(HOUR)),
    DataClass("uptime", "day_rollups", "per-day rollups (monthly SLA reports)", "day_rollups_days",
              _expire_rollups(DAY)),
    DataClass("uptime", "outages", "ended outages of monitors", "outages_days", expire_outages),
    DataClass("uptime", "monitors", "monitors, maintenance windows, status pages and their incidents",
              kept="until deleted by their owner"),
)


def export_person(conn: Connection, person: Person) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    row: Any
    if not person.email and not person.ip:
        return found
    for row in conn.execute(select(heartbeat_pings.c.id, heartbeat_pings.c.monitor_id, heartbeat_pings.c.at,
                                   heartbeat_pings.c.kind, heartbeat_pings.c.body)
                            .where(heartbeat_pings.c.body.is_not(None))):
        if person.mentioned_in(row.body):
            found.setdefault("heartbeat_pings", []).append(
                {"monitor_id": row.monitor_id, "at": row.at, "kind": row.kind, "body": row.body})
    for row in conn.execute(select(incident_updates.c.id, incident_updates.c.incident_id, incident_updates.c.at,
                                   incident_updates.c.message)):
        if person.mentioned_in(row.message):
            found.setdefault("status_page_incident_updates", []).append(
                {"incident_id": row.incident_id, "at": row.at, "message": row.message})
    for row in conn.execute(select(monitors.c.id, monitors.c.project_id, monitors.c.name, monitors.c.config)):
        if person.mentioned_in(row.name) or person.mentioned_in(row.config):
            found.setdefault("monitors", []).append(
                {"id": row.id, "project_id": row.project_id, "name": row.name, "config": row.config})
    return found


def erase_person(conn: Connection, person: Person, now: float) -> dict[str, int]:
    row: Any
    """Redact the e-mail and the address in ping logs and status page incident updates."""
    counts: dict[str, int] = {}
    if not person.email and not person.ip:
        return counts
    for row in conn.execute(select(heartbeat_pings.c.id, heartbeat_pings.c.body)
                            .where(heartbeat_pings.c.body.is_not(None))).all():
        if person.mentioned_in(row.body):
            conn.execute(update(heartbeat_pings).where(heartbeat_pings.c.id == row.id)
                         .values(body=person.redact(row.body)))
            counts["heartbeat_pings"] = counts.get("heartbeat_pings", 0) + 1
    for row in conn.execute(select(incident_updates.c.id, incident_updates.c.message)).all():
        if person.mentioned_in(row.message):
            conn.execute(update(incident_updates).where(incident_updates.c.id == row.id)
                         .values(message=person.redact(row.message)))
            counts["status_page_incident_updates"] = counts.get("status_page_incident_updates", 0) + 1
    for row in conn.execute(select(incidents.c.id, incidents.c.title)).all():
        if person.mentioned_in(row.title):
            conn.execute(update(incidents).where(incidents.c.id == row.id).values(title=person.redact(row.title)))
            counts["status_page_incidents"] = counts.get("status_page_incidents", 0) + 1
    return counts
