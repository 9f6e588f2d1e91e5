"""REST API for teams (their members and projects) and the audit log; changes are for admins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from watchkeeper.api import (
    MAX_INT,
    Account,
    AdminEditor,
    AdminReader,
    ProjectId,
    Text,
    decode_cursor,
    encode_cursor,
    read,
    runtime_of,
    write,
)
from watchkeeper.auth import teams as T
from watchkeeper.auth.access import Principal
from watchkeeper.auth.audit import list_entries, record
from watchkeeper.auth.projects import get_project
from watchkeeper.auth.users import get_user

router = APIRouter(tags=["teams"])
TeamId = Annotated[int, Path(ge=1, le=MAX_INT)]
UserId = Annotated[int, Path(ge=1, le=MAX_INT)]


class TeamIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text = Field(min_length=1, max_length=100)


def team_json(conn: Connection, team: T.Team) -> dict[str, Any]:
    members = [get_user(conn, user_id) for user_id in T.member_ids(conn, team.id)]
    return {
        "id": team.id,
        "name": team.name,
        "created_at": team.created_at,
        "members": [{"id": u.id, "email": u.email, "role": u.role} for u in members if u],
        "project_ids": T.project_ids(conn, team.id),
    }


def _audit(conn: Connection, principal: Principal, action: str, team_id: int, now: float, **details: Any) -> None:
    record(
        conn, actor_user_id=principal.user_id, action=action, target_type="team", target_id=team_id,
        details=details, now=now,
    )


async def _team_json_or_404(request: Request, team_id: int) -> dict[str, Any]:
    def load(conn: Connection) -> dict[str, Any] | None:
        team = T.get_team(conn, team_id)
        return team_json(conn, team) if team else None

    found = await read(request, load)
    if found is None:
        raise HTTPException(404, f"team {team_id} not found")
    return found


@router.get("/teams")
async def list_teams(request: Request, principal: Account) -> list[dict[str, Any]]:
    """All teams for an admin; a member's or viewer's own teams otherwise."""
    user_id = None if principal.is_admin else principal.user_id
    return await read(request, lambda conn: [team_json(conn, t) for t in T.list_teams(conn, user_id=user_id)])


@router.post("/teams", status_code=201)
async def create_team(request: Request, body: TeamIn, principal: AdminEditor) -> dict[str, Any]:
    now = runtime_of(request).clock.now()

    def create(conn: Connection) -> dict[str, Any]:
        team = T.create_team(conn, body.name, now=now)
        _audit(conn, principal, "team.create", team.id, now, name=team.name)
        return team_json(conn, team)

    try:
        return await write(request, create)
    except T.TeamError as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/teams/{team_id}")
async def get_team(request: Request, team_id: TeamId, principal: Account) -> dict[str, Any]:
    team = await _team_json_or_404(request, team_id)
    if not principal.is_admin and principal.user_id not in {m["id"] for m in team["members"]}:
        raise HTTPException(404, f"team {team_id} not found")
    return team


@router.patch("/teams/{team_id}")
async def rename_team(request: Request, team_id: TeamId, body: TeamIn, principal: AdminEditor) -> dict[str, Any]:
    now = runtime_of(request).clock.now()

    def rename(conn: Connection) -> dict[str, Any] | None:
        team = T.rename_team(conn, team_id, body.name)
        if team is None:
            return None
        _audit(conn, principal, "team.rename", team_id, now, name=team.name)
        return team_json(conn, team)

    try:
        renamed = await write(request, rename)
    except T.TeamError as exc:
        raise HTTPException(422, str(exc)) from None
    if renamed is None:
        raise HTTPException(404, f"team {team_id} not found")
    return renamed


@router.delete("/teams/{team_id}", status_code=204)
async def delete_team(request: Request, team_id: TeamId, principal: AdminEditor) -> None:
    """Delete a team; its projects stay, visible to admins and to their other teams."""
    now = runtime_of(request).clock.now()

    def delete(conn: Connection) -> bool:
        team = T.get_team(conn, team_id)
        if team is None:
            return False
        T.delete_team(conn, team_id)
        _audit(conn, principal, "team.delete", team_id, now, name=team.name)
        return True

    if not await write(request, delete):
        raise HTTPException(404, f"team {team_id} not found")


async def _change_link(
    request: Request, principal: Principal, team_id: int, action: str, target: tuple[str, int]
) -> dict[str, Any]:
    """Add or remove a member or a project of a team; 404 names whichever does not exist."""
    now = runtime_of(request).clock.now()
    kind, target_id = target

    def change(conn: Connection) -> dict[str, Any] | str:
        team = T.get_team(conn, team_id)
        if team is None:
            return f"team {team_id} not found"
        if kind == "user" and get_user(conn, target_id) is None:
            return f"user {target_id} not found"
        if kind == "project" and get_project(conn, target_id) is None:
            return f"project {target_id} not found"
        operations = {
            "team.member_add": T.add_member, "team.member_remove": T.remove_member,
            "team.project_add": T.add_project, "team.project_remove": T.remove_project,
        }
        if operations[action](conn, team_id, target_id):
            _audit(conn, principal, action, team_id, now, **{f"{kind}_id": target_id})
        return team_json(conn, team)

    result = await write(request, change)
    if isinstance(result, str):
        raise HTTPException(404, result)
    return result


@router.put("/teams/{team_id}/members/{user_id}")
async def add_member(request: Request, team_id: TeamId, user_id: UserId, principal: AdminEditor) -> dict[str, Any]:
    return await _change_link(request, principal, team_id, "team.member_add", ("user", user_id))


@router.delete("/teams/{team_id}/members/{user_id}")
async def remove_member(request: Request, team_id: TeamId, user_id: UserId, principal: AdminEditor) -> dict[str, Any]:
    return await _change_link(request, principal, team_id, "team.member_remove", ("user", user_id))


@router.put("/teams/{team_id}/projects/{project_id}")
async def add_project(
    request: Request, team_id: TeamId, project_id: ProjectId, principal: AdminEditor
) -> dict[str, Any]:
    return await _change_link(request, principal, team_id, "team.project_add", ("project", project_id))


@router.delete("/teams/{team_id}/projects/{project_id}")
async def remove_project(
    request: Request, team_id: TeamId, project_id: ProjectId, principal: AdminEditor
) -> dict[str, Any]:
    return await _change_link(request, principal, team_id, "team.project_remove", ("project", project_id))


@router.get("/audit-log", tags=["audit"])
async def audit_log(
    request: Request,
    principal: AdminReader,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> dict[str, Any]:
    """Who changed what, newest first; pass `next_cursor` as `cursor` for older entries."""
    before = decode_cursor(cursor, 1)[0] if cursor else None
    if before is not None and not isinstance(before, int):
        raise HTTPException(400, "cursor: not a cursor returned by this API")
    entries, next_id = await read(request, lambda conn: list_entries(conn, limit=limit, before_id=before))
    return {
        "entries": [
            {
                "id": e.id, "at": e.at, "actor_user_id": e.actor_user_id, "actor_email": e.actor_email,
                "action": e.action, "target_type": e.target_type, "target_id": e.target_id, "details": e.details,
            }
            for e in entries
        ],
        "next_cursor": encode_cursor([next_id]) if next_id is not None else None,
    }
