"""Projects and their DSN keys.

A DSN is `{scheme}://{public_key}@{host}{path}/{project_id}`; the deprecated secret part is never issued
or required.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy import Connection, insert, select, update

from watchkeeper.auth.tables import project_keys, projects


class ProjectError(ValueError):
    """A project or key cannot be created or changed as asked; the message names the field."""


@dataclass(frozen=True, slots=True)
class ProjectKey:
    id: int
    project_id: int
    public_key: str
    label: str
    is_active: bool
    events_per_minute: int | None
    events_per_hour: int | None
    created_at: float

    def dsn(self, base_url: str) -> str:
        """The DSN an SDK is configured with.

        >>> ProjectKey(1, 7, "abc", "Default", True, None, None, 0).dsn("https://wk.example.com")
        'https://abc@wk.example.com/7'
        """
        parts = urlsplit(base_url)
        return f"{parts.scheme}://{self.public_key}@{parts.netloc}{parts.path.rstrip('/')}/{self.project_id}"


@dataclass(frozen=True, slots=True)
class Project:
    id: int
    name: str
    slug: str
    platform: str | None
    retention_days: int | None
    events_per_minute: int | None
    events_per_hour: int | None
    settings: dict[str, Any]
    created_at: float


def _project(row: Any) -> Project:
    return Project(
        row.id, row.name, row.slug, row.platform, row.retention_days, row.events_per_minute,
        row.events_per_hour, orjson.loads(row.settings), row.created_at,
    )


def _key(row: Any) -> ProjectKey:
    return ProjectKey(
        row.id, row.project_id, row.public_key, row.label, row.is_active, row.events_per_minute,
        row.events_per_hour, row.created_at,
    )


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:50] or "project"


def create_project(conn: Connection, name: str, *, now: float, platform: str | None = None) -> Project:
    """Create a project with one active key."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ProjectError("name: must be 1-200 characters")
    base = slugify(name)
    slug, n = base, 1
    while conn.execute(select(projects.c.id).where(projects.c.slug == slug)).first():
        n += 1
        slug = f"{base}-{n}"
    project_id = conn.execute(
        insert(projects).values(name=name, slug=slug, platform=platform, settings="{}", created_at=now)
    ).inserted_primary_key[0]  # type: ignore[index]
    create_key(conn, project_id, now=now)
    project = get_project(conn, project_id)
    assert project is not None
    return project


def get_project(conn: Connection, project_id: int) -> Project | None:
    row = conn.execute(select(projects).where(projects.c.id == project_id)).first()
    return _project(row) if row else None


def list_projects(conn: Connection) -> list[Project]:
    return [_project(r) for r in conn.execute(select(projects).order_by(projects.c.id))]


def update_project(conn: Connection, project_id: int, changes: dict[str, Any]) -> Project | None:
    values: dict[str, Any] = {}
    for field, value in changes.items():
        if field == "settings":
            values["settings"] = orjson.dumps(value).decode()
        elif field in ("name", "platform", "retention_days", "events_per_minute", "events_per_hour"):
            values[field] = value
        else:
            raise ProjectError(f"{field}: cannot be changed")
    if values:
        conn.execute(update(projects).where(projects.c.id == project_id).values(**values))
    return get_project(conn, project_id)


def delete_project(conn: Connection, project_id: int) -> bool:
    return conn.execute(projects.delete().where(projects.c.id == project_id)).rowcount > 0


def create_key(conn: Connection, project_id: int, *, now: float, label: str = "Default",
               rotated_from: int | None = None) -> ProjectKey:
    public_key = secrets.token_hex(16)
    key_id = conn.execute(
        insert(project_keys).values(
            project_id=project_id, public_key=public_key, label=label, is_active=True,
            created_at=now, rotated_from=rotated_from,
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    key = get_key(conn, key_id)
    assert key is not None
    return key


def get_key(conn: Connection, key_id: int) -> ProjectKey | None:
    row = conn.execute(select(project_keys).where(project_keys.c.id == key_id)).first()
    return _key(row) if row else None


def list_keys(conn: Connection, project_id: int) -> list[ProjectKey]:
    rows = conn.execute(
        select(project_keys).where(project_keys.c.project_id == project_id).order_by(project_keys.c.id)
    )
    return [_key(r) for r in rows]


def update_key(conn: Connection, key_id: int, changes: dict[str, Any]) -> ProjectKey | None:
    allowed = {"label", "is_active", "events_per_minute", "events_per_hour"}
    for field in changes:
        if field not in allowed:
            raise ProjectError(f"{field}: cannot be changed")
    if changes:
        conn.execute(update(project_keys).where(project_keys.c.id == key_id).values(**changes))
    return get_key(conn, key_id)


def rotate_key(conn: Connection, key_id: int, *, now: float) -> ProjectKey | None:
    """Issue a new key in place of `key_id` and disable the old one at once (it may be leaked)."""
    old = get_key(conn, key_id)
    if old is None:
        return None
    conn.execute(update(project_keys).where(project_keys.c.id == key_id).values(is_active=False))
    return create_key(conn, old.project_id, now=now, label=old.label, rotated_from=key_id)


def find_key(conn: Connection, public_key: str) -> tuple[ProjectKey, Project] | None:
    row = conn.execute(select(project_keys).where(project_keys.c.public_key == public_key)).first()
    if row is None:
        return None
    project = get_project(conn, row.project_id)
    return (_key(row), project) if project else None
