"""Pages to run a project's public status pages: the list (with the project's maintenance windows), and
the editor of one page: settings (slug, title, logo, description), components grouped and mapped to
monitors with an optional SLA each (compliance this month, error budget left), incidents with updates,
and maintenance windows. The same rules as the REST API (uptime.status_page_api) apply."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import Connection, delete, select
from starlette.datastructures import FormData

from watchkeeper.api import MAX_INT, read, runtime_of, write
from watchkeeper.auth.audit import audited
from watchkeeper.auth.projects import Project
from watchkeeper.uptime import maintenance as M
from watchkeeper.uptime import monitors as MO
from watchkeeper.uptime.incidents import (
    DEFAULT_INCIDENT_MESSAGE,
    DEFAULT_INCIDENT_TITLE,
    IncidentSpec,
    IncidentUpdateSpec,
    add_update,
    list_incidents,
    open_incident,
)
from watchkeeper.uptime.status_page_api import (
    StatusPageSpec,
    components_sla,
    get_page,
    list_page_ids,
    month_of,
    save_page,
    spec_problem,
)
from watchkeeper.uptime.status_pages import component_uptime_30d
from watchkeeper.uptime.tables import incidents, status_pages
from watchkeeper.web.form_errors import human_message
from watchkeeper.web.project_pages import see_other
from watchkeeper.web.shell import PageError
from watchkeeper.web.timerange import parse_local
from watchkeeper.web.viewer import CurrentPage, Page, checked_form, readable_project, require_write

router = APIRouter(include_in_schema=False)
INCIDENT_STATUSES = ("investigating", "identified", "monitoring", "resolved")
BLANK_COMPONENTS = 2  # empty rows offered for new components
WINDOW_FIELDS = {"starts_at": "starts", "ends_at": "ends", "duration_seconds": "duration_minutes"}


def _text(form: FormData, name: str, limit: int = 2000) -> str:
    value = form.get(name)
    return value.replace("\x00", "").strip()[:limit] if isinstance(value, str) else ""


def _ints(form: FormData, name: str) -> list[int]:
    return [int(v) for v in form.getlist(name) if isinstance(v, str) and v.isdigit() and 1 <= int(v) <= MAX_INT]


def _errors_of(exc: ValidationError, prefix: str = "") -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        where = prefix + ".".join(str(p) for p in error["loc"]) if error["loc"] else prefix + "form"
        errors.setdefault(where, human_message(error))
    return errors


async def _project_monitors(page: Page, project_id: int) -> list[MO.Monitor]:
    return await read(page.request, lambda conn: MO.list_monitors(conn, project_id))


# --- the list --------------------------------------------------------------------------------------


@router.get("/projects/{project_id:int}/status-pages")
async def status_pages_page(project_id: int, page: CurrentPage) -> Response:
    project = await readable_project(page, project_id)
    return await _render_list(page, project)


async def _render_list(page: Page, project: Project, *, values: dict[str, str] | None = None,
                       errors: dict[str, str] | None = None, window_values: dict[str, Any] | None = None,
                       window_errors: dict[str, str] | None = None, status: int = 200) -> Response:
    def load(conn: Connection) -> dict[str, Any]:
        return {
            "pages": [p for i in list_page_ids(conn, project.id) if (p := get_page(conn, i)) is not None],
            "windows": M.list_windows(conn, [project.id]),
            "monitors": MO.list_monitors(conn, project.id),
        }

    data = await read(page.request, load)
    names = {m.id: m.name for m in data["monitors"]}
    windows = [{"window": w, "period": w.current_period(page.now) or w.next_period(page.now),
                "monitors": [names.get(i, f"#{i}") for i in (w.monitor_ids or [])]} for w in data["windows"]]
    return await page.render(
        "status_editor_list.html", status=status, project=project, pages=data["pages"], windows=windows,
        monitors=data["monitors"], values=values or {}, errors=errors or {},
        window_values=window_values or {"timezone": page.viewer.zone.key}, window_errors=window_errors or {},
        can_write=page.viewer.principal.can_write(project.id),
        base_url=runtime_of(page.request).settings.base_url,
    )


def _settings_of(form: FormData) -> dict[str, Any]:
    return {"slug": _text(form, "slug", 64), "title": _text(form, "title", 200),
            "logo_url": _text(form, "logo_url", 500) or None, "description": _text(form, "description") or None,
            "incident_title": _text(form, "incident_title", 201) or None,
            "incident_message": _text(form, "incident_message", 2001) or None}


@router.post("/projects/{project_id:int}/status-pages")
async def create_status_page(project_id: int, page: CurrentPage) -> Response:
    project = await readable_project(page, project_id)
    form = await checked_form(page.request, page.viewer)
    require_write(page.viewer, project_id)
    values = _settings_of(form)
    shown = {k: v or "" for k, v in values.items()}
    try:
        spec = StatusPageSpec.model_validate(values)
    except ValidationError as exc:
        return await _render_list(page, project, values=shown, errors=_errors_of(exc), status=422)
    now = runtime_of(page.request).clock.now()

    def create(conn: Connection) -> int | str:
        problem = spec_problem(conn, project_id, spec, None)
        return problem if problem is not None else save_page(conn, project_id, spec, None, now=now)

    created = await write(page.request, audited(create, page.viewer.principal.user_id, "status_page.create",
                                                "status_page", now=now,
                                                target=lambda made: made, done=lambda made: isinstance(made, int),
                                                slug=spec.slug))
    if isinstance(created, str):
        field, _, message = created.partition(": ")
        return await _render_list(page, project, values=shown, errors={field: message}, status=409)
    return see_other(f"/status-pages/{created}/edit")


# --- one page ----------------------------------------------------------------------------------------


async def _readable_page(page: Page, page_id: int) -> tuple[dict[str, Any], Project]:
    found = await read(page.request, lambda conn: get_page(conn, page_id)) if page_id <= MAX_INT else None
    if found is None or not page.viewer.principal.can_read(found["project_id"]):
        raise PageError(404, "No such status page.")
    return found, await readable_project(page, found["project_id"])


@router.get("/status-pages/{page_id:int}/edit")
async def editor_page(page_id: int, page: CurrentPage) -> Response:
    status_page, project = await _readable_page(page, page_id)
    return await _render_editor(page, project, status_page, _shown_page(status_page))


def _shown_page(status_page: dict[str, Any]) -> dict[str, Any]:
    """The editor's form values of a stored page."""
    return {
        "slug": status_page["slug"], "title": status_page["title"], "logo_url": status_page["logo_url"] or "",
        "description": status_page["description"] or "",
        "incident_title": status_page["incident_title"] or "",
        "incident_message": status_page["incident_message"] or "",
        "components": [{"name": c["name"], "group": c["group"] or "", "monitor_ids": c["monitor_ids"],
                        "sla_target": "" if c["sla_target"] is None else f"{c['sla_target']:g}"}
                       for c in status_page["components"]],
    }


