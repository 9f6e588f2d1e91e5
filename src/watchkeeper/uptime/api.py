"""REST API for monitors, results, uptime/SLA, outages, maintenance windows, ping keys and heartbeats."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from sqlalchemy import Connection, select

from watchkeeper.api import (
    CONFLICT,
    MONTH_PATTERN,
    AdminEditor,
    Editor,
    ProjectId,
    Reader,
    check_project_access,
    epoch_query,
    read,
    runtime_of,
    write,
)
from watchkeeper.auth.access import Principal
from watchkeeper.auth.audit import audited
from watchkeeper.auth.projects import get_project
from watchkeeper.config import ConfigError
from watchkeeper.store.dialect import upsert
from watchkeeper.uptime import heartbeats, reports
from watchkeeper.uptime import maintenance as M
from watchkeeper.uptime import monitors as MO
from watchkeeper.uptime.monitors import Monitor, MonitorConflict
from watchkeeper.uptime.monitors_file import load_monitors_file
from watchkeeper.uptime.secrets import keep_masked_secrets, masked_config
from watchkeeper.uptime.specs import MonitorSpec, MonitorType, refused_target
from watchkeeper.uptime.tables import ping_keys

router = APIRouter(tags=["uptime"])
MonitorId = Annotated[int, Path(ge=1, le=2**31 - 1)]
WindowId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _uptime(request: Request) -> Any:
    return request.app.state.uptime


async def _check_project(request: Request, project_id: int, principal: Principal, *, write: bool = False) -> None:
    exists = await read(request, lambda conn: get_project(conn, project_id)) is not None
    check_project_access(principal, project_id, exists=exists, write=write, what=f"project {project_id}")


async def _monitor_or_404(request: Request, monitor_id: int, principal: Principal, *, write: bool = False) -> Monitor:
    monitor = await read(request, lambda conn: MO.get_monitor(conn, monitor_id))
    check_project_access(principal, monitor.project_id if monitor else 0, exists=monitor is not None, write=write,
                         what=f"monitor {monitor_id}")
    assert monitor is not None
    return monitor


def _editable(monitor: Monitor) -> None:
    if monitor.managed_by == "config":
        raise HTTPException(409, f"monitor {monitor.id} is managed by the monitors file: change it there")


def _refuse_blocked_addresses(request: Request, spec: MonitorSpec) -> None:
    """A target written as an address the outbound guard refuses is refused now, not at every check."""
    refused = refused_target(spec.type, spec.config,
                             allow_private=runtime_of(request).settings.outbound.allow_private_targets)
    if refused is not None:
        raise HTTPException(422, f"{refused[0]}: {refused[1]}")


def _public(monitor: Monitor, request: Request) -> dict[str, Any]:
    body = monitor.as_json()
    body["config"] = masked_config(monitor.config)
    body["ping_url"] = f"{runtime_of(request).settings.base_url}/ping/{monitor.uuid}" \
        if monitor.type == "heartbeat" else None
    body["read_only"] = monitor.managed_by == "config"
    return body


@router.get("/projects/{project_id}/monitors")
async def list_monitors(
    request: Request, project_id: ProjectId, owner: Reader,
    status: Annotated[Literal["new", "up", "down", "paused"] | None, Query()] = None,
    type: Annotated[MonitorType | None, Query()] = None,
    search: Annotated[str | None, Query(max_length=200, description="text in the name or slug")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Monitors of the project with their current status, by id; filter by status, type or text."""
    await _check_project(request, project_id, owner)
    wanted = MO.MonitorFilter(status, type, search.replace("\x00", "") if search else None)
    found, total = await read(request, lambda conn: MO.find_monitors(conn, project_id, wanted, limit, offset))
    return {"monitors": [_public(m, request) for m in found], "total": total}


