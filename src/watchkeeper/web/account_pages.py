"""The account page every signed-in user has: their password, time zone and API tokens.

The rules are the REST API's (`watchkeeper.auth.accounts_api`): the current password is needed for a
new one and the user's other sessions end; a zone is an IANA name; a token is no wider than its maker
and is shown once, in the answer to the form that made it.
"""

from __future__ import annotations

from functools import cache
from typing import Any
from zoneinfo import available_timezones

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import Connection
from starlette.datastructures import FormData

from watchkeeper.api import MAX_INT, read, runtime_of, write
from watchkeeper.auth import tokens as K
from watchkeeper.auth import users as U
from watchkeeper.auth.accounts_api import _valid_zone
from watchkeeper.auth.projects import get_project
from watchkeeper.auth.sessions import end_user_sessions
from watchkeeper.auth.tables import users
from watchkeeper.web.project_pages import _text, record, see_other
from watchkeeper.web.shell import PageError
from watchkeeper.web.viewer import CurrentPage, Page, checked_form, visible_projects

router = APIRouter(include_in_schema=False)

SAVED = {"password": "Password changed. Your other sessions were logged out.", "timezone": "Time zone saved.",
         "revoked": "Token revoked."}


def form_password(form: FormData, name: str) -> str:
    """A password as typed (never stripped: spaces are characters of it)."""
    value = form.get(name)
    text = value if isinstance(value, str) else ""
    if "\x00" in text or len(text) > 1000:
        raise U.UserError(f"{name.replace('_', ' ')}: may not contain NUL characters or be over 1000 characters")
    return text


@cache
def zone_names() -> list[str]:
    return sorted(available_timezones())


async def render_account(page: Page, status: int = 200, **extra: Any) -> Response:
    user_id = page.viewer.principal.user_id

    def load(conn: Connection) -> dict[str, Any]:
        return {
            "timezone": U.user_timezone(conn, user_id),
            "tokens": K.list_tokens(conn, user_id),
            "token_projects": visible_projects(conn, page.viewer.principal),
        }

    saved = SAVED.get(page.request.query_params.get("saved", ""))
    context: dict[str, Any] = {"error": None, "new_token": None, "saved": saved, "zone_names": zone_names()}
    context.update(await read(page.request, load))
    context["project_names"] = {p.id: p.name for p in context["token_projects"]}
    context.update(extra)
    return await page.render("account.html", status=status, **context)


@router.get("/account")
async def account_page(page: CurrentPage) -> Response:
    return await render_account(page)


@router.post("/account/password")
async def change_password(page: CurrentPage) -> Response:
    form = await checked_form(page.request, page.viewer)
    principal = page.viewer.principal
    try:
        current, new = form_password(form, "current_password"), form_password(form, "new_password")
        if new != form_password(form, "repeat_password"):
            raise U.UserError("new password: the two new passwords differ")
        if len(new) < 8:
            raise U.UserError("new password: must be at least 8 characters")
    except U.UserError as exc:
        return await render_account(page, status=422, error=str(exc))
    now = runtime_of(page.request).clock.now()

    def change(conn: Connection) -> bool:  # as POST /api/v1/me/password
        row = conn.execute(users.select().where(users.c.id == principal.user_id)).first()
        if row is None or not U.verify_password(row.password_hash, current):
            return False
        U.set_password(conn, principal.user_id, new)
        end_user_sessions(conn, principal.user_id, keep_session_id=page.viewer.session.id)
        record(conn, principal, "user.password_change", ("user", principal.user_id), now)
        return True

    if not await write(page.request, change):
        return await render_account(page, status=422, error="current password: that is not your current password")
    return see_other("/account?saved=password")


@router.post("/account/timezone")
async def change_timezone(page: CurrentPage) -> Response:
    form = await checked_form(page.request, page.viewer)
    name = _text(form, "timezone", 100)
    try:
        if len(name) > 64:
            raise ValueError(f"not an IANA time zone name (like Europe/Paris): {name[:64]!r}")
        zone = _valid_zone(name or None)
    except ValueError as exc:
        return await render_account(page, status=422, error=f"time zone: {exc}", timezone_input=name)
    user_id = page.viewer.principal.user_id
    # Like PATCH /api/v1/me: a preference, not audited.
    await write(page.request, lambda conn: U.change_user(conn, user_id, timezone=zone, clear_timezone=True))
    return see_other("/account?saved=timezone")


def _project_ids(form: FormData) -> list[int] | None:
    chosen = [v for v in form.getlist("project_ids") if isinstance(v, str) and v]
    if not chosen:
        return None
    if not all(v.isdigit() and 1 <= int(v) <= MAX_INT for v in chosen):
        raise ValueError("projects: not a project id")
    return sorted({int(v) for v in chosen})


@router.post("/account/tokens")
async def create_token(page: CurrentPage) -> Response:
    form = await checked_form(page.request, page.viewer)
    principal = page.viewer.principal
    name, read_only = _text(form, "name", 1000), form.get("read_only") == "on"
    try:
        if not name or len(name) > 200:
            raise ValueError("name: must be 1-200 characters")
        project_ids = _project_ids(form)
    except ValueError as exc:
        return await render_account(page, status=422, error=f"token {exc}")
    now = runtime_of(page.request).clock.now()

    def create(conn: Connection) -> K.NewToken | str:
        for project_id in project_ids or []:  # no wider than its maker, as POST /api/v1/tokens
            if not principal.can_read(project_id) or get_project(conn, project_id) is None:
                return f"token projects: no project {project_id}"
        new = K.create_token(conn, principal.user_id, name, read_only=read_only, now=now, project_ids=project_ids)
        record(conn, principal, "token.create", ("token", new.id), now, name=new.name, read_only=read_only,
               project_ids=project_ids)
        return new

    created = await write(page.request, create)
    if isinstance(created, str):
        return await render_account(page, status=422, error=created)
    return await render_account(page, new_token=created)


@router.post("/account/tokens/{token_id:int}/revoke")
async def revoke_token(token_id: int, page: CurrentPage) -> Response:
    await checked_form(page.request, page.viewer)
    principal = page.viewer.principal
    now = runtime_of(page.request).clock.now()

    def revoke(conn: Connection) -> bool:
        if token_id > MAX_INT or not K.revoke_token(conn, token_id, user_id=principal.user_id, now=now):
            return False
        record(conn, principal, "token.revoke", ("token", token_id), now)
        return True

    if not await write(page.request, revoke):
        raise PageError(404, "No such token.")
    return see_other("/account?saved=revoked")