async def _render_editor(page: Page, project: Project, status_page: dict[str, Any], values: dict[str, Any], *,
                         errors: dict[str, str] | None = None, incident_errors: dict[str, str] | None = None,
                         status: int = 200) -> Response:
    year, month = month_of(None, page.now)

    def load(conn: Connection) -> dict[str, Any]:
        return {
            "monitors": MO.list_monitors(conn, project.id),
            "sla": {s["id"]: s for s in components_sla(conn, status_page, year, month, page.now)},
            "uptime": {c["id"]: component_uptime_30d(conn, c["monitor_ids"], page.now)
                       for c in status_page["components"]},
            "incidents": list_incidents(conn, status_page["id"], since=page.now - 90 * 86400),
        }

    data = await read(page.request, load)
    rows = values["components"] + [{"name": "", "group": "", "monitor_ids": [], "sla_target": ""}] * BLANK_COMPONENTS
    stored = status_page["components"]
    return await page.render(
        "status_editor.html", status=status, project=project, status_page=status_page, values=values, rows=rows,
        stored_ids=[c["id"] for c in stored], errors=errors or {}, incident_errors=incident_errors or {},
        month=f"{year:04d}-{month:02d}", incident_statuses=INCIDENT_STATUSES,
        default_incident_title=DEFAULT_INCIDENT_TITLE, default_incident_message=DEFAULT_INCIDENT_MESSAGE,
        can_write=page.viewer.principal.can_write(project.id), **data,
    )


