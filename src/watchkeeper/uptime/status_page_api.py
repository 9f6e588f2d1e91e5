"""REST API to make status pages, map components to monitors, and post incidents."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, delete, select, update

from watchkeeper.api import (
    CONFLICT,
    MONTH_PATTERN,
    Editor,
    ProjectId,
    Reader,
    check_project_access,
    read,
    runtime_of,
    write,
)
from watchkeeper.auth.audit import audited
from watchkeeper.uptime.api import _check_project
from watchkeeper.uptime.incidents import (
    DEFAULT_INCIDENT_MESSAGE,
    DEFAULT_INCIDENT_TITLE,
    IncidentSpec,
    IncidentUpdateSpec,
    add_update,
    open_incident,
)
from watchkeeper.uptime.reports import components_sla_month
from watchkeeper.uptime.specs import Slug
from watchkeeper.uptime.tables import incidents, monitors, status_components, status_pages

router = APIRouter(tags=["status pages"])
PageId = Annotated[int, Path(ge=1, le=2**31 - 1)]
IncidentId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class ComponentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    group: str | None = Field(None, max_length=200)
    monitor_ids: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] = Field(min_length=1, max_length=100)
    sla_target: float | None = Field(None, gt=0, lt=100, description="percent, e.g. 99.9: enables the page's /sla")


class StatusPageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slug: Slug
    title: str = Field(min_length=1, max_length=200)
    logo_url: str | None = Field(None, max_length=500, pattern=r"^https?://")
    description: str | None = Field(None, max_length=2000)
    components: list[ComponentSpec] = Field(default_factory=list, max_length=200)
    incident_title: str | None = Field(None, max_length=200, description=(
        "title of incidents opened automatically; {component} is replaced (default: "
        f"{DEFAULT_INCIDENT_TITLE!r})"))
    incident_message: str | None = Field(None, max_length=2000, description=(
        "first message of incidents opened automatically; {component} is replaced (default: "
        f"{DEFAULT_INCIDENT_MESSAGE!r})"))


def _page_json(conn: Connection, page_id: int) -> dict[str, Any] | None:
    page = conn.execute(select(status_pages).where(status_pages.c.id == page_id)).first()
    if page is None:
        return None
    components = conn.execute(select(status_components).where(status_components.c.page_id == page_id)
                              .order_by(status_components.c.position)).all()
    return {**{str(k): v for k, v in page._mapping.items()}, "components": [
        {"id": c.id, "name": c.name, "group": c.group_name, "monitor_ids": orjson.loads(c.monitor_ids),
         "sla_target": c.sla_target}
        for c in components]}


def _save_components(conn: Connection, page_id: int, components: list[ComponentSpec]) -> None:
    conn.execute(delete(status_components).where(status_components.c.page_id == page_id))
    if components:
        conn.execute(status_components.insert(), [
            {"page_id": page_id, "name": c.name, "group_name": c.group, "position": i,
             "monitor_ids": orjson.dumps(c.monitor_ids).decode(), "sla_target": c.sla_target}
            for i, c in enumerate(components)])


def spec_problem(conn: Connection, project_id: int, spec: StatusPageSpec, page_id: int | None) -> str | None:
    """What is wrong with the spec beyond its shape (a taken slug, a monitor of another project), or None."""
    taken = conn.execute(select(status_pages.c.id).where(status_pages.c.slug == spec.slug)).scalar()
    if taken is not None and taken != page_id:
        return "slug: another status page has this slug"
    mine = set(conn.execute(select(monitors.c.id).where(monitors.c.project_id == project_id)).scalars())
    for index, component in enumerate(spec.components):
        for monitor_id in component.monitor_ids:
            if monitor_id not in mine:
                return f"components.{index}.monitor_ids: {monitor_id} is not a monitor of this project"
    return None


def _settings(spec: StatusPageSpec) -> dict[str, Any]:
    return {"slug": spec.slug, "title": spec.title, "logo_url": spec.logo_url, "description": spec.description,
            "incident_title": spec.incident_title or None, "incident_message": spec.incident_message or None}


def save_page(conn: Connection, project_id: int, spec: StatusPageSpec, page_id: int | None, *, now: float) -> int:
    """Create the page (page_id None) or replace its settings and components; returns its id."""
    if page_id is None:
        page_id = int(conn.execute(status_pages.insert().values(
            project_id=project_id, created_at=now, **_settings(spec))).inserted_primary_key[0])  # type: ignore[index]
    else:
        conn.execute(update(status_pages).where(status_pages.c.id == page_id).values(**_settings(spec)))
    _save_components(conn, page_id, spec.components)
    return page_id


def get_page(conn: Connection, page_id: int) -> dict[str, Any] | None:
    """A status page's settings and components (as the API shows them)."""
    return _page_json(conn, page_id)


def list_page_ids(conn: Connection, project_id: int) -> list[int]:
    return list(conn.execute(select(status_pages.c.id).where(status_pages.c.project_id == project_id)
                             .order_by(status_pages.c.id)).scalars())


async def _check_spec(request: Request, project_id: int, spec: StatusPageSpec, page_id: int | None) -> None:
    problem = await read(request, lambda conn: spec_problem(conn, project_id, spec, page_id))
    if problem is not None:
        raise HTTPException(409 if problem.startswith("slug") else 422, problem)


