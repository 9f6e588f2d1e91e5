"""Who is looking at a page: the session cookie resolved to a Viewer (user, role, CSRF token, time
zone, access), and the Page every handler renders through (viewer + shell filter + clock).

Sessions, passwords and roles belong to `watchkeeper.auth`; this module only carries their answers
to the pages.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Connection
from starlette.datastructures import FormData

from watchkeeper.api import MAX_INT, read, runtime_of
from watchkeeper.auth import access, sessions
from watchkeeper.auth.projects import Project, get_project, list_projects
from watchkeeper.auth.teams import team_names_of_projects
from watchkeeper.config import SessionSettings
from watchkeeper.store.writer import WriterOverloaded, WriterStopped, call_each
from watchkeeper.web.shell import (
    PASSWORD_CHANGE_PATHS,
    LoginRequired,
    PageError,
    PasswordChangeRequired,
    html_page,
)
from watchkeeper.web.timerange import PageFilter, TimeRangeError, parse_page_filter

ZONE_COOKIE = "wk_tz"  # set by static/boot.js from the browser when the user has chosen no zone


@dataclass(frozen=True, slots=True)
class Viewer:
    session: sessions.SessionInfo
    principal: access.Principal
    zone: ZoneInfo

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token


def zone_named(name: str | None) -> ZoneInfo | None:
    if not name or len(name) > 64:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _resolve(
    conn: Connection, raw: str, now: float, limits: SessionSettings
) -> tuple[sessions.SessionInfo, access.Principal] | None:
    info = sessions.resolve_session(conn, raw, now=now, limits=limits)
    if info is None:
        return None
    try:
        return info, access.principal_for(conn, info.user_id, session_id=info.id)
    except LookupError:  # the user was deactivated between the two reads
        return None


async def current_viewer(request: Request) -> Viewer:
    runtime = runtime_of(request)
    raw = request.cookies.get(sessions.SESSION_COOKIE)
    now = runtime.clock.now()
    limits = runtime.settings.sessions
    found = await read(request, lambda conn: _resolve(conn, raw, now, limits)) if raw else None
    if found is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target if request.method == "GET" else "/")
    info, principal = found
    if info.must_change_password and request.url.path not in PASSWORD_CHANGE_PATHS:
        raise PasswordChangeRequired()
    if sessions.needs_touch(info, now):
        # Not awaited: the page does not depend on it, and a busy writer must not slow reads.
        with contextlib.suppress(WriterOverloaded, WriterStopped):
            runtime.writer.submit(call_each, lambda conn: sessions.touch_session(conn, info.id, now))
    zone = zone_named(info.timezone) or zone_named(unquote(request.cookies.get(ZONE_COOKIE, "")))
    return Viewer(info, principal, zone or ZoneInfo("UTC"))


def visible_projects(conn: Connection, principal: access.Principal) -> list[Project]:
    return [p for p in list_projects(conn) if principal.can_read(p.id)]


@dataclass(frozen=True, slots=True)
class Page:
    request: Request
    viewer: Viewer
    filter: PageFilter
    now: float

    async def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        """The page with the shell around it (the project switcher lists the projects the viewer sees)."""
        principal = self.viewer.principal

        def load(conn: Connection) -> tuple[list[Project], dict[int, list[str]]]:
            return visible_projects(conn, principal), team_names_of_projects(conn)

        projects, project_teams = await read(self.request, load)
        names = [p.name.casefold() for p in projects]
        # What tells a project from another of the same name in the switcher: its teams, else its slug.
        second_line = {p.id: ", ".join(project_teams.get(p.id, [])) or (p.slug if names.count(p.name.casefold()) > 1
                                                                          else "") for p in projects}
        return html_page(template, self.context(projects=projects, project_teams=project_teams,
                                                project_second_line=second_line, **context), status=status)

    def context(self, **extra: Any) -> dict[str, Any]:
        alerting = getattr(self.request.app.state, "alerting", None)
        return {
            # A fresh install whose alerts reach nobody: every page leads an admin to add a channel.
            "channel_needed": bool(self.viewer.principal.is_admin and alerting is not None
                                   and alerting.needs_channel),
            # ... or whose channels no route uses: it leads to the routing tree.
            "route_needed": bool(self.viewer.principal.is_admin and alerting is not None
                                 and alerting.needs_route),
            "request": self.request,
            "viewer": self.viewer,
            "zone": self.viewer.zone,
            "now": self.now,
            "filter": self.filter,
            "csrf_token": self.viewer.csrf_token,
            "project": None,
            "projects": [],
            "project_teams": {},
            "project_second_line": {},
            **extra,
        }


async def current_page(request: Request, viewer: Annotated[Viewer, Depends(current_viewer)]) -> Page:
    now = runtime_of(request).clock.now()
    try:
        page_filter = parse_page_filter(request.query_params, now, viewer.zone)
    except TimeRangeError as exc:
        raise PageError(400, str(exc)) from None
    return Page(request, viewer, page_filter, now)


async def checked_form(request: Request, viewer: Viewer) -> FormData:
    """The posted form, after its CSRF token was checked against the session's."""
    form = await request.form()
    token = form.get(sessions.CSRF_FORM_FIELD)
    if not isinstance(token, str) or not sessions.check_csrf(viewer.session, token):
        raise PageError(403, "This form has expired or did not come from Watchkeeper. Reload the page and try again.")
    return form


async def readable_project(page: Page, project_id: int) -> Project:
    """The project if the viewer may see it; 404 otherwise (its existence is not revealed)."""
    if project_id > MAX_INT:  # cannot exist (and PostgreSQL would reject the comparison)
        raise PageError(404, "No such project.")
    project = await read(page.request, lambda conn: get_project(conn, project_id))
    if project is None or not page.viewer.principal.can_read(project_id):
        raise PageError(404, "No such project.")
    return project


def require_write(viewer: Viewer, project_id: int) -> None:
    if not viewer.principal.can_write(project_id):
        raise PageError(403, "Your role may look at this project but not change it.")


CurrentPage = Annotated[Page, Depends(current_page)]
CurrentViewer = Annotated[Viewer, Depends(current_viewer)]