@router.post("/projects/{project_id}/monitors", status_code=201, responses=CONFLICT)
async def create_monitor(request: Request, project_id: ProjectId, body: MonitorSpec, owner: Editor) -> dict[str, Any]:
    """Add a monitor. `config` depends on `type`; see docs/uptime.md."""
    await _check_project(request, project_id, owner, write=True)
    _refuse_blocked_addresses(request, body)
    now = runtime_of(request).clock.now()
    try:
        monitor = await write(request, audited(lambda conn: MO.create_monitor(conn, project_id, body, now=now),
                                               owner.user_id, "monitor.create", "monitor", now=now,
                                               target=lambda m: m.id, name=body.name, type=body.type))
    except MonitorConflict as exc:
        raise HTTPException(409, str(exc)) from None
    _uptime(request).scheduler.wake()
    return _public(monitor, request)


@router.get("/monitors/{monitor_id}")
async def get_monitor(request: Request, monitor_id: MonitorId, owner: Reader) -> dict[str, Any]:
    return _public(await _monitor_or_404(request, monitor_id, owner), request)


@router.post("/monitors/{monitor_id}/reveal")
async def reveal_monitor_secrets(request: Request, monitor_id: MonitorId, owner: Editor) -> dict[str, Any]:
    """The monitor's config with its secrets in clear (passwords, tokens, secret headers, the body); only
    for those who may change the monitor. Everywhere else they are masked as `********`."""
    monitor = await _monitor_or_404(request, monitor_id, owner, write=True)
    return {"config": monitor.config}


@router.put("/monitors/{monitor_id}", responses=CONFLICT)
async def change_monitor(request: Request, monitor_id: MonitorId, body: MonitorSpec, owner: Editor) -> dict[str, Any]:
    """Replace a monitor's settings (its state is kept unless the type changes)."""
    monitor = await _monitor_or_404(request, monitor_id, owner, write=True)
    _editable(monitor)
    if body.type == monitor.type:
        body = body.model_copy(update={"config": keep_masked_secrets(body.config, monitor.config)})
    _refuse_blocked_addresses(request, body)
    now = runtime_of(request).clock.now()
    try:
        changed = await write(request, audited(lambda conn: MO.change_monitor(conn, monitor, body, now=now),
                                               owner.user_id, "monitor.change", "monitor", now=now,
                                               target=monitor_id, name=body.name))
    except MonitorConflict as exc:
        raise HTTPException(409, str(exc)) from None
    _uptime(request).scheduler.wake()
    return _public(changed, request)


@router.delete("/monitors/{monitor_id}", status_code=204, responses=CONFLICT)
async def delete_monitor(request: Request, monitor_id: MonitorId, owner: Editor) -> None:
    monitor = await _monitor_or_404(request, monitor_id, owner, write=True)
    _editable(monitor)
    await write(request, audited(lambda conn: MO.delete_monitor(conn, monitor_id), owner.user_id, "monitor.delete",
                                 "monitor", now=runtime_of(request).clock.now(), target=monitor_id, name=monitor.name))
    _uptime(request).scheduler.wake()


async def _pause(request: Request, monitor_id: int, owner: Principal, paused: bool) -> dict[str, Any]:
    monitor = await _monitor_or_404(request, monitor_id, owner, write=True)
    _editable(monitor)
    now = runtime_of(request).clock.now()
    await write(request, audited(lambda conn: MO.set_paused(conn, monitor_id, paused, now=now), owner.user_id,
                                 "monitor.pause" if paused else "monitor.resume", "monitor", now=now,
                                 target=monitor_id))
    _uptime(request).scheduler.wake()
    return await get_monitor(request, monitor_id, owner)


@router.post("/monitors/{monitor_id}/pause")
async def pause_monitor(request: Request, monitor_id: MonitorId, owner: Editor) -> dict[str, Any]:
    """Stop checking; nothing is signalled while paused."""
    return await _pause(request, monitor_id, owner, True)


@router.post("/monitors/{monitor_id}/resume")
async def resume_monitor(request: Request, monitor_id: MonitorId, owner: Editor) -> dict[str, Any]:
    """Check again; the monitor starts over as "new"."""
    return await _pause(request, monitor_id, owner, False)


