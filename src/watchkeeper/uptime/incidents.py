"""Status-page incidents: posted by a person, or opened automatically when a monitor shown on a page goes
down and resolved when it recovers. Automatic ones speak of the page's components in neutral words (an
editable template per page); the monitor's name and error are internal and never published."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, select, update

from watchkeeper.uptime.tables import incident_updates, incidents, outages, status_components, status_pages

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


# What an automatic incident says in public unless the page says otherwise: neutral, as a status page
# should be. The outage's error ("no ping since …", "status 500", a hostname) stays on the monitor's page.
DEFAULT_INCIDENT_TITLE = "{component} is experiencing issues"
DEFAULT_INCIDENT_MESSAGE = ("We are investigating issues with {component}. "
                            "We will post an update as soon as we know more.")
RESOLVED_MESSAGE = "{component} is working normally again."


def automatic_incident(title: str | None, message: str | None, components: list[str]) -> IncidentSpec:
    """The incident a page opens when a monitor of `components` goes down, from its templates (None: the
    defaults); `{component}` is replaced by the components' names.

    >>> automatic_incident(None, None, ["Checkout"]).title
    'Checkout is experiencing issues'
    """
    name = ", ".join(components)
    return IncidentSpec(title=(title or DEFAULT_INCIDENT_TITLE).replace("{component}", name)[:200],
                        message=(message or DEFAULT_INCIDENT_MESSAGE).replace("{component}", name)[:10_000])


def components_showing(conn: Connection, monitor_ids: Iterable[int]) -> dict[int, dict[int, list[str]]]:
    """For each monitor, the status pages whose components include it, with those components' names."""
    wanted = set(monitor_ids)
    pages: dict[int, dict[int, list[str]]] = {}
    rows = conn.execute(select(status_components.c.page_id, status_components.c.name, status_components.c.monitor_ids)
                        .order_by(status_components.c.page_id, status_components.c.position, status_components.c.id))
    for row in rows:
        for monitor_id in set(orjson.loads(row.monitor_ids)) & wanted:
            pages.setdefault(monitor_id, {}).setdefault(row.page_id, []).append(row.name)
    return pages


def follow_outages(conn: Connection, opened: list[dict[str, Any]], closed: list[dict[str, Any]]) -> None:
    """Open an incident on each page showing a monitor that went down (in the page's neutral words, see
    `automatic_incident`); resolve those whose outage ended."""
    if opened:
        shown = components_showing(conn, [o["monitor_id"] for o in opened])
        page_ids = {page_id for pages in shown.values() for page_id in pages}
        templates = {row.id: (row.incident_title, row.incident_message) for row in conn.execute(
            select(status_pages.c.id, status_pages.c.incident_title, status_pages.c.incident_message)
            .where(status_pages.c.id.in_(page_ids)))} if page_ids else {}
        for outage in opened:
            for page_id, names in sorted(shown.get(outage["monitor_id"], {}).items()):
                title, message = templates.get(page_id, (None, None))
                open_incident(conn, page_id, automatic_incident(title, message, names),
                              now=outage["started_at"], outage_id=outage["id"])
    for ended in closed:
        ended_outages = select(outages.c.id).where(
            outages.c.monitor_id == ended["monitor_id"], outages.c.ended_at == ended["ended_at"]
        )
        rows = conn.execute(select(incidents.c.id, incidents.c.page_id).where(
            incidents.c.outage_id.in_(ended_outages), incidents.c.resolved_at.is_(None))).all()
        on_pages = components_showing(conn, [ended["monitor_id"]]).get(ended["monitor_id"], {}) if rows else {}
        for row in rows:
            component = ", ".join(on_pages.get(row.page_id, [])) or "The service"
            add_update(conn, row.id, IncidentUpdateSpec(
                status="resolved", message=RESOLVED_MESSAGE.replace("{component}", component)), now=ended["ended_at"])


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
