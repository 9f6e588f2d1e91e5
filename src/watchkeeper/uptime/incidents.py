"""Status-page incidents: posted by a person, or opened automatically when a monitor shown on a page goes
down and resolved when it recovers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, select, update

from watchkeeper.uptime.tables import incident_updates, incidents, monitors, outages, status_components

IncidentStatus = Literal["investigating", "identified", "monitoring", "resolved"]


class IncidentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    status: IncidentStatus = "investigating"
    message: str = Field(min_length=1, max_length=10_000)


class IncidentUpdateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: IncidentStatus
    message: str = Field(min_length=1, max_length=10_000)


def pages_showing(conn: Connection, monitor_ids: Iterable[int]) -> dict[int, set[int]]:
    """For each monitor, the status pages whose components include it."""
    wanted = set(monitor_ids)
    pages: dict[int, set[int]] = {}
    for row in conn.execute(select(status_components.c.page_id, status_components.c.monitor_ids)):
        for monitor_id in set(orjson.loads(row.monitor_ids)) & wanted:
            pages.setdefault(monitor_id, set()).add(row.page_id)
    return pages


def follow_outages(conn: Connection, opened: list[dict[str, Any]], closed: list[dict[str, Any]]) -> None:
    """Open an incident on each page showing a monitor that went down; resolve those whose outage ended."""
    if opened:
        names = dict(conn.execute(select(monitors.c.id, monitors.c.name).where(
            monitors.c.id.in_([o["monitor_id"] for o in opened]))).all())
        shown = pages_showing(conn, names)
        for outage in opened:
            for page_id in sorted(shown.get(outage["monitor_id"], ())):
                open_incident(
                    conn, page_id, IncidentSpec(
                        title=f"{names[outage['monitor_id']]} is down",
                        message=f"Our monitoring detected a problem: {outage['first_error'] or 'check failed'}",
                    ), now=outage["started_at"], outage_id=outage["id"],
                )
    for ended in closed:
        ended_outages = select(outages.c.id).where(
            outages.c.monitor_id == ended["monitor_id"], outages.c.ended_at == ended["ended_at"]
        )
        rows = conn.execute(select(incidents.c.id).where(
            incidents.c.outage_id.in_(ended_outages), incidents.c.resolved_at.is_(None))).all()
        for row in rows:
            add_update(conn, row.id, IncidentUpdateSpec(status="resolved", message="The service has recovered."),
                       now=ended["ended_at"])


def open_incident(conn: Connection, page_id: int, spec: IncidentSpec, *, now: float,
                  outage_id: int | None = None) -> int:
    incident_id: int = conn.execute(incidents.insert().values(
        page_id=page_id, title=spec.title, status=spec.status, outage_id=outage_id, started_at=now,
        resolved_at=now if spec.status == "resolved" else None,
    )).inserted_primary_key[0]  # type: ignore[index]
    conn.execute(incident_updates.insert().values(incident_id=incident_id, at=now, status=spec.status,
                                                  message=spec.message))
    return incident_id


def add_update(conn: Connection, incident_id: int, spec: IncidentUpdateSpec, *, now: float) -> None:
    conn.execute(incident_updates.insert().values(incident_id=incident_id, at=now, status=spec.status,
                                                  message=spec.message))
    conn.execute(update(incidents).where(incidents.c.id == incident_id).values(
        status=spec.status, resolved_at=now if spec.status == "resolved" else None))


def list_incidents(conn: Connection, page_id: int, *, since: float, limit: int = 50) -> list[dict[str, Any]]:
    """Incidents of a page that were open at some point after `since`, newest first, with their updates."""
    rows = conn.execute(
        select(incidents).where(incidents.c.page_id == page_id)
        .where((incidents.c.resolved_at.is_(None)) | (incidents.c.resolved_at >= since))
        .order_by(incidents.c.started_at.desc()).limit(limit)
    ).all()
    # str(): SQLAlchemy's key names are a str subclass that orjson refuses as a key
    found = [{str(k): v for k, v in row._mapping.items()} for row in rows]
    if not found:
        return found
    updates: dict[int, list[dict[str, Any]]] = {}
    for row in conn.execute(select(incident_updates).where(
            incident_updates.c.incident_id.in_([i["id"] for i in found])).order_by(incident_updates.c.at.desc())):
        updates.setdefault(row.incident_id, []).append(
            {"at": row.at, "status": row.status, "message": row.message})
    for incident in found:
        incident["updates"] = updates.get(incident["id"], [])
    return found
