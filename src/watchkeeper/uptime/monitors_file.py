"""Monitors as code: `uptime.monitors_file` names a YAML file synced at start.

    monitors:
      - project: backend          # the project's slug
        slug: api-health          # identity of the monitor in the file (required)
        name: API health
        type: http
        interval_seconds: 30
        config:
          url: https://api.example.com/health
          conditions: ['body.status == "UP"']

Monitors from the file are marked `managed_by: config` and are read-only over the API. Entries added
to the file are created, changed entries updated (state kept), entries removed from it deleted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Connection, select

from watchkeeper.auth.tables import projects
from watchkeeper.config import ConfigError
from watchkeeper.uptime.monitors import change_monitor, create_monitor, delete_monitor, monitor_from_row
from watchkeeper.uptime.specs import MonitorSpec, Slug
from watchkeeper.uptime.tables import monitors

MANAGED = "config"


class FileMonitor(MonitorSpec):
    model_config = ConfigDict(extra="forbid")
    project: str = Field(min_length=1, max_length=64)
    slug: Slug


class MonitorsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    monitors: list[FileMonitor] = Field(default_factory=list)


def load_monitors_file(path: Path) -> list[FileMonitor]:
    """Read and validate the file; ConfigError naming the entry and field when it is wrong."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"uptime.monitors_file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"uptime.monitors_file {path}: not valid YAML: {exc}") from None
    try:
        entries = MonitorsFile.model_validate(raw).monitors
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"uptime.monitors_file {path}: {problems}") from None
    seen: set[tuple[str, str]] = set()
    for index, entry in enumerate(entries):
        if (entry.project, entry.slug) in seen:
            raise ConfigError(f"uptime.monitors_file {path}: monitors.{index}.slug: {entry.slug!r} appears twice")
        seen.add((entry.project, entry.slug))
    return entries


def sync_monitors(conn: Connection, entries: list[FileMonitor], *, now: float) -> dict[str, int]:
    """Make the config-managed monitors match the file; returns counts of created/changed/deleted."""
    project_ids = dict(conn.execute(select(projects.c.slug, projects.c.id)).all())
    unknown = sorted({e.project for e in entries} - set(project_ids))
    if unknown:
        raise ConfigError(f"uptime.monitors_file: unknown project {unknown[0]!r} (use the project's slug)")
    existing = {
        (m.project_id, m.slug): m
        for m in map(monitor_from_row, conn.execute(select(monitors).where(monitors.c.managed_by == MANAGED)))
    }
    counts = {"created": 0, "changed": 0, "deleted": 0}
    wanted: set[tuple[int, str | None]] = set()
    for entry in entries:
        project_id = project_ids[entry.project]
        key: tuple[int, str | None] = (project_id, entry.slug)
        wanted.add(key)
        spec = MonitorSpec.model_validate(entry.model_dump(exclude={"project"}))
        current = existing.get(key)
        if current is None:
            create_monitor(conn, project_id, spec, now=now, managed_by=MANAGED)
            counts["created"] += 1
        elif _differs(current, spec):
            change_monitor(conn, current, spec, now=now)
            counts["changed"] += 1
    for key, monitor in existing.items():
        if key not in wanted:
            delete_monitor(conn, monitor.id)
            counts["deleted"] += 1
    return counts


def _differs(current: Any, spec: MonitorSpec) -> bool:
    return any(getattr(current, name) != value for name, value in spec.model_dump().items())