@router.post("/monitors/{monitor_id}/test")
async def test_monitor(request: Request, monitor_id: MonitorId, owner: Editor) -> dict[str, Any]:
    """Run the check once now and return the result (nothing is recorded)."""
    monitor = await _monitor_or_404(request, monitor_id, owner)
    if monitor.type == "heartbeat":
        raise HTTPException(422, "type: a heartbeat is not checked, it is pinged")
    result = await _uptime(request).scheduler.check_now(monitor)
    return {"ok": result.ok, "response_ms": result.response_ms, "status_code": result.status_code,
            "error": result.error, "cert_expires_at": result.cert_expires_at, "degraded": result.degraded}


@router.get("/monitors/{monitor_id}/results")
async def monitor_results(
    request: Request, monitor_id: MonitorId, owner: Reader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[float | None, epoch_query()] = None,
) -> dict[str, Any]:
    """Recent raw check results, newest first (kept `retention.check_results_days`)."""
    await _monitor_or_404(request, monitor_id, owner)
    return {"results": await read(request, lambda conn: reports.recent_results(
        conn, monitor_id, limit=limit, before=before))}


@router.get("/monitors/{monitor_id}/uptime")
async def monitor_uptime(
    request: Request, monitor_id: MonitorId, owner: Reader,
    start: Annotated[float | None, epoch_query("custom range start (epoch seconds)")] = None,
    end: Annotated[float | None, epoch_query("custom range end (epoch seconds)")] = None,
) -> dict[str, Any]:
    """Uptime % and response-time p50/p95 over 24h/7d/30d/90d, and over start..end when given."""
    await _monitor_or_404(request, monitor_id, owner)
    now = runtime_of(request).clock.now()
    if (start is None) != (end is None):
        raise HTTPException(422, "start, end: give both for a custom range")
    if start is not None and end is not None and end <= start:
        raise HTTPException(422, "end: must be after start")

    def query(conn: Connection) -> dict[str, Any]:
        body: dict[str, Any] = {"ranges": reports.uptime_summary(conn, monitor_id, now)}
        if start is not None and end is not None:
            body["custom"] = reports.uptime_between(conn, monitor_id, start, end, now=now)
        return body

    return await read(request, query)


@router.get("/monitors/{monitor_id}/sla")
async def monitor_sla(
    request: Request, monitor_id: MonitorId, owner: Reader,
    month: Annotated[
        str | None, Query(pattern=MONTH_PATTERN, description="YYYY-MM (1970-01 to 9999-12), default now")
    ] = None,
) -> dict[str, Any]:
    """SLA compliance for a calendar month (UTC) and the error budget left, in minutes."""
    monitor = await _monitor_or_404(request, monitor_id, owner)
    if monitor.sla_target is None:
        raise HTTPException(422, "sla_target: this monitor has no SLA target; set one first")
    now = runtime_of(request).clock.now()
    today = dt.datetime.fromtimestamp(now, dt.UTC)
    year, number = (int(month[:4]), int(month[5:])) if month else (today.year, today.month)
    target = monitor.sla_target
    return await read(request, lambda conn: reports.sla_month(
        conn, monitor_id, target, year, number, now))


