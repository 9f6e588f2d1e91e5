"""REST API for issues and events."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from watchkeeper.api import (
    MAX_BIGINT,
    MAX_INT,
    Editor,
    IssueId,
    ProjectId,
    Reader,
    check_project_access,
    decode_cursor,
    encode_cursor,
    epoch_field,
    epoch_query,
    read,
    runtime_of,
    write,
)
from watchkeeper.auth.access import Principal
from watchkeeper.auth.projects import get_project
from watchkeeper.errors import issues as I

router = APIRouter(tags=["issues"])
Level = Literal["fatal", "error", "warning", "info", "debug"]


class IssueChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["unresolved", "resolved", "ignored"] | None = None
    in_next_release: bool = Field(False, description="with status=resolved: resolve in the next release")
    ignore_until: float | None = epoch_field(None, "with status=ignored: epoch seconds")
    ignore_count: int | None = Field(None, ge=1, le=MAX_INT, description="with status=ignored: until N more events")
    assignee_id: int | None = Field(None, ge=1, le=MAX_INT)

    @model_validator(mode="after")
    def _something(self) -> IssueChange:
        if self.status is None and "assignee_id" not in self.model_fields_set:
            raise ValueError("give status and/or assignee_id")
        return self


class BulkChange(IssueChange):
    ids: list[Annotated[int, Field(ge=1, le=MAX_BIGINT)]] = Field(min_length=1, max_length=1000)


def _link(request: Request, cursor: list[Any] | None) -> dict[str, str]:
    if cursor is None:
        return {}
    url = request.url.include_query_params(cursor=encode_cursor(cursor))
    return {"Link": f'<{url}>; rel="next"; results="true"; cursor="{encode_cursor(cursor)}"'}


async def _check_project(request: Request, project_id: int, principal: Principal, *, write: bool = False) -> None:
    exists = await read(request, lambda conn: get_project(conn, project_id)) is not None
    check_project_access(principal, project_id, exists=exists, write=write, what=f"project {project_id}")


async def _issue_or_404(
    request: Request, issue_id: int, principal: Principal, *, write: bool = False
) -> dict[str, Any]:
    """The issue, if the principal may see its project (else 404, as if it did not exist)."""
    issue = await read(request, lambda conn: I.get_issue(conn, issue_id))
    project_id = issue["project_id"] if issue else 0
    check_project_access(principal, project_id, exists=issue is not None, write=write, what=f"issue {issue_id}")
    assert issue is not None
    return issue


@router.get("/projects/{project_id}/issues")
async def list_issues(
    request: Request,
    response: Response,
    project_id: ProjectId,
    owner: Reader,
    status: Annotated[Literal["unresolved", "resolved", "ignored", "all"], Query()] = "unresolved",
    level: Level | None = None,
    environment: Annotated[str | None, Query(max_length=64)] = None,
    release: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[
        float | None, epoch_query("last seen at or after (epoch seconds)")
    ] = None,
    until: Annotated[
        float | None, epoch_query("first seen at or before (epoch seconds)")
    ] = None,
    query: Annotated[str | None, Query(max_length=200, description="text in title or culprit")] = None,
    sort: I.Sort = "last_seen",
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    """Issues of a project: filter, search, sort, and page with `cursor` (also in the `Link` header)."""
    for name, text in (("environment", environment), ("release", release), ("query", query)):
        if text is not None and "\x00" in text:  # PostgreSQL text cannot hold NUL: nothing can match
            raise HTTPException(422, f"{name}: may not contain NUL characters")
    await _check_project(request, project_id, owner)
    flt = I.IssueFilter(None if status == "all" else status, level, environment, release, since, until, query)
    after = decode_cursor(cursor, 2) if cursor else None
    rows, next_key = await read(
        request, lambda conn: I.list_issues(conn, project_id, flt, sort=sort, limit=limit, after=after)
    )
    response.headers.update(_link(request, next_key))
    return {"issues": rows, "next_cursor": encode_cursor(next_key) if next_key else None}


@router.patch("/projects/{project_id}/issues")
async def bulk_change(request: Request, project_id: ProjectId, body: BulkChange, owner: Editor) -> dict[str, Any]:
    """Resolve, ignore, reopen or assign many issues at once."""
    await _check_project(request, project_id, owner, write=True)
    runtime = runtime_of(request)
    change = body.model_dump(exclude_unset=True, exclude={"ids"})
    try:
        changed = await write(
            request, lambda conn: I.change_issues(conn, project_id, body.ids, change, runtime.clock.now(),
                                                  actor_user_id=owner.user_id)
        )
    except I.IssueChangeError as exc:
        raise HTTPException(422, str(exc)) from None
    return {"changed": changed}


@router.get("/issues/{issue_id}")
async def get_issue(
    request: Request, issue_id: IssueId, owner: Reader, histogram_hours: Annotated[int, Query(ge=1, le=24 * 90)] = 24
) -> dict[str, Any]:
    """An issue with its tag breakdowns and its events per minute over the last `histogram_hours`."""
    issue = await _issue_or_404(request, issue_id, owner)
    since = int(runtime_of(request).clock.now() // 60) - histogram_hours * 60

    def details(conn: Any) -> dict[str, Any]:
        return {"tags": I.tag_breakdown(conn, issue_id), "histogram": I.issue_histogram(conn, issue_id, since)}

    return {**issue, **await read(request, details)}


@router.patch("/issues/{issue_id}")
async def change_issue(request: Request, issue_id: IssueId, body: IssueChange, owner: Editor) -> dict[str, Any]:
    issue = await _issue_or_404(request, issue_id, owner, write=True)
    runtime = runtime_of(request)
    change = body.model_dump(exclude_unset=True)
    try:
        await write(
            request, lambda conn: I.change_issues(conn, issue["project_id"], [issue_id], change, runtime.clock.now(),
                                                  actor_user_id=owner.user_id)
        )
    except I.IssueChangeError as exc:
        raise HTTPException(422, str(exc)) from None
    return await _issue_or_404(request, issue_id, owner)


@router.delete("/issues/{issue_id}", status_code=204)
async def delete_issue(request: Request, issue_id: IssueId, owner: Editor) -> None:
    await _issue_or_404(request, issue_id, owner, write=True)
    await write(request, lambda conn: I.delete_issue(conn, issue_id))


@router.get("/issues/{issue_id}/events")
async def list_events(
    request: Request,
    response: Response,
    issue_id: IssueId,
    owner: Reader,
    full: bool = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    """Events of an issue, newest first; `full=true` includes each normalised event."""
    await _issue_or_404(request, issue_id, owner)
    after = decode_cursor(cursor, 2) if cursor else None
    rows, next_key = await read(
        request, lambda conn: I.list_events(conn, issue_id, limit=limit, after=after, full=full)
    )
    response.headers.update(_link(request, next_key))
    return {"events": rows, "next_cursor": encode_cursor(next_key) if next_key else None}


@router.get("/issues/{issue_id}/events/latest")
async def latest_event(request: Request, issue_id: IssueId, owner: Reader) -> dict[str, Any]:
    await _issue_or_404(request, issue_id, owner)
    rows, _ = await read(request, lambda conn: I.list_events(conn, issue_id, limit=1, full=True))
    if not rows:
        raise HTTPException(404, f"issue {issue_id} has no stored events")
    return rows[0]


@router.get("/projects/{project_id}/events/{event_id}")
async def get_event(request: Request, project_id: ProjectId, event_id: str, owner: Reader) -> dict[str, Any]:
    """One event, normalised and scrubbed, as stored."""
    await _check_project(request, project_id, owner)
    if "\x00" in event_id:
        raise HTTPException(404, f"event not found in project {project_id}")
    event = await read(request, lambda conn: I.get_event(conn, project_id, event_id[:40]))
    if event is None:
        raise HTTPException(404, f"event {event_id[:40]} not found in project {project_id}")
    return event