def _components_of(form: FormData) -> list[dict[str, Any]]:
    """The component rows of the editor form (`c<n>_name`, `c<n>_group`, `c<n>_monitors`, `c<n>_sla`);
    rows with no name and no monitors, or ticked "remove", are left out."""
    rows = []
    for index in range(200 + BLANK_COMPONENTS):
        if f"c{index}_name" not in form:
            break
        row = {"name": _text(form, f"c{index}_name", 200), "group": _text(form, f"c{index}_group", 200),
               "monitor_ids": _ints(form, f"c{index}_monitors"), "sla_target": _text(form, f"c{index}_sla", 20)}
        if form.get(f"c{index}_remove") == "on" or (not row["name"] and not row["monitor_ids"]):
            continue
        rows.append(row)
    return rows


def _spec_of(settings: dict[str, Any], rows: list[dict[str, Any]]) -> tuple[StatusPageSpec | None, dict[str, str]]:
    errors: dict[str, str] = {}
    components = []
    for index, row in enumerate(rows):
        sla: float | None = None
        if row["sla_target"]:
            try:
                sla = float(row["sla_target"])
            except ValueError:
                errors[f"components.{index}.sla_target"] = "a number, e.g. 99.9"
        components.append({"name": row["name"], "group": row["group"] or None, "monitor_ids": row["monitor_ids"],
                           "sla_target": sla})
    try:
        spec = StatusPageSpec.model_validate({**settings, "components": components})
    except ValidationError as exc:
        return None, _errors_of(exc) | errors
    return (spec, errors) if not errors else (None, errors)


@router.post("/status-pages/{page_id:int}/edit")
async def save_editor(page_id: int, page: CurrentPage) -> Response:
    status_page, project = await _readable_page(page, page_id)
    form = await checked_form(page.request, page.viewer)
    require_write(page.viewer, project.id)
    settings = _settings_of(form)
    rows = _components_of(form)
    values = {**{k: v or "" for k, v in settings.items()}, "components": rows}
    spec, errors = _spec_of(settings, rows)
    if spec is None:
        return await _render_editor(page, project, status_page, values, errors=errors, status=422)
    now = runtime_of(page.request).clock.now()

    def save(conn: Connection) -> str | None:
        problem = spec_problem(conn, project.id, spec, page_id)
        if problem is None:
            save_page(conn, project.id, spec, page_id, now=now)
        return problem

    problem = await write(page.request, audited(save, page.viewer.principal.user_id, "status_page.change",
                                                "status_page", now=now, target=page_id,
                                                done=lambda problem: problem is None, slug=spec.slug))
    if problem is not None:
        field, _, message = problem.partition(": ")
        return await _render_editor(page, project, status_page, values, errors={field: message},
                                    status=409 if field == "slug" else 422)
    return see_other(f"/status-pages/{page_id}/edit?saved=1")


@router.post("/status-pages/{page_id:int}/delete")
async def delete_status_page(page_id: int, page: CurrentPage) -> Response:
    _, project = await _readable_page(page, page_id)
    await checked_form(page.request, page.viewer)
    require_write(page.viewer, project.id)
    remove = delete(status_pages).where(status_pages.c.id == page_id)
    await write(page.request, audited(lambda conn: conn.execute(remove), page.viewer.principal.user_id,
                                      "status_page.delete", "status_page", now=runtime_of(page.request).clock.now(),
                                      target=page_id))
    return see_other(f"/projects/{project.id}/status-pages")


@router.post("/status-pages/{page_id:int}/incidents")
async def post_incident(page_id: int, page: CurrentPage) -> Response:
    status_page, project = await _readable_page(page, page_id)
    form = await checked_form(page.request, page.viewer)
    require_write(page.viewer, project.id)
    try:
        spec = IncidentSpec.model_validate({"title": _text(form, "title", 200), "status": _text(form, "status", 20),
                                            "message": _text(form, "message", 10_000)})
    except ValidationError as exc:
        return await _render_editor(page, project, status_page, _shown_page(status_page),
                                    incident_errors=_errors_of(exc, "new."), status=422)
    now = runtime_of(page.request).clock.now()
    await write(page.request, lambda conn: open_incident(conn, page_id, spec, now=now))
    return see_other(f"/status-pages/{page_id}/edit#incidents")


