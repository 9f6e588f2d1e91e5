"""Maintenance windows: one-off (start, end) or recurring (cron + time zone + duration). During one, a
monitor's failures do not count towards "down" and its checks are left out of uptime and SLA."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import Connection, delete, select

from watchkeeper.lib.clock import MAX_EPOCH
from watchkeeper.uptime.tables import maintenance_windows


class MaintenanceSpec(BaseModel):
    """A window as the API gives it: `starts_at`+`ends_at` (epoch seconds), or `cron`+`duration_seconds`."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    monitor_ids: list[int] | None = Field(None, max_length=1000, description="None: every monitor of the project")
    starts_at: float | None = Field(None, ge=0, le=MAX_EPOCH, allow_inf_nan=False)
    ends_at: float | None = Field(None, ge=0, le=MAX_EPOCH, allow_inf_nan=False)
    cron: str | None = Field(None, max_length=100)
    timezone: str = "UTC"
    duration_seconds: int | None = Field(None, gt=0, le=31 * 86400)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, cron: str | None) -> str | None:
        if cron is not None and not croniter.is_valid(cron):
            raise ValueError(f"not a cron expression: {cron!r}")
        return cron

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r}") from None
        return zone

    @model_validator(mode="after")
    def _one_kind(self) -> MaintenanceSpec:
        if self.cron is not None:
            if self.duration_seconds is None:
                raise ValueError("duration_seconds: required with cron")
        elif self.starts_at is None or self.ends_at is None:
            raise ValueError("give starts_at and ends_at, or cron and duration_seconds")
        elif self.ends_at <= self.starts_at:
            raise ValueError("ends_at: must be after starts_at")
        return self


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    id: int
    project_id: int
    title: str
    monitor_ids: list[int] | None
    starts_at: float | None
    ends_at: float | None
    cron: str | None
    timezone: str | None
    duration_seconds: int | None

    def covers(self, monitor_id: int) -> bool:
        return self.monitor_ids is None or monitor_id in self.monitor_ids

    def current_period(self, at: float) -> tuple[float, float] | None:
        """The (start, end) of the occurrence that contains `at`, or None.

        >>> w = MaintenanceWindow(1, 1, "nightly", None, None, None, "0 2 * * *", "UTC", 3600)
        >>> w.current_period(1_767_232_800 + 60)  # 2026-01-01 02:01 UTC
        (1767232800.0, 1767236400.0)
        """
        if self.cron is None:
            assert self.starts_at is not None and self.ends_at is not None
            return (self.starts_at, self.ends_at) if self.starts_at <= at < self.ends_at else None
        assert self.duration_seconds is not None
        zone = zoneinfo.ZoneInfo(self.timezone or "UTC")
        # The last start at or before `at` (croniter steps back from just after `at`).
        moment = dt.datetime.fromtimestamp(at + 1, zone)
        start = float(croniter(self.cron, moment).get_prev(float))
        end = start + self.duration_seconds
        return (start, end) if start <= at < end else None

    def next_period(self, after: float) -> tuple[float, float] | None:
        """The next occurrence starting after `after` (for the status page's "scheduled maintenance")."""
        if self.cron is None:
            assert self.starts_at is not None and self.ends_at is not None
            return (self.starts_at, self.ends_at) if self.starts_at > after else None
        assert self.duration_seconds is not None
        zone = zoneinfo.ZoneInfo(self.timezone or "UTC")
        start = float(croniter(self.cron, dt.datetime.fromtimestamp(after, zone)).get_next(float))
        return start, start + self.duration_seconds

    def periods_between(self, start: float, end: float, limit: int = 10_000) -> list[tuple[float, float]]:
        """The occurrences that overlap [start, end) (at most `limit`).

        >>> MaintenanceWindow(1, 1, "x", None, None, None, "0 2 * * *", "UTC", 3600).periods_between(0, 86400 * 2)
        [(7200.0, 10800.0), (93600.0, 97200.0)]
        """
        if self.cron is None:
            assert self.starts_at is not None and self.ends_at is not None
            return [(self.starts_at, self.ends_at)] if self.starts_at < end and self.ends_at > start else []
        assert self.duration_seconds is not None
        zone = zoneinfo.ZoneInfo(self.timezone or "UTC")
        schedule = croniter(self.cron, dt.datetime.fromtimestamp(start - self.duration_seconds, zone))
        periods: list[tuple[float, float]] = []
        while len(periods) < limit:
            begin = float(schedule.get_next(float))
            if begin >= end:
                break
            if begin + self.duration_seconds > start:
                periods.append((begin, begin + self.duration_seconds))
        return periods

    def as_json(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}


def _from_row(row: Any) -> MaintenanceWindow:
    values = dict(row._mapping)
    values.pop("created_at", None)
    values["monitor_ids"] = orjson.loads(values["monitor_ids"]) if values["monitor_ids"] else None
    return MaintenanceWindow(**values)


def create_window(conn: Connection, project_id: int, spec: MaintenanceSpec, *, now: float) -> MaintenanceWindow:
    values = spec.model_dump()
    values["monitor_ids"] = orjson.dumps(spec.monitor_ids).decode() if spec.monitor_ids is not None else None
    window_id = conn.execute(
        maintenance_windows.insert().values(project_id=project_id, created_at=now, **values)
    ).inserted_primary_key[0]  # type: ignore[index]
    found = get_window(conn, window_id)
    assert found is not None
    return found


def get_window(conn: Connection, window_id: int) -> MaintenanceWindow | None:
    row = conn.execute(select(maintenance_windows).where(maintenance_windows.c.id == window_id)).first()
    return _from_row(row) if row else None


def delete_window(conn: Connection, window_id: int) -> None:
    conn.execute(delete(maintenance_windows).where(maintenance_windows.c.id == window_id))


def list_windows(conn: Connection, project_ids: Iterable[int]) -> list[MaintenanceWindow]:
    query = select(maintenance_windows).where(maintenance_windows.c.project_id.in_(list(project_ids)))
    return [_from_row(row) for row in conn.execute(query.order_by(maintenance_windows.c.id))]


def in_maintenance(windows: Iterable[MaintenanceWindow], project_id: int, monitor_id: int, at: float) -> bool:
    return any(
        w.project_id == project_id and w.covers(monitor_id) and w.current_period(at) is not None for w in windows
    )


def merged_periods(periods: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping periods joined, in order.

    >>> merged_periods([(5, 8), (1, 3), (2, 4)])
    [(1, 4), (5, 8)]
    """
    merged: list[tuple[float, float]] = []
    for begin, end in sorted(periods):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return merged
