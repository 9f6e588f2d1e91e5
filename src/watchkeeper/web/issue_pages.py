"""Pages for issues: the list (filters, search, sort, cursor pages, bulk changes, sparklines) and the
issue page (chart, tags, latest or chosen event, status and assignment)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Connection
from starlette.datastructures import FormData

from watchkeeper.api import MAX_BIGINT, decode_cursor, encode_cursor, read, runtime_of, write
from watchkeeper.auth.teams import assignable_user_ids
from watchkeeper.auth.users import User, list_users
from watchkeeper.errors import issues as I
from watchkeeper.web.event_view import event_view
from watchkeeper.web.project_pages import see_other
from watchkeeper.web.queries import (
    FilterChoices,
    buckets_for,
    event_neighbours,
    issue_counts,
    issues_of_project,
    tag_summary,
)
from watchkeeper.web.shell import PAGE_HEADERS, PageError, html_page
from watchkeeper.web.timerange import local_input_value, parse_local
from watchkeeper.web.viewer import CurrentPage, Page, Viewer, checked_form, readable_project, require_write

router = APIRouter(include_in_schema=False)
LEVELS = ("fatal", "error", "warning", "info", "debug")
SORT_LABELS = {"last_seen": "Last seen", "first_seen": "First seen", "events": "Events", "users": "Users"}
IGNORE_FOR = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
SPARKLINE_BUCKETS = 24
CHART_BUCKETS = 90
PAGE_SIZE = 25


@dataclass(frozen=True, slots=True)
class IssueQuery:
    """The issues list's own filters (the shell adds time range and environment)."""

    status: str
    level: str
    release: str
    search: str
    sort: I.Sort
    cursor: str

    def params(self, **changes: str) -> dict[str, str]:
        values = {"status": self.status, "level": self.level, "release": self.release, "query": self.search,
                  "sort": self.sort} | changes
        return {k: v for k, v in values.items() if v}


def _param(page: Page, name: str, limit: int = 200) -> str:
    value = page.request.query_params.get(name, "").strip()[:limit]
    return "" if "\x00" in value else value


def _issue_query(page: Page) -> IssueQuery:
    status = _param(page, "status") or "unresolved"
    sort = _param(page, "sort")
    return IssueQuery(
        status=status if status in (*I.STATUSES, "all") else "unresolved",
        level=level if (level := _param(page, "level")) in LEVELS else "",
        release=_param(page, "release"),
        search=_param(page, "query"),
        sort=sort if sort in I.SORTS else "last_seen",  # type: ignore[arg-type]
        cursor=_param(page, "cursor", 500),
    )


def _assignable(conn: Connection, project_id: int) -> list[User]:
    """The users the assign menu offers (see `auth.teams.assignable_user_ids`)."""
    allowed = assignable_user_ids(conn, project_id)
    return [u for u in list_users(conn) if u.id in allowed]


def _choices(page: Page) -> FilterChoices:
    choices: FilterChoices = page.request.app.state.filter_choices
    return choices


@router.get("/projects/{project_id:int}/issues")
async def issues_page(project_id: int, page: CurrentPage) -> Response:
    project = await readable_project(page, project_id)
    q = _issue_query(page)
    try:
        after = decode_cursor(q.cursor, 2) if q.cursor else None
    except HTTPException:
        raise PageError(400, "This page link is not valid any more; start again from the first page.") from None
    tr = page.filter.time_range
    flt = I.IssueFilter(
        None if q.status == "all" else q.status, q.level or None, page.filter.environment, q.release or None,
        tr.since, tr.until, q.search or None,
    )
    choices = _choices(page)

    def load(conn: Connection) -> dict[str, Any]:
        rows, next_key = I.list_issues(conn, project_id, flt, sort=q.sort, limit=PAGE_SIZE, after=after)
        menus = choices.get(conn, project_id, page.now)
        return {
            "issues": rows,
            "next_cursor": encode_cursor(next_key) if next_key else None,
            "environments": menus["environment"],
            "releases": menus["release"],
            "has_any": bool(rows) or after is not None or I.count_issues(conn, project_id) > 0,
            "users": {u.id: u for u in _assignable(conn, project_id)},
        }

    data = await read(page.request, load)
    dsn = None
    if not data["has_any"]:
        from watchkeeper.web.project_pages import _dsn_and_keys

        dsn, _ = await _dsn_and_keys(page, project_id)
    return await page.render(
        "issues.html", project=project, q=q, levels=LEVELS, sort_labels=SORT_LABELS, statuses=I.STATUSES,
        can_write=page.viewer.principal.can_write(project_id), dsn=dsn,
        base_url=runtime_of(page.request).settings.base_url, **data,
    )


@router.get("/projects/{project_id:int}/issues/sparklines")
async def sparklines(project_id: int, page: CurrentPage) -> Response:
    """Events per issue over the time range, for the list's sparklines (`?ids=1,2,3`).

    Fetched by the list page after it is shown: on a busy project the per-minute counts of 25 popular
    issues over weeks are the most expensive part of the list, and the list is useful without them.
    """
    await readable_project(page, project_id)
    wanted = [int(x) for x in _param(page, "ids", 2000).split(",") if x.isdigit() and int(x) <= MAX_BIGINT][:100]
    tr = page.filter.time_range
    buckets = buckets_for(tr.since, tr.until, SPARKLINE_BUCKETS)

    def load(conn: Connection) -> dict[int, list[int]]:
        return issue_counts(conn, issues_of_project(conn, project_id, wanted), buckets)

    counts = await read(page.request, load)
    return html_page("_sparklines.html", {"sparklines": counts, "range_key": tr.key})


