"""Pages for projects: list, create, settings (name, retention, scrubbing, rate limits), DSN keys and
the setup instructions a new project shows."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import Connection
from starlette.datastructures import FormData

from watchkeeper.api import MAX_INT, read, runtime_of, write
from watchkeeper.auth import audit
from watchkeeper.auth import projects as P
from watchkeeper.auth import teams as T
from watchkeeper.auth import users as U
from watchkeeper.auth.access import Principal
from watchkeeper.auth.api import SCRUBBING_KEYS, _owning_team
from watchkeeper.errors.issues import count_issues
from watchkeeper.errors.scrubbing import ScrubbingRules
from watchkeeper.web.shell import PageError
from watchkeeper.web.viewer import CurrentPage, Page, checked_form, readable_project, require_write

router = APIRouter(include_in_schema=False)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@router.get("/")
async def home(request: Request) -> Response:
    return see_other("/projects")


@router.get("/projects")
async def projects_page(page: CurrentPage) -> Response:
    def counts(conn: Connection) -> dict[int, int]:
        return {p.id: count_issues(conn, p.id) for p in P.list_projects(conn) if page.viewer.principal.can_read(p.id)}

    return await page.render("projects.html", issue_counts=await read(page.request, counts),
                             deleted=page.request.query_params.get("deleted", "")[:200],
                             **await _team_situation(page))


async def _team_situation(page: Page) -> dict[str, Any]:
    """Whether the viewer is in no team (then they can neither see nor create a project), and who can
    change that: the active administrators."""
    principal = page.viewer.principal
    if principal.role == "admin":
        return {"teamless": False, "admins": []}

    def load(conn: Connection) -> dict[str, Any]:
        if T.list_teams(conn, user_id=principal.user_id):
            return {"teamless": False, "admins": []}
        admins = [u.email for u in U.list_users(conn) if u.role == "admin" and u.is_active]
        return {"teamless": True, "admins": admins}

    return await read(page.request, load)


def record(conn: Connection, principal: Principal, action: str, target: tuple[str, int], now: float,
           **details: Any) -> None:
    """An audit-log entry for a change made on a page, in the change's own transaction."""
    audit.record(conn, actor_user_id=principal.user_id, action=action, target_type=target[0],
                 target_id=target[1], details=details, now=now)


def _may_create(page: Page) -> None:
    if not page.viewer.principal.may_create_projects:
        raise PageError(403, "Your role may not create projects.")


async def _teams_for_new_project(page: Page) -> list[T.Team]:
    principal = page.viewer.principal
    user_id = None if principal.role == "admin" else principal.user_id
    return await read(page.request, lambda conn: T.list_teams(conn, user_id=user_id))


@router.get("/projects/new")
async def new_project_page(page: CurrentPage) -> Response:
    _may_create(page)
    teams = await _teams_for_new_project(page)
    return await page.render("project_new.html", errors={}, name="", platform="", teams=teams, team_id=None,
                             **await _team_situation(page))


@router.post("/projects")
async def create_project(page: CurrentPage) -> Response:
    form = await checked_form(page.request, page.viewer)
    _may_create(page)
    name, platform, team = _text(form, "name"), _text(form, "platform"), _text(form, "team_id")
    team_id = int(team) if team.isdigit() and int(team) <= MAX_INT else None
    principal = page.viewer.principal
    now = runtime_of(page.request).clock.now()

    def create(conn: Connection) -> P.Project:
        owner = _owning_team(conn, principal, team_id)  # the API's rule: one of the creator's teams
        T.check_project_name(conn, name, [owner] if owner is not None else [])
        project = P.create_project(conn, name, now=now, platform=platform or None)
        if owner is not None:
            T.add_project(conn, owner, project.id)
        record(conn, principal, "project.create", ("project", project.id), now, name=project.name, team_id=owner)
        return project

    try:
        created = await write(page.request, create)
    except P.ProjectError as exc:
        field, _, message = str(exc).partition(": ")
        errors = {field: message} if field in ("name", "team_id") else {"form": str(exc)}
        teams = await _teams_for_new_project(page)
        return await page.render("project_new.html", status=422, errors=errors, name=name, platform=platform,
                                 teams=teams, team_id=team_id, **await _team_situation(page))
    return see_other(f"/projects/{created.id}/setup")


async def _dsn_and_keys(page: Page, project_id: int) -> tuple[str | None, list[P.ProjectKey]]:
    keys = await read(page.request, lambda conn: P.list_keys(conn, project_id))
    base = runtime_of(page.request).settings.base_url
    active = next((k for k in keys if k.is_active), None)
    return (active.dsn(base) if active else None), keys