async def _page_or_404(request: Request, page_id: int, owner: Any, *, write: bool = False) -> dict[str, Any]:
    page = await read(request, lambda conn: _page_json(conn, page_id))
    check_project_access(owner, page["project_id"] if page else 0, exists=page is not None, write=write,
                         what=f"status page {page_id}")
    assert page is not None
    return page


@router.get("/projects/{project_id}/status-pages")
async def list_pages(request: Request, project_id: ProjectId, owner: Reader) -> dict[str, Any]:
    await _check_project(request, project_id, owner)

    def query(conn: Connection) -> list[dict[str, Any]]:
        return [p for i in list_page_ids(conn, project_id) if (p := _page_json(conn, i)) is not None]

    return {"status_pages": await read(request, query)}


@router.post("/projects/{project_id}/status-pages", status_code=201, responses=CONFLICT)
async def create_page(request: Request, project_id: ProjectId, body: StatusPageSpec, owner: Editor) -> dict[str, Any]:
    """A public page at /status/<slug>; each component shows the worst status of its monitors."""
    await _check_project(request, project_id, owner, write=True)
    await _check_spec(request, project_id, body, None)
    now = runtime_of(request).clock.now()

    def create(conn: Connection) -> dict[str, Any] | None:
        return _page_json(conn, save_page(conn, project_id, body, None, now=now))

    return await write(request, audited(create, owner.user_id, "status_page.create", "status_page", now=now,
                                        target=lambda made: made["id"] if made else None, slug=body.slug))


@router.put("/status-pages/{page_id}", responses=CONFLICT)
async def change_page(request: Request, page_id: PageId, body: StatusPageSpec, owner: Editor) -> dict[str, Any]:
    page = await _page_or_404(request, page_id, owner, write=True)
    await _check_spec(request, page["project_id"], body, page_id)

    now = runtime_of(request).clock.now()

    def change(conn: Connection) -> dict[str, Any] | None:
        return _page_json(conn, save_page(conn, page["project_id"], body, page_id, now=now))

    return await write(request, audited(change, owner.user_id, "status_page.change", "status_page", now=now,
                                        target=page_id, slug=body.slug))


def components_sla(conn: Connection, page: dict[str, Any], year: int, month: int, now: float) -> list[dict[str, Any]]:
    """SLA of each component of the page that has a target, for one calendar month (UTC)."""
    return [
        {"id": c["id"], "name": c["name"], "group": c["group"],
         **components_sla_month(conn, c["monitor_ids"], c["sla_target"], year, month, now)}
        for c in page["components"] if c["sla_target"] is not None
    ]


def month_of(month: str | None, now: float) -> tuple[int, int]:
    """(year, month) of `YYYY-MM`, or of `now` (UTC) when None."""
    if month:
        return int(month[:4]), int(month[5:])
    today = dt.datetime.fromtimestamp(now, dt.UTC)
    return today.year, today.month


@router.get("/status-pages/{page_id}/sla")
async def page_sla(
    request: Request, page_id: PageId, owner: Reader,
    month: Annotated[
        str | None, Query(pattern=MONTH_PATTERN, description="YYYY-MM (1970-01 to 9999-12), default now")
    ] = None,
) -> dict[str, Any]:
    """Per component with an `sla_target`: compliance over a calendar month (UTC) and the error budget left in
    minutes. A component is down while any of its monitors is down; maintenance is left out."""
    page = await _page_or_404(request, page_id, owner)
    now = runtime_of(request).clock.now()
    year, number = month_of(month, now)
    rows = await read(request, lambda conn: components_sla(conn, page, year, number, now))
    return {"month": f"{year:04d}-{number:02d}", "components": rows}


@router.delete("/status-pages/{page_id}", status_code=204)
async def delete_page(request: Request, page_id: PageId, owner: Editor) -> None:
    await _page_or_404(request, page_id, owner, write=True)
    await write(request, audited(lambda conn: conn.execute(delete(status_pages).where(status_pages.c.id == page_id)),
                                 owner.user_id, "status_page.delete", "status_page",
                                 now=runtime_of(request).clock.now(), target=page_id))


@router.post("/status-pages/{page_id}/incidents", status_code=201)
async def post_incident(request: Request, page_id: PageId, body: IncidentSpec, owner: Editor) -> dict[str, Any]:
    """Post an incident by hand (automatic ones are opened from outages of the page's monitors)."""
    await _page_or_404(request, page_id, owner, write=True)
    now = runtime_of(request).clock.now()
    incident_id = await write(request, lambda conn: open_incident(conn, page_id, body, now=now))
    return {"id": incident_id}


@router.post("/status-pages/{page_id}/incidents/{incident_id}/updates", status_code=201)
async def post_incident_update(request: Request, page_id: PageId, incident_id: IncidentId,
                               body: IncidentUpdateSpec, owner: Editor) -> dict[str, Any]:
    """Add an update; status `resolved` closes the incident."""
    await _page_or_404(request, page_id, owner, write=True)
    found = await read(request, lambda conn: conn.execute(select(incidents.c.id).where(
        incidents.c.id == incident_id, incidents.c.page_id == page_id)).scalar())
    if found is None:
        raise HTTPException(404, f"incident {incident_id} not found on this page")
    now = runtime_of(request).clock.now()
    await write(request, lambda conn: add_update(conn, incident_id, body, now=now))
    return {"id": incident_id, "status": body.status}
