"""REST API for projects and their DSN keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Connection

from watchkeeper.api import (
    MAX_INT,
    Editor,
    KeyId,
    ProjectId,
    Reader,
    Text,
    check_project_access,
    read,
    runtime_of,
    write,
)
from watchkeeper.auth import projects as P
from watchkeeper.auth import teams as T
from watchkeeper.auth.access import Principal
from watchkeeper.auth.audit import record
from watchkeeper.errors.rate_limits import quota_windows
from watchkeeper.errors.scrubbing import ScrubbingRules

router = APIRouter(tags=["projects"])
# What ScrubbingRules.from_settings reads; anything else is a typo that would silently do nothing.
SCRUBBING_KEYS = {"scrub_data", "sensitive_fields", "safe_fields", "scrub_ip_addresses"}


class ProjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text = Field(min_length=1, max_length=200)
    platform: Text | None = Field(None, max_length=64)
    team_id: int | None = Field(
        None, ge=1, le=MAX_INT, description="the owning team; default: the creator's team when they have one"
    )


class ProjectChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text | None = Field(None, min_length=1, max_length=200)
    platform: Text | None = Field(None, max_length=64)
    retention_days: int | None = Field(None, ge=1, le=3650)
    events_per_minute: int | None = Field(None, ge=1, le=MAX_INT)
    events_per_hour: int | None = Field(None, ge=1, le=MAX_INT)
    scrubbing: dict[str, Any] | None = Field(
        None, description="scrub_data, sensitive_fields, safe_fields, scrub_ip_addresses"
    )
    quotas: dict[str, Any] | None = Field(
        None,
        description="quotas of the other Sentry data categories, e.g. "
        '{"transaction": {"per_minute": 600}, "attachment": {"per_hour": 104857600}} (attachments in bytes); '
        "a category left out takes the server's default. Error events: events_per_minute/events_per_hour",
    )

    @field_validator("name")
    @classmethod
    def _name_not_null(cls, value: str | None) -> str:
        return _not_null(value)


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: Text = Field("Default", min_length=1, max_length=200)


class KeyChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: Text | None = Field(None, min_length=1, max_length=200)
    is_active: bool | None = None
    events_per_minute: int | None = Field(None, ge=1, le=MAX_INT)
    events_per_hour: int | None = Field(None, ge=1, le=MAX_INT)

    @field_validator("label", "is_active")
    @classmethod
    def _required_not_null(cls, value: Any) -> Any:
        return _not_null(value)


def _not_null(value: Any) -> Any:
    """Optional in a change, but an explicit null would erase a required column."""
    if value is None:
        raise ValueError("may be left out but not null")
    return value


def project_json(project: P.Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "slug": project.slug,
        "platform": project.platform,
        "retention_days": project.retention_days,
        "events_per_minute": project.events_per_minute,
        "events_per_hour": project.events_per_hour,
        "scrubbing": project.settings.get("scrubbing", {}),
        "quotas": project.settings.get("quotas", {}),
        "created_at": project.created_at,
    }


def key_json(key: P.ProjectKey, base_url: str) -> dict[str, Any]:
    return {
        "id": key.id,
        "project_id": key.project_id,
        "label": key.label,
        "public_key": key.public_key,
        "is_active": key.is_active,
        "dsn": key.dsn(base_url),
        "events_per_minute": key.events_per_minute,
        "events_per_hour": key.events_per_hour,
        "created_at": key.created_at,
    }


async def _project_or_404(
    request: Request, project_id: int, principal: Principal, *, write: bool = False
) -> P.Project:
    project = await read(request, lambda conn: P.get_project(conn, project_id))
    check_project_access(principal, project_id, exists=project is not None, write=write, what=f"project {project_id}")
    assert project is not None
    return project


async def _key_or_404(request: Request, key_id: int, principal: Principal) -> P.ProjectKey:
    key = await read(request, lambda conn: P.get_key(conn, key_id))
    check_project_access(
        principal, key.project_id if key else 0, exists=key is not None, write=True, what=f"key {key_id}"
    )
    assert key is not None
    return key


def owning_team(conn: Connection, principal: Principal, team_id: int | None) -> int | None:
    """The team a new project goes in: the one asked for, else the creator's only team.

    Admins may use any team or none (a project in no team is visible to admins only); others must use
    one of their own teams so they can see what they created.
    """
    mine = [t.id for t in T.list_teams(conn, user_id=principal.user_id)]
    if team_id is not None:
        if T.get_team(conn, team_id) is None:
            raise P.ProjectError(f"team_id: no team {team_id}")
        if principal.role != "admin" and team_id not in mine:
            raise P.ProjectError(f"team_id: you are not in team {team_id}")
        return team_id
    if len(mine) == 1:
        return mine[0]
    if principal.role == "admin":
        return None
    if not mine:
        raise P.ProjectError("team_id: you are in no team; ask an admin to add you to one")
    raise P.ProjectError(f"team_id: you are in several teams ({', '.join(map(str, mine))}); say which one")


_owning_team = owning_team  # the name the web pages first used


def _audit(conn: Connection, principal: Principal, action: str, target: tuple[str, int], now: float,
           **details: Any) -> None:
    record(
        conn, actor_user_id=principal.user_id, action=action, target_type=target[0], target_id=target[1],
        details=details, now=now,
    )


@router.get("/projects")
async def list_projects(request: Request, owner: Reader) -> list[dict[str, Any]]:
    """The projects the caller can see: those of their teams (admins: all)."""
    return [project_json(p) for p in await read(request, P.list_projects) if owner.can_read(p.id)]


@router.post("/projects", status_code=201)
async def create_project(request: Request, body: ProjectIn, owner: Editor) -> dict[str, Any]:
    runtime = runtime_of(request)
    if not owner.may_create_projects:
        raise HTTPException(403, "a token limited to some projects cannot create projects")

    def create(conn: Connection) -> dict[str, Any]:
        now = runtime.clock.now()
        team_id = owning_team(conn, owner, body.team_id)
        T.check_project_name(conn, body.name, [team_id] if team_id is not None else [])
        project = P.create_project(conn, body.name, now=now, platform=body.platform)
        if team_id is not None:
            T.add_project(conn, team_id, project.id)
        _audit(conn, owner, "project.create", ("project", project.id), now, name=project.name, team_id=team_id)
        keys = P.list_keys(conn, project.id)
        return {**project_json(project), "team_ids": T.teams_of_project(conn, project.id),
                "dsn": keys[0].dsn(runtime.settings.base_url)}

    try:
        return await write(request, create)
    except P.ProjectError as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/projects/{project_id}")
async def get_project(request: Request, project_id: ProjectId, owner: Reader) -> dict[str, Any]:
    project = await _project_or_404(request, project_id, owner)
    team_ids = await read(request, lambda conn: T.teams_of_project(conn, project_id))
    return {**project_json(project), "team_ids": team_ids}


@router.patch("/projects/{project_id}")
async def change_project(request: Request, project_id: ProjectId, body: ProjectChange, owner: Editor) -> dict[str, Any]:
    project = await _project_or_404(request, project_id, owner, write=True)
    changes = body.model_dump(exclude_unset=True)
    scrubbing = changes.pop("scrubbing", None)
    if scrubbing is not None:
        unknown = sorted(set(scrubbing) - SCRUBBING_KEYS)
        if unknown:
            raise HTTPException(
                422, f"scrubbing: unknown setting '{unknown[0]}' (known: {', '.join(sorted(SCRUBBING_KEYS))})"
            )
        try:
            ScrubbingRules.from_settings(scrubbing)
        except ValueError as exc:
            raise HTTPException(422, f"scrubbing: {exc}") from None
        changes["settings"] = {**project.settings, "scrubbing": scrubbing}
    if "quotas" in changes:
        try:
            quotas = quota_windows(changes.pop("quotas"))
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        changes["settings"] = {**changes.get("settings", project.settings), "quotas": quotas}
    now = runtime_of(request).clock.now()

    def change(conn: Connection) -> P.Project | None:
        if "name" in changes:
            T.check_project_name(conn, changes["name"], T.teams_of_project(conn, project_id),
                                 except_project=project_id)
        updated = P.update_project(conn, project_id, changes)
        if updated is not None:
            _audit(conn, owner, "project.change", ("project", project_id), now, **body.model_dump(exclude_unset=True))
        return updated

    try:
        updated = await write(request, change)
    except P.ProjectError as exc:
        raise HTTPException(422, str(exc)) from None
    runtime_of(request).key_cache.invalidate()
    if updated is None:  # deleted meanwhile
        raise HTTPException(404, f"project {project_id} not found")
    return project_json(updated)


@router.delete("/projects/{project_id}", status_code=204)
async def delete_project(request: Request, project_id: ProjectId, owner: Editor) -> None:
    """Delete a project and everything stored for it (admins only: it cannot be undone)."""
    project = await _project_or_404(request, project_id, owner, write=True)
    if owner.role != "admin":
        raise HTTPException(403, "only an admin may delete a project")
    now = runtime_of(request).clock.now()

    def delete(conn: Connection) -> None:
        if P.delete_project(conn, project_id):
            _audit(conn, owner, "project.delete", ("project", project_id), now, name=project.name)

    await write(request, delete)
    runtime_of(request).key_cache.invalidate()


@router.get("/projects/{project_id}/keys")
async def list_keys(request: Request, project_id: ProjectId, owner: Reader) -> list[dict[str, Any]]:
    await _project_or_404(request, project_id, owner)
    base = runtime_of(request).settings.base_url
    return [key_json(k, base) for k in await read(request, lambda conn: P.list_keys(conn, project_id))]


@router.post("/projects/{project_id}/keys", status_code=201)
async def create_key(request: Request, project_id: ProjectId, body: KeyIn, owner: Editor) -> dict[str, Any]:
    await _project_or_404(request, project_id, owner, write=True)
    runtime = runtime_of(request)
    now = runtime.clock.now()

    def create(conn: Connection) -> P.ProjectKey:
        key = P.create_key(conn, project_id, now=now, label=body.label)
        _audit(conn, owner, "key.create", ("key", key.id), now, project_id=project_id, label=key.label)
        return key

    return key_json(await write(request, create), runtime.settings.base_url)


@router.patch("/keys/{key_id}")
async def change_key(request: Request, key_id: KeyId, body: KeyChange, owner: Editor) -> dict[str, Any]:
    runtime = runtime_of(request)
    old = await _key_or_404(request, key_id, owner)
    changes = body.model_dump(exclude_unset=True)
    now = runtime.clock.now()

    def change(conn: Connection) -> P.ProjectKey | None:
        key = P.update_key(conn, key_id, changes)
        if key is not None:
            action = "key.disable" if changes.get("is_active") is False else "key.change"
            _audit(conn, owner, action, ("key", key_id), now, project_id=old.project_id, **changes)
        return key

    key = await write(request, change)
    if key is None:
        raise HTTPException(404, f"key {key_id} not found")
    runtime.key_cache.invalidate()
    return key_json(key, runtime.settings.base_url)


@router.post("/keys/{key_id}/rotate", status_code=201)
async def rotate_key(request: Request, key_id: KeyId, owner: Editor) -> dict[str, Any]:
    """Issue a new key and disable the old one."""
    runtime = runtime_of(request)
    old = await _key_or_404(request, key_id, owner)
    now = runtime.clock.now()

    def rotate(conn: Connection) -> P.ProjectKey | None:
        key = P.rotate_key(conn, key_id, now=now)
        if key is not None:
            _audit(conn, owner, "key.rotate", ("key", key_id), now, project_id=old.project_id, new_key_id=key.id)
        return key

    key = await write(request, rotate)
    if key is None:
        raise HTTPException(404, f"key {key_id} not found")
    runtime.key_cache.invalidate()
    return key_json(key, runtime.settings.base_url)