@router.get("/projects/{project_id:int}")
async def project_home(project_id: int, page: CurrentPage) -> Response:
    await readable_project(page, project_id)
    return see_other(f"/projects/{project_id}/issues{page.filter.query()}")


@router.get("/projects/{project_id:int}/setup")
async def setup_page(project_id: int, page: CurrentPage) -> Response:
    project = await readable_project(page, project_id)
    dsn, _ = await _dsn_and_keys(page, project_id)
    base_url = runtime_of(page.request).settings.base_url
    return await page.render("setup.html", project=project, dsn=dsn, base_url=base_url)


@router.get("/projects/{project_id:int}/settings")
async def settings_page(project_id: int, page: CurrentPage) -> Response:
    project = await readable_project(page, project_id)
    return await _render_settings(page, project, _stored_values(project))


async def _render_settings(page: Page, project: P.Project, values: dict[str, Any], errors: dict[str, str] | None = None,
                           delete_errors: dict[str, str] | None = None, status: int = 200) -> Response:
    return await page.render("project_settings.html", status=status, project=project, values=values,
                             errors=errors or {}, delete_errors=delete_errors or {})


def _stored_values(project: P.Project) -> dict[str, Any]:
    """The settings form's fields as the project has them."""
    stored = project.settings.get("scrubbing", {})
    return {
        "name": project.name,
        "platform": project.platform or "",
        "retention_days": str(project.retention_days or ""),
        "events_per_minute": str(project.events_per_minute or ""),
        "events_per_hour": str(project.events_per_hour or ""),
        "scrub_data": stored.get("scrub_data", True),
        "scrub_ip_addresses": stored.get("scrub_ip_addresses", True),
        "sensitive_fields": "\n".join(stored.get("sensitive_fields", [])),
        "safe_fields": "\n".join(stored.get("safe_fields", [])),
    }


def _posted_values(form: FormData) -> dict[str, Any]:
    """The settings form's fields as posted, shown again when something is wrong."""
    values: dict[str, Any] = {name: _text(form, name, 10_000 if name.endswith("fields") else 200) for name in (
        "name", "platform", "retention_days", "events_per_minute", "events_per_hour", "sensitive_fields",
        "safe_fields")}
    values["scrub_data"] = form.get("scrub_data") == "on"
    values["scrub_ip_addresses"] = form.get("scrub_ip_addresses") == "on"
    return values


def _text(form: FormData, name: str, limit: int = 200) -> str:
    value = form.get(name)
    text = value.strip() if isinstance(value, str) else ""
    if "\x00" in text:
        raise PageError(422, f"{name}: may not contain NUL characters")
    return text[:limit]


def _optional_int(values: dict[str, Any], name: str, low: int, high: int, errors: dict[str, str]) -> int | None:
    text = values[name]
    if not text:
        return None
    if not text.isdigit() or not low <= int(text) <= high:
        errors[name] = f"a whole number from {low:,} to {high:,}, or empty"
        return None
    return int(text)