@router.post("/status-pages/{page_id:int}/incidents/{incident_id:int}/updates")
async def post_incident_update(page_id: int, incident_id: int, page: CurrentPage) -> Response:
    status_page, project = await _readable_page(page, page_id)
    form = await checked_form(page.request, page.viewer)
    require_write(page.viewer, project.id)
    found = await read(page.request, lambda conn: conn.execute(select(incidents.c.id).where(
        incidents.c.id == incident_id, incidents.c.page_id == page_id)).scalar()) if incident_id <= MAX_INT else None
    if found is None:
        raise PageError(404, "No such incident on this page.")
    try:
        spec = IncidentUpdateSpec.model_validate({"status": _text(form, "status", 20),
                                                  "message": _text(form, "message", 10_000)})
    except ValidationError as exc:
        return await _render_editor(page, project, status_page, _shown_page(status_page),
                                    incident_errors=_errors_of(exc, f"{incident_id}."), status=422)
    now = runtime_of(page.request).clock.now()
    await write(page.request, lambda conn: add_update(conn, incident_id, spec, now=now))
    return see_other(f"/status-pages/{page_id}/edit#incident-{incident_id}")


# --- maintenance windows ---------------------------------------------------------------------------------


def _local_epoch(text: str, page: Page) -> float | None:
    try:
        return parse_local(text, page.viewer.zone)
    except ValueError:
        return None


@router.post("/projects/{project_id:int}/maintenance")
async def create_window(project_id: int, page: CurrentPage) -> Response:
    """A one-off window (start and end in the viewer's zone) or a recurring one (cron, zone, minutes)."""
    project = await readable_project(page, project_id)
    form = await checked_form(page.request, page.viewer)
    require_write(page.viewer, project_id)
    shown: dict[str, Any] = {name: _text(form, name, 200) for name in
                             ("title", "kind", "starts", "ends", "cron", "timezone", "duration_minutes")}
    shown["monitor_ids"] = _ints(form, "monitor_ids")
    errors: dict[str, str] = {}
    body: dict[str, Any] = {"title": shown["title"], "monitor_ids": shown["monitor_ids"] or None}
    if shown["kind"] == "recurring":
        minutes = shown["duration_minutes"]
        if not minutes.isdigit():
            errors["duration_minutes"] = "a whole number of minutes"
        body |= {"cron": shown["cron"] or None, "timezone": shown["timezone"] or "UTC",
                 "duration_seconds": int(minutes) * 60 if minutes.isdigit() else None}
    else:
        for name in ("starts", "ends"):
            if _local_epoch(shown[name], page) is None:
                errors[name] = "a date and time"
        body |= {"starts_at": _local_epoch(shown["starts"], page), "ends_at": _local_epoch(shown["ends"], page)}
    mine = {m.id for m in await _project_monitors(page, project_id)}
    if any(i not in mine for i in shown["monitor_ids"]):
        errors["monitor_ids"] = "not a monitor of this project"
    spec = None
    if not errors:
        try:
            spec = M.MaintenanceSpec.model_validate(body)
        except ValidationError as exc:
            for where, message in _errors_of(exc).items():
                key = WINDOW_FIELDS.get(where, where)
                if key == "form" and message.startswith("the end: "):
                    key, message = "ends", message.removeprefix("the end: ")
                errors.setdefault(key, message)
    if spec is None:
        return await _render_list(page, project, window_values=shown, window_errors=errors, status=422)
    now = runtime_of(page.request).clock.now()
    await write(page.request, audited(lambda conn: M.create_window(conn, project_id, spec, now=now),
                                      page.viewer.principal.user_id, "maintenance.create", "maintenance_window",
                                      now=now, target=lambda w: w.id, title=spec.title))
    return see_other(f"/projects/{project_id}/status-pages#maintenance")


@router.post("/maintenance-windows/{window_id:int}/delete")
async def delete_window(window_id: int, page: CurrentPage) -> Response:
    window = await read(page.request, lambda conn: M.get_window(conn, window_id)) if window_id <= MAX_INT else None
    if window is None or not page.viewer.principal.can_read(window.project_id):
        raise PageError(404, "No such maintenance window.")
    await checked_form(page.request, page.viewer)
    require_write(page.viewer, window.project_id)
    await write(page.request, audited(lambda conn: M.delete_window(conn, window_id), page.viewer.principal.user_id,
                                      "maintenance.delete", "maintenance_window",
                                      now=runtime_of(page.request).clock.now(), target=window_id))
    return see_other(f"/projects/{window.project_id}/status-pages#maintenance")
