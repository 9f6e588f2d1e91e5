"""Pages for administrators: users (create, role, deactivate, reset password), teams (members and the
projects they own) and the audit log.

The rules are the REST API's (`watchkeeper.auth.accounts_api`, `team_api`): the last active admin
cannot be demoted or deactivated, a deactivated user or one whose password was reset is logged out
everywhere, and every change is audited in its own transaction. Anyone else gets 403, as the API
answers: these pages are no secret, only not theirs.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from sqlalchemy import Connection
from starlette.datastructures import FormData

from watchkeeper.api import MAX_INT, decode_cursor, encode_cursor, read, runtime_of, write
from watchkeeper.auth import projects as P
from watchkeeper.auth import teams as T
from watchkeeper.auth import users as U
from watchkeeper.auth.audit import list_entries
from watchkeeper.auth.sessions import end_user_sessions
from watchkeeper.auth.tokens import revoke_user_tokens
from watchkeeper.web.project_pages import _text, record, see_other
from watchkeeper.web.shell import PageError
from watchkeeper.web.viewer import CurrentPage, Page, checked_form

router = APIRouter(include_in_schema=False)
AUDIT_PAGE_SIZE = 50


def require_admin(page: Page) -> None:
    if not page.viewer.principal.is_admin:
        raise PageError(403, "Only administrators may manage users, teams and the audit log.")


async def _admin_form(page: Page) -> FormData:
    form = await checked_form(page.request, page.viewer)
    require_admin(page)
    return form


def _id(value: object) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() and 1 <= int(value) <= MAX_INT else None


# --- users ---


async def render_users(page: Page, status: int = 200, **extra: Any) -> Response:
    def load(conn: Connection) -> list[tuple[U.User, list[T.Team]]]:
        return [(u, T.list_teams(conn, user_id=u.id)) for u in U.list_users(conn)]

    context: dict[str, Any] = {"error": None, "secret": None, "email": "", "role": "member"}
    context.update(extra)
    return await page.render("admin_users.html", status=status, users=await read(page.request, load), **context)


@router.get("/admin/users")
async def users_page(page: CurrentPage) -> Response:
    require_admin(page)
    return await render_users(page)


@router.post("/admin/users")
async def create_user(page: CurrentPage) -> Response:
    form = await _admin_form(page)
    email, role = _text(form, "email", 300), _text(form, "role")
    password = U.generate_password()
    now = runtime_of(page.request).clock.now()
    principal = page.viewer.principal

    def create(conn: Connection) -> U.User:
        user = U.create_user(conn, email, password, role=role, now=now, one_time=True)
        record(conn, principal, "user.create", ("user", user.id), now, email=user.email, role=user.role)
        return user

    try:
        user = await write(page.request, create)
    except U.UserError as exc:
        return await render_users(page, status=422, error=str(exc), email=email, role=role)
    return await render_users(page, secret=(user.email, password, "created"))


async def _user(page: Page, user_id: int) -> U.User:
    user = await read(page.request, lambda conn: U.get_user(conn, user_id)) if user_id <= MAX_INT else None
    if user is None:
        raise PageError(404, "No such user.")
    return user


async def _change_user(page: Page, user_id: int, **change: Any) -> Response:
    """A role or active-flag change, as PATCH /api/v1/users/{id}."""
    principal = page.viewer.principal
    now = runtime_of(page.request).clock.now()

    def apply(conn: Connection) -> None:
        if U.change_user(conn, user_id, **change) is None:
            return
        if change.get("is_active") is False:
            end_user_sessions(conn, user_id)
            revoke_user_tokens(conn, user_id, now=now)
        record(conn, principal, "user.change", ("user", user_id), now, **change)

    try:
        await write(page.request, apply)
    except U.UserError as exc:
        return await render_users(page, status=422, error=str(exc))
    return see_other("/admin/users?saved=1")


@router.post("/admin/users/{user_id:int}/role")
async def change_role(user_id: int, page: CurrentPage) -> Response:
    form = await _admin_form(page)
    await _user(page, user_id)
    role = _text(form, "role")
    if role not in U.ROLES:
        return await render_users(page, status=422, error=f"role: must be one of {', '.join(U.ROLES)}")
    return await _change_user(page, user_id, role=role)


@router.post("/admin/users/{user_id:int}/active")
async def change_active(user_id: int, page: CurrentPage) -> Response:
    form = await _admin_form(page)
    await _user(page, user_id)
    return await _change_user(page, user_id, is_active=form.get("active") == "1")


@router.post("/admin/users/{user_id:int}/password")
async def reset_password(user_id: int, page: CurrentPage) -> Response:
    await _admin_form(page)
    user = await _user(page, user_id)
    password = U.generate_password()
    principal = page.viewer.principal
    now = runtime_of(page.request).clock.now()

    def reset(conn: Connection) -> None:
        U.set_password(conn, user_id, password, one_time=True)
        end_user_sessions(conn, user_id)
        revoke_user_tokens(conn, user_id, now=now)
        record(conn, principal, "user.password_reset", ("user", user_id), now)

    await write(page.request, reset)
    if user_id == principal.user_id:  # their own sessions ended with the others, this one too
        return see_other("/login")
    return await render_users(page, secret=(user.email, password, "reset"))


# --- teams ---


async def render_teams(page: Page, status: int = 200, error: str | None = None, name: str = "") -> Response:
    def load(conn: Connection) -> dict[str, Any]:
        users = {u.id: u for u in U.list_users(conn)}
        projects = {p.id: p for p in P.list_projects(conn)}
        teams = [
            {"team": t, "members": [users[i] for i in T.member_ids(conn, t.id) if i in users],
             "projects": [projects[i] for i in T.project_ids(conn, t.id) if i in projects]}
            for t in T.list_teams(conn)
        ]
        return {"teams": teams, "all_users": list(users.values()), "all_projects": list(projects.values())}

    return await page.render("admin_teams.html", status=status, error=error, name=name,
                             **await read(page.request, load))


@router.get("/admin/teams")
async def teams_page(page: CurrentPage) -> Response:
    require_admin(page)
    return await render_teams(page)


@router.post("/admin/teams")
async def create_team(page: CurrentPage) -> Response:
    form = await _admin_form(page)
    name = _text(form, "name", 1000)
    principal = page.viewer.principal
    now = runtime_of(page.request).clock.now()

    def create(conn: Connection) -> None:
        team = T.create_team(conn, name, now=now)
        record(conn, principal, "team.create", ("team", team.id), now, name=team.name)

    try:
        await write(page.request, create)
    except T.TeamError as exc:
        return await render_teams(page, status=422, error=str(exc), name=name)
    return see_other("/admin/teams?saved=1")


@router.post("/admin/teams/{team_id:int}/rename")
async def rename_team(team_id: int, page: CurrentPage) -> Response:
    form = await _admin_form(page)
    name = _text(form, "name", 1000)
    principal = page.viewer.principal
    now = runtime_of(page.request).clock.now()

    def rename(conn: Connection) -> bool:
        team = T.rename_team(conn, team_id, name) if team_id <= MAX_INT else None
        if team is not None:
            record(conn, principal, "team.rename", ("team", team_id), now, name=team.name)
        return team is not None

    try:
        if not await write(page.request, rename):
            raise PageError(404, "No such team.")
    except T.TeamError as exc:
        return await render_teams(page, status=422, error=str(exc))
    return see_other(f"/admin/teams?saved=1#team-{team_id}")


@router.post("/admin/teams/{team_id:int}/delete")
async def delete_team(team_id: int, page: CurrentPage) -> Response:
    """Delete a team; its projects stay, seen by admins and by their other teams (as DELETE /api/v1/teams/{id})."""
    await _admin_form(page)
    principal = page.viewer.principal
    now = runtime_of(page.request).clock.now()

    def delete(conn: Connection) -> bool:
        team = T.get_team(conn, team_id) if team_id <= MAX_INT else None
        if team is None:
            return False
        T.delete_team(conn, team_id)
        record(conn, principal, "team.delete", ("team", team_id), now, name=team.name)
        return True

    if not await write(page.request, delete):
        raise PageError(404, "No such team.")
    return see_other("/admin/teams?saved=1")


LINKS = {
    ("members", "add"): ("team.member_add", "user", T.add_member),
    ("members", "remove"): ("team.member_remove", "user", T.remove_member),
    ("projects", "add"): ("team.project_add", "project", T.add_project),
    ("projects", "remove"): ("team.project_remove", "project", T.remove_project),
}


@router.post("/admin/teams/{team_id:int}/{kind}/{change}")
async def change_team(team_id: int, kind: str, change: str, page: CurrentPage) -> Response:
    """Add or remove a member or a project of a team, as PUT/DELETE /api/v1/teams/{id}/{kind}/{id}."""
    form = await _admin_form(page)
    if (kind, change) not in LINKS:
        raise PageError(404, "No such page.")
    action, target_kind, operation = LINKS[(kind, change)]
    target_id = _id(form.get(f"{target_kind}_id"))
    principal = page.viewer.principal
    now = runtime_of(page.request).clock.now()

    def apply(conn: Connection) -> str | None:
        if team_id > MAX_INT or T.get_team(conn, team_id) is None:
            return "No such team."
        exists = U.get_user if target_kind == "user" else P.get_project
        if target_id is None or exists(conn, target_id) is None:
            return f"Choose a {target_kind}."
        if operation(conn, team_id, target_id):
            record(conn, principal, action, ("team", team_id), now, **{f"{target_kind}_id": target_id})
        return None

    problem = await write(page.request, apply)
    if problem == "No such team.":
        raise PageError(404, problem)
    if problem:
        return await render_teams(page, status=422, error=problem)
    return see_other(f"/admin/teams?saved=1#team-{team_id}")


# --- audit log ---


@router.get("/admin/audit")
async def audit_page(page: CurrentPage) -> Response:
    require_admin(page)
    cursor = page.request.query_params.get("cursor", "")[:100]
    try:
        before = decode_cursor(cursor, 1)[0] if cursor else None
    except HTTPException:
        before = "bad"
    if before is not None and not isinstance(before, int):
        raise PageError(400, "This link to older entries is not right; start from the newest.")
    entries, next_id = await read(page.request,
                                  lambda conn: list_entries(conn, limit=AUDIT_PAGE_SIZE, before_id=before))
    next_cursor = encode_cursor([next_id]) if next_id is not None else None
    rows = [(e, orjson.dumps(e.details).decode() if e.details else "") for e in entries]
    return await page.render("admin_audit.html", entries=rows, next_cursor=next_cursor, first=not cursor)