def _names(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _project_changes(values: dict[str, Any], project: P.Project) -> tuple[dict[str, Any], dict[str, str]]:
    """The changes the settings form asks for, and what is wrong, by field."""
    errors: dict[str, str] = {}
    if not values["name"]:
        errors["name"] = "a project needs a name"
    scrubbing = {
        "scrub_data": values["scrub_data"],
        "scrub_ip_addresses": values["scrub_ip_addresses"],
        "sensitive_fields": _names(values["sensitive_fields"]),
        "safe_fields": _names(values["safe_fields"]),
    }
    assert set(scrubbing) <= SCRUBBING_KEYS
    for field in ("sensitive_fields", "safe_fields"):
        try:
            ScrubbingRules.from_settings({field: scrubbing[field]})
        except ValueError as exc:
            errors[field] = str(exc).split(": ", 1)[-1]
    changes = {
        "name": values["name"],
        "platform": values["platform"][:64] or None,
        "retention_days": _optional_int(values, "retention_days", 1, 3650, errors),
        "events_per_minute": _optional_int(values, "events_per_minute", 1, MAX_INT, errors),
        "events_per_hour": _optional_int(values, "events_per_hour", 1, MAX_INT, errors),
        "settings": {**project.settings, "scrubbing": scrubbing},
    }
    return changes, errors


@router.post("/projects/{project_id:int}/settings")
async def save_settings(project_id: int, page: CurrentPage) -> Response:
    project = await readable_project(page, project_id)
    form = await checked_form(page.request, page.viewer)
    require_write(page.viewer, project_id)
    values = _posted_values(form)
    changes, errors = _project_changes(values, project)
    now = runtime_of(page.request).clock.now()

    def change(conn: Connection) -> None:
        T.check_project_name(conn, changes["name"], T.teams_of_project(conn, project_id), except_project=project_id)
        P.update_project(conn, project_id, changes)
        record(conn, page.viewer.principal, "project.change", ("project", project_id), now,
               **{k: v for k, v in changes.items() if k != "settings"}, scrubbing=changes["settings"]["scrubbing"])

    if not errors:
        try:
            await write(page.request, change)
        except P.ProjectError as exc:
            field, _, message = str(exc).partition(": ")
            errors[field if field in values else "form"] = message or str(exc)
    if errors:
        return await _render_settings(page, project, values, errors, status=422)
    runtime_of(page.request).key_cache.invalidate()
    return see_other(f"/projects/{project_id}/settings?saved=1")


@router.post("/projects/{project_id:int}/delete")
async def delete_project(project_id: int, page: CurrentPage) -> Response:
    """Delete a project (admins, as DELETE /api/v1/projects/{id}) once its name is typed to confirm."""
    project = await readable_project(page, project_id)
    form = await checked_form(page.request, page.viewer)
    if not page.viewer.principal.is_admin:
        raise PageError(403, "Only an administrator may delete a project.")
    typed = _text(form, "confirm_name")
    if typed != project.name:
        message = "type the project's name exactly as shown" if typed else "type the project's name to confirm"
        return await _render_settings(page, project, _stored_values(project), status=422,
                                      delete_errors={"confirm_name": message})
    now = runtime_of(page.request).clock.now()

    def delete(conn: Connection) -> None:
        if P.delete_project(conn, project_id):
            record(conn, page.viewer.principal, "project.delete", ("project", project_id), now, name=project.name)

    await write(page.request, delete)
    runtime_of(page.request).key_cache.invalidate()
    return see_other(f"/projects?deleted={quote(project.name)}")


@router.get("/projects/{project_id:int}/keys")
async def keys_page(project_id: int, page: CurrentPage) -> Response:
    project = await readable_project(page, project_id)
    _, keys = await _dsn_and_keys(page, project_id)
    base = runtime_of(page.request).settings.base_url
    return await page.render("project_keys.html", project=project, keys=[(k, k.dsn(base)) for k in keys])


async def _key_of(page: Page, project_id: int, key_id: int) -> P.ProjectKey:
    key = await read(page.request, lambda conn: P.get_key(conn, key_id)) if key_id <= MAX_INT else None
    if key is None or key.project_id != project_id:
        raise PageError(404, "No such key.")
    return key


@router.post("/projects/{project_id:int}/keys")
async def create_key(project_id: int, page: CurrentPage) -> Response:
    await readable_project(page, project_id)
    form = await checked_form(page.request, page.viewer)
    require_write(page.viewer, project_id)
    label = _text(form, "label") or "Default"
    now = runtime_of(page.request).clock.now()

    def create(conn: Connection) -> None:
        key = P.create_key(conn, project_id, now=now, label=label)
        record(conn, page.viewer.principal, "key.create", ("key", key.id), now, project_id=project_id, label=label)

    await write(page.request, create)
    return see_other(f"/projects/{project_id}/keys")


@router.post("/projects/{project_id:int}/keys/{key_id:int}/rotate")
async def rotate_key(project_id: int, key_id: int, page: CurrentPage) -> Response:
    await readable_project(page, project_id)
    await checked_form(page.request, page.viewer)
    require_write(page.viewer, project_id)
    await _key_of(page, project_id, key_id)
    now = runtime_of(page.request).clock.now()

    def rotate(conn: Connection) -> None:
        key = P.rotate_key(conn, key_id, now=now)
        if key is not None:
            record(conn, page.viewer.principal, "key.rotate", ("key", key_id), now, project_id=project_id,
                   new_key_id=key.id)

    await write(page.request, rotate)
    runtime_of(page.request).key_cache.invalidate()
    return see_other(f"/projects/{project_id}/keys")


@router.post("/projects/{project_id:int}/keys/{key_id:int}/active")
async def set_key_active(project_id: int, key_id: int, page: CurrentPage) -> Response:
    await readable_project(page, project_id)
    form = await checked_form(page.request, page.viewer)
    require_write(page.viewer, project_id)
    await _key_of(page, project_id, key_id)
    active = form.get("active") == "1"
    now = runtime_of(page.request).clock.now()

    def switch(conn: Connection) -> None:
        if P.update_key(conn, key_id, {"is_active": active}) is not None:
            record(conn, page.viewer.principal, "key.change" if active else "key.disable", ("key", key_id), now,
                   project_id=project_id, is_active=active)

    await write(page.request, switch)
    runtime_of(page.request).key_cache.invalidate()
    return see_other(f"/projects/{project_id}/keys")
