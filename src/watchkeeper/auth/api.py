"""REST API for projects and their DSN keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Connection

from watchkeeper.api import MAX_INT, Editor, KeyId, ProjectId, Reader, Text, read, runtime_of, write
from watchkeeper.auth import projects as P
from watchkeeper.errors.scrubbing import ScrubbingRules

router = APIRouter(tags=["projects"])
# What ScrubbingRules.from_settings reads; anything else is a typo that would silently do nothing.
SCRUBBING_KEYS = {"scrub_data", "sensitive_fields", "safe_fields", "scrub_ip_addresses"}


class ProjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text = Field(min_length=1, max_length=200)
    platform: Text | None = Field(None, max_length=64)


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


async def _project_or_404(request: Request, project_id: int) -> P.Project:
    project = await read(request, lambda conn: P.get_project(conn, project_id))
    if project is None:
        raise HTTPException(404, f"project {project_id} not found")
    return project


@router.get("/projects")
async def list_projects(request: Request, owner: Reader) -> list[dict[str, Any]]:
    return [project_json(p) for p in await read(request, P.list_projects)]


@router.post("/projects", status_code=201)
async def create_project(request: Request, body: ProjectIn, owner: Editor) -> dict[str, Any]:
    runtime = runtime_of(request)

    def create(conn: Connection) -> dict[str, Any]:
        project = P.create_project(conn, body.name, now=runtime.clock.now(), platform=body.platform)
        keys = P.list_keys(conn, project.id)
        return {**project_json(project), "dsn": keys[0].dsn(runtime.settings.base_url)}

    try:
        return await write(request, create)
    except P.ProjectError as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/projects/{project_id}")
async def get_project(request: Request, project_id: ProjectId, owner: Reader) -> dict[str, Any]:
    return project_json(await _project_or_404(request, project_id))


@router.patch("/projects/{project_id}")
async def change_project(request: Request, project_id: ProjectId, body: ProjectChange, owner: Editor) -> dict[str, Any]:
    project = await _project_or_404(request, project_id)
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
    updated = await write(request, lambda conn: P.update_project(conn, project_id, changes))
    runtime_of(request).key_cache.invalidate()
    if updated is None:  # deleted meanwhile
        raise HTTPException(404, f"project {project_id} not found")
    return project_json(updated)


@router.delete("/projects/{project_id}", status_code=204)
async def delete_project(request: Request, project_id: ProjectId, owner: Editor) -> None:
    await _project_or_404(request, project_id)
    await write(request, lambda conn: P.delete_project(conn, project_id))
    runtime_of(request).key_cache.invalidate()


@router.get("/projects/{project_id}/keys")
async def list_keys(request: Request, project_id: ProjectId, owner: Reader) -> list[dict[str, Any]]:
    await _project_or_404(request, project_id)
    base = runtime_of(request).settings.base_url
    return [key_json(k, base) for k in await read(request, lambda conn: P.list_keys(conn, project_id))]


@router.post("/projects/{project_id}/keys", status_code=201)
async def create_key(request: Request, project_id: ProjectId, body: KeyIn, owner: Editor) -> dict[str, Any]:
    await _project_or_404(request, project_id)
    runtime = runtime_of(request)
    key = await write(request, lambda conn: P.create_key(conn, project_id, now=runtime.clock.now(), label=body.label))
    return key_json(key, runtime.settings.base_url)


@router.patch("/keys/{key_id}")
async def change_key(request: Request, key_id: KeyId, body: KeyChange, owner: Editor) -> dict[str, Any]:
    runtime = runtime_of(request)
    key = await write(request, lambda conn: P.update_key(conn, key_id, body.model_dump(exclude_unset=True)))
    if key is None:
        raise HTTPException(404, f"key {key_id} not found")
    runtime.key_cache.invalidate()
    return key_json(key, runtime.settings.base_url)


@router.post("/keys/{key_id}/rotate", status_code=201)
async def rotate_key(request: Request, key_id: KeyId, owner: Editor) -> dict[str, Any]:
    """Issue a new key and disable the old one."""
    runtime = runtime_of(request)
    key = await write(request, lambda conn: P.rotate_key(conn, key_id, now=runtime.clock.now()))
    if key is None:
        raise HTTPException(404, f"key {key_id} not found")
    runtime.key_cache.invalidate()
    return key_json(key, runtime.settings.base_url)