@router.get("/monitors/{monitor_id}/outages")
async def monitor_outages(request: Request, monitor_id: MonitorId, owner: Reader,
                          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """Outages, newest first: start, end, duration and the error that started each."""
    await _monitor_or_404(request, monitor_id, owner)
    now = runtime_of(request).clock.now()
    return {"outages": await read(request, lambda conn: reports.list_outages(conn, monitor_id, now, limit=limit))}


@router.get("/monitors/{monitor_id}/pings")
async def monitor_pings(request: Request, monitor_id: MonitorId, owner: Reader,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> dict[str, Any]:
    """A heartbeat's recent pings (start, success, fail; run durations; POSTed bodies)."""
    await _monitor_or_404(request, monitor_id, owner)
    return {"pings": await read(request, lambda conn: heartbeats.recent_pings(conn, monitor_id, limit=limit))}


@router.get("/projects/{project_id}/maintenance-windows")
async def list_windows(request: Request, project_id: ProjectId, owner: Reader) -> dict[str, Any]:
    await _check_project(request, project_id, owner)
    windows = await read(request, lambda conn: M.list_windows(conn, [project_id]))
    return {"maintenance_windows": [w.as_json() for w in windows]}


@router.post("/projects/{project_id}/maintenance-windows", status_code=201)
async def create_window(request: Request, project_id: ProjectId, body: M.MaintenanceSpec,
                        owner: Editor) -> dict[str, Any]:
    """A one-off (starts_at, ends_at) or recurring (cron, timezone, duration_seconds) window."""
    await _check_project(request, project_id, owner, write=True)
    if body.monitor_ids:
        mine = {m.id for m in await read(request, lambda conn: MO.list_monitors(conn, project_id))}
        strangers = [i for i in body.monitor_ids if i not in mine]
        if strangers:
            raise HTTPException(422, f"monitor_ids: {strangers[0]} is not a monitor of project {project_id}")
    now = runtime_of(request).clock.now()
    window = await write(request, audited(lambda conn: M.create_window(conn, project_id, body, now=now),
                                          owner.user_id, "maintenance.create", "maintenance_window", now=now,
                                          target=lambda w: w.id, title=body.title))
    return window.as_json()


@router.delete("/maintenance-windows/{window_id}", status_code=204)
async def delete_window(request: Request, window_id: WindowId, owner: Editor) -> None:
    window = await read(request, lambda conn: M.get_window(conn, window_id))
    check_project_access(owner, window.project_id if window else 0, exists=window is not None, write=True,
                         what=f"maintenance window {window_id}")
    await write(request, audited(lambda conn: M.delete_window(conn, window_id), owner.user_id, "maintenance.delete",
                                 "maintenance_window", now=runtime_of(request).clock.now(), target=window_id))


@router.post("/uptime/monitors-file/sync")
async def sync_monitors_file(request: Request, owner: AdminEditor) -> dict[str, int]:
    """Re-read `uptime.monitors_file` and apply it (after editing the file; also done at every start)."""
    uptime = _uptime(request)
    path = runtime_of(request).settings.uptime.monitors_file
    if path is None:
        raise HTTPException(422, "uptime.monitors_file: not set in the settings")
    try:
        uptime.file_monitors = await asyncio.to_thread(load_monitors_file, path)
        counts: dict[str, int] = await uptime.sync_monitors_file()
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    return counts


def _ping_key(conn: Connection, project_id: int) -> str | None:
    return conn.execute(select(ping_keys.c.ping_key).where(ping_keys.c.project_id == project_id)).scalar()


@router.get("/projects/{project_id}/ping-key")
async def get_ping_key(request: Request, project_id: ProjectId, owner: Reader) -> dict[str, Any]:
    """The key of the slug ping URLs `/ping/<ping-key>/<slug>` (null until made with POST)."""
    await _check_project(request, project_id, owner)
    return {"ping_key": await read(request, lambda conn: _ping_key(conn, project_id))}


@router.post("/projects/{project_id}/ping-key")
async def rotate_ping_key(request: Request, project_id: ProjectId, owner: Editor) -> dict[str, Any]:
    """Make (or replace) the project's ping key; old slug URLs stop working."""
    await _check_project(request, project_id, owner, write=True)
    key = secrets.token_urlsafe(16)

    def save(conn: Connection) -> None:
        statement = upsert(conn, ping_keys).values(project_id=project_id, ping_key=key)
        conn.execute(statement.on_conflict_do_update(index_elements=["project_id"], set_={"ping_key": key}))

    await write(request, save)
    return {"ping_key": key}