def _ids(form: FormData) -> list[int]:
    ids = []
    for value in form.getlist("ids"):
        if isinstance(value, str) and value.isdigit() and 1 <= int(value) <= MAX_BIGINT:
            ids.append(int(value))
    return ids[:1000]


def _back_to(form: FormData, default: str) -> str:
    """Where a form returns to: its `next` field when that is one of our pages, else `default`."""
    target = form.get("next")
    if isinstance(target, str) and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def _assignee(form: FormData) -> int | None:
    value = form.get("assignee")
    if not isinstance(value, str) or not value:
        return None
    if not value.isdigit() or int(value) > 2**31 - 1:
        raise PageError(422, "assignee: not a user")
    return int(value)


def _change_from(form: FormData, viewer: Viewer, now: float) -> dict[str, Any]:
    """The change a status/assign form asks for, in `errors.issues.change_issues` terms."""
    action = form.get("action")
    if action in ("resolve", "unresolve"):
        return {"status": "resolved" if action == "resolve" else "unresolved"}
    if action == "ignore":
        change: dict[str, Any] = {"status": "ignored"}
        duration = form.get("ignore_for")
        until = form.get("ignore_until")
        if isinstance(duration, str) and duration in IGNORE_FOR:
            change["ignore_until"] = now + IGNORE_FOR[duration]
        elif duration != "forever" and isinstance(until, str) and until:
            try:
                change["ignore_until"] = parse_local(until[:40], viewer.zone)
            except ValueError as exc:
                raise PageError(422, f"ignore until: {exc}") from None
        return change
    if action == "assign":
        return {"assignee_id": _assignee(form)}
    raise PageError(422, "action: resolve, unresolve, ignore or assign")


async def _apply(page: Page, project_id: int, ids: list[int], form: FormData) -> None:
    now = runtime_of(page.request).clock.now()
    change = _change_from(form, page.viewer, now)
    actor = page.viewer.principal.user_id
    try:
        await write(page.request, lambda conn: I.change_issues(conn, project_id, ids, change, now, actor_user_id=actor))
    except I.IssueChangeError as exc:
        raise PageError(422, str(exc)) from None


@router.post("/projects/{project_id:int}/issues/bulk")
async def bulk_change(project_id: int, page: CurrentPage) -> Response:
    await readable_project(page, project_id)
    form = await checked_form(page.request, page.viewer)
    require_write(page.viewer, project_id)
    back = _back_to(form, f"/projects/{project_id}/issues")
    ids = _ids(form)
    if ids:
        await _apply(page, project_id, ids, form)
    return see_other(back)


async def _readable_issue(page: Page, issue_id: int) -> dict[str, Any]:
    issue = await read(page.request, lambda conn: I.get_issue(conn, issue_id)) if issue_id <= MAX_BIGINT else None
    if issue is None or not page.viewer.principal.can_read(issue["project_id"]):
        raise PageError(404, "No such issue.")
    return issue


def _event_of(conn: Connection, issue: dict[str, Any], event_id: str) -> dict[str, Any] | None:
    if event_id:
        event = I.get_event(conn, issue["project_id"], event_id[:40])
        return event if event and event["issue_id"] == issue["id"] else None
    rows, _ = I.list_events(conn, issue["id"], limit=1, full=True)
    return rows[0] if rows else None


@router.get("/issues/{issue_id:int}")
async def issue_page(issue_id: int, page: CurrentPage) -> Response:
    issue = await _readable_issue(page, issue_id)
    project = await readable_project(page, issue["project_id"])
    event_id = _param(page, "event", 40)
    tr = page.filter.time_range
    buckets = buckets_for(tr.since, tr.until, CHART_BUCKETS)
    choices = _choices(page)

    def load(conn: Connection) -> dict[str, Any]:
        event = _event_of(conn, issue, event_id)
        if event_id and event is None:
            raise PageError(404, "No such event in this issue.")
        return {
            "tags": tag_summary(conn, issue_id),
            "counts": issue_counts(conn, [issue_id], buckets)[issue_id],
            "event": event,
            "neighbours": event_neighbours(conn, issue_id, event["event_id"]) if event else None,
            "users": {u.id: u for u in _assignable(conn, project.id)},
            "environments": choices.get(conn, project.id, page.now)["environment"],
        }

    data = await read(page.request, load)
    chart = {"x": buckets.starts(), "y": data.pop("counts"), "zone": page.viewer.zone.key}
    event = data.pop("event")
    return await page.render(
        "issue.html", project=project, issue=issue, chart=chart, event=event,
        view=event_view(event) if event else None, can_write=page.viewer.principal.can_write(project.id),
        ignore_choices=IGNORE_FOR, ignore_default=local_input_value(page.now + 86400, page.viewer.zone), **data,
    )


@router.post("/issues/{issue_id:int}/change")
async def change_issue(issue_id: int, page: CurrentPage) -> Response:
    issue = await _readable_issue(page, issue_id)
    form = await checked_form(page.request, page.viewer)
    require_write(page.viewer, issue["project_id"])
    await _apply(page, issue["project_id"], [issue_id], form)
    return see_other(_back_to(form, f"/issues/{issue_id}"))


@router.get("/issues/{issue_id:int}/events/{event_id}/json")
async def raw_event(issue_id: int, event_id: str, page: CurrentPage) -> Response:
    """The stored event as JSON, for copying into a bug report or a debugger."""
    issue = await _readable_issue(page, issue_id)
    wanted = event_id[:40] if "\x00" not in event_id else "-"
    event = await read(page.request, lambda conn: _event_of(conn, issue, wanted))
    if event is None:
        raise PageError(404, "No such event in this issue.")
    return JSONResponse(event["data"], headers=PAGE_HEADERS)
