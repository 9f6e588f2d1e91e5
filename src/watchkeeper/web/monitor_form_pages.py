"""The monitor form pages: choose a type, create, edit, and "Test now" (runs the check once through the
same checkers and guarded outbound client as the scheduler, and shows the result without saving).
Monitors from the monitors file are shown read-only."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.datastructures import FormData

from watchkeeper.api import MAX_INT, runtime_of, write
from watchkeeper.auth.audit import audited
from watchkeeper.auth.projects import Project
from watchkeeper.uptime import monitors as MO
from watchkeeper.uptime.checkers import CheckContext, CheckResult, run_check
from watchkeeper.uptime.monitors import Monitor, MonitorConflict
from watchkeeper.uptime.specs import MonitorSpec, refused_target
from watchkeeper.web.monitor_form import FIELDS, TYPE_LABELS, FormProblems, form_values, read_monitor_form
from watchkeeper.web.monitor_pages import readable_monitor
from watchkeeper.web.project_pages import see_other
from watchkeeper.web.shell import PageError
from watchkeeper.web.viewer import CurrentPage, Page, checked_form, readable_project, require_write

router = APIRouter(include_in_schema=False)


async def _render(page: Page, project: Project, monitor_type: str, values: dict[str, str], *,
                  monitor: Monitor | None = None, errors: dict[str, str] | None = None,
                  result: CheckResult | None = None, status: int = 200) -> Response:
    read_only = monitor is not None and monitor.managed_by == "config"
    return await page.render(
        "monitor_form.html", status=status, project=project, monitor=monitor, monitor_type=monitor_type,
        type_label=TYPE_LABELS[monitor_type], fields=FIELDS[monitor_type], values=values, errors=errors or {},
        result=result, read_only=read_only, can_write=page.viewer.principal.can_write(project.id),
        action=f"/monitors/{monitor.id}/edit" if monitor else f"/projects/{project.id}/monitors/new",
    )


def _type_of(value: Any) -> str:
    if not isinstance(value, str) or value not in TYPE_LABELS:
        raise PageError(422, "type: choose one of " + ", ".join(TYPE_LABELS))
    return value


@router.get("/projects/{project_id:int}/monitors/new")
async def new_monitor_page(project_id: int, page: CurrentPage) -> Response:
    project = await readable_project(page, project_id)
    require_write(page.viewer, project_id)
    chosen = page.request.query_params.get("type")
    if not chosen:
        return await page.render("monitor_types.html", project=project, types=TYPE_LABELS)
    monitor_type = _type_of(chosen)
    return await _render(page, project, monitor_type, form_values(monitor_type, None))


@router.post("/projects/{project_id:int}/monitors/new")
async def create_monitor(project_id: int, page: CurrentPage) -> Response:
    project = await readable_project(page, project_id)
    form = await checked_form(page.request, page.viewer)
    require_write(page.viewer, project_id)
    monitor_type = _type_of(form.get("type"))
    try:
        values, spec = read_monitor_form(form, monitor_type, None)
    except FormProblems as problems:
        return await _render(page, project, monitor_type, problems.values, errors=problems.errors, status=422)
    if refused := _refused_target(page, spec):
        return await _render(page, project, monitor_type, values, errors=refused, status=422)
    now = runtime_of(page.request).clock.now()
    try:
        created = await write(page.request, audited(
            lambda conn: MO.create_monitor(conn, project_id, spec, now=now), page.viewer.principal.user_id,
            "monitor.create", "monitor", now=now, target=lambda m: m.id, name=spec.name, type=spec.type))
    except MonitorConflict as exc:
        return await _render(page, project, monitor_type, values, errors=_conflict(exc), status=409)
    page.request.app.state.uptime.scheduler.wake()
    return see_other(f"/monitors/{created.id}")


def _refused_target(page: Page, spec: MonitorSpec) -> dict[str, str] | None:
    """The form error when a target is written as an address the outbound guard refuses."""
    refused = refused_target(spec.type, spec.config,
                             allow_private=runtime_of(page.request).settings.outbound.allow_private_targets)
    return {"c_" + refused[0].removeprefix("config."): refused[1]} if refused else None


def _conflict(exc: MonitorConflict) -> dict[str, str]:
    field, _, message = str(exc).partition(": ")
    return {field: message} if message else {"config": str(exc)}


@router.get("/monitors/{monitor_id:int}/edit")
async def edit_monitor_page(monitor_id: int, page: CurrentPage) -> Response:
    monitor, project = await readable_monitor(page, monitor_id)
    return await _render(page, project, monitor.type, form_values(monitor.type, monitor), monitor=monitor)


@router.post("/monitors/{monitor_id:int}/reveal")
async def reveal_monitor_secrets(monitor_id: int, page: CurrentPage) -> Response:
    """The edit form with the stored secrets in clear: for those who may change the monitor only."""
    monitor, project = await readable_monitor(page, monitor_id)
    await checked_form(page.request, page.viewer)
    require_write(page.viewer, project.id)
    return await _render(page, project, monitor.type, form_values(monitor.type, monitor, reveal=True),
                         monitor=monitor)


@router.post("/monitors/{monitor_id:int}/edit")
async def change_monitor(monitor_id: int, page: CurrentPage) -> Response:
    monitor, project = await readable_monitor(page, monitor_id)
    form = await checked_form(page.request, page.viewer)
    require_write(page.viewer, project.id)
    if monitor.managed_by == "config":
        raise PageError(409, "This monitor comes from the monitors file: change it there.")
    try:
        values, spec = read_monitor_form(form, monitor.type, monitor)
    except FormProblems as problems:
        return await _render(page, project, monitor.type, problems.values, monitor=monitor, errors=problems.errors,
                             status=422)
    if refused := _refused_target(page, spec):
        return await _render(page, project, monitor.type, values, monitor=monitor, errors=refused, status=422)
    now = runtime_of(page.request).clock.now()
    try:
        await write(page.request, audited(lambda conn: MO.change_monitor(conn, monitor, spec, now=now),
                                          page.viewer.principal.user_id, "monitor.change", "monitor", now=now,
                                          target=monitor.id, name=spec.name))
    except MonitorConflict as exc:
        return await _render(page, project, monitor.type, values, monitor=monitor, errors=_conflict(exc), status=409)
    page.request.app.state.uptime.scheduler.wake()
    return see_other(f"/monitors/{monitor_id}")


async def check_once(page: Page, spec: MonitorSpec) -> CheckResult:
    """Run the spec's check once with the scheduler's outbound client; nothing is recorded."""
    scheduler = page.request.app.state.uptime.scheduler
    ctx = CheckContext(scheduler.outbound, scheduler.clock, spec.timeout_seconds, shard=int(time.monotonic_ns()))
    return await run_check(spec.type, spec.config, ctx)


def _monitor_id(form: FormData) -> int | None:
    value = form.get("monitor_id")
    if isinstance(value, str) and value.isdigit() and 1 <= int(value) <= MAX_INT:
        return int(value)
    return None


@router.post("/projects/{project_id:int}/monitors/test")
async def test_monitor(project_id: int, page: CurrentPage) -> Response:
    """The form again, as filled in, with the result of one check of what it holds."""
    project = await readable_project(page, project_id)
    form = await checked_form(page.request, page.viewer)
    require_write(page.viewer, project_id)
    monitor_type = _type_of(form.get("type"))
    stored = None
    if (monitor_id := _monitor_id(form)) is not None:
        stored, _ = await readable_monitor(page, monitor_id)
        if stored.project_id != project_id or stored.type != monitor_type:
            raise PageError(404, "No such monitor.")
    if monitor_type == "heartbeat":
        raise PageError(422, "type: a heartbeat is not checked, it is pinged")
    try:
        values, spec = read_monitor_form(form, monitor_type, stored)
    except FormProblems as problems:
        # Nothing is saved here, so a form that cannot be tested is an answer, not a refused change:
        # the form again with each error next to its field.
        return await _render(page, project, monitor_type, problems.values, monitor=stored, errors=problems.errors)
    result = await check_once(page, spec)
    return await _render(page, project, monitor_type, values, monitor=stored, result=result)
