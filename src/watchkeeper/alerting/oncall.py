"""On-call schedules: layers of rotations in the schedule's time zone, and overrides on top.

A layer hands off every `length_days` days (1 daily, 7 weekly, or any number) at `handoff` local time,
starting on `start_date` with its first user. Hand-offs are computed on the local calendar and then
turned into instants, so a 09:00 Europe/Berlin hand-off is 09:00 in Berlin in winter and in summer (the
UTC instant moves by an hour across the change). When several layers have someone, the last layer
wins; an override (user X covers from..to) wins over every layer.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Connection, delete, insert, select, update

from watchkeeper.alerting.incident_tables import oncall_overrides, oncall_schedules

ROTATION_DAYS = {"daily": 1, "weekly": 7}


class ScheduleError(ValueError):
    """A schedule cannot be saved as asked; the message names the field."""


class LayerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rotation: Literal["daily", "weekly", "custom"] = "weekly"
    length_days: int | None = Field(None, ge=1, le=366, description="days per shift; for custom rotations")
    handoff: str = Field("09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="local hand-off time HH:MM")
    start_date: date = Field(description="the first shift begins on this local date at the hand-off time")
    # Ids fit the users table's INTEGER column (a larger one is a 422, not a database error).
    users: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] = Field(
        min_length=1, max_length=100, description="user ids in rotation order")

    def days(self) -> int:
        if self.rotation == "custom":
            if self.length_days is None:
                raise ScheduleError("layers: a custom rotation needs length_days")
            return self.length_days
        return ROTATION_DAYS[self.rotation]


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    time_zone: str = Field("UTC", max_length=64)
    layers: list[LayerIn] = Field(min_length=1, max_length=10)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"not a known time zone: {value!r}") from None
        return value


@dataclass(frozen=True)
class Layer:
    days: int
    handoff: time
    start_date: date
    users: list[int]

    def shift_start(self, index: int, zone: ZoneInfo) -> float:
        """The instant shift number `index` begins (local date + hand-off time, in the zone)."""
        try:
            local = datetime.combine(self.start_date + timedelta(days=index * self.days), self.handoff, zone)
            # A hand-off inside the spring-forward gap: zoneinfo reads it with the offset before the
            # change, which is the first existing local time after it once converted.
            return local.timestamp()
        except OverflowError:  # after the year 9999: a shift the calendar cannot hold never begins
            return math.inf

    def index_at(self, at: float, zone: ZoneInfo) -> int:
        """The shift covering `at` (negative before the first shift)."""
        local = datetime.fromtimestamp(at, zone).replace(tzinfo=None)
        first = datetime.combine(self.start_date, self.handoff)
        index = (local - first) // timedelta(days=self.days)
        # The local-calendar guess is right except within an hour of a hand-off across a DST change.
        while self.shift_start(index, zone) > at:
            index -= 1
        while self.shift_start(index + 1, zone) <= at:
            index += 1
        return index

    def user_at(self, at: float, zone: ZoneInfo) -> int | None:
        index = self.index_at(at, zone)
        return None if index < 0 else self.users[index % len(self.users)]


@dataclass(frozen=True)
class Override:
    id: int
    user_id: int
    starts_at: float
    ends_at: float


@dataclass(frozen=True)
class Schedule:
    id: int
    name: str
    time_zone: str
    layers: list[dict[str, Any]]
    overrides: list[Override]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def _layers(self) -> list[Layer]:
        return [Layer(ROTATION_DAYS.get(layer["rotation"]) or int(layer["length_days"]),
                      time.fromisoformat(layer["handoff"]), date.fromisoformat(layer["start_date"]),
                      list(layer["users"])) for layer in self.layers]

    def on_call_at(self, at: float) -> int | None:
        """The user on call at `at`: an override, else the last layer that has someone.

        >>> s = Schedule(1, "ops", "UTC", [{"rotation": "daily", "handoff": "09:00", "start_date": "2026-01-01",
        ...     "users": [7, 8]}], []); s.on_call_at(1767258000.0 + 86400)
        8
        """
        for override in reversed(self.overrides):
            if override.starts_at <= at < override.ends_at:
                return override.user_id
        zone = self.zone
        for layer in reversed(self._layers()):
            user = layer.user_at(at, zone)
            if user is not None:
                return user
        return None

    def shifts(self, since: float, until: float) -> list[dict[str, Any]]:
        """Who is on call from `since` to `until`, as consecutive shifts {user_id, starts_at, ends_at}
        (user_id None where nobody is)."""
        zone = self.zone
        edges = {since, until}
        for layer in self._layers():
            index = max(0, layer.index_at(since, zone))
            while (start := layer.shift_start(index, zone)) < until:
                if start > since:
                    edges.add(start)
                index += 1
        for override in self.overrides:
            edges.update(t for t in (override.starts_at, override.ends_at) if since < t < until)
        points = sorted(edges)
        shifts: list[dict[str, Any]] = []
        for start, end in itertools.pairwise(points):
            user = self.on_call_at(start)
            if shifts and shifts[-1]["user_id"] == user:
                shifts[-1]["ends_at"] = end
            else:
                shifts.append({"user_id": user, "starts_at": start, "ends_at": end})
        return shifts

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "time_zone": self.time_zone, "layers": self.layers,
                "overrides": [{"id": o.id, "user_id": o.user_id, "starts_at": o.starts_at, "ends_at": o.ends_at}
                              for o in self.overrides]}


def _layers_json(body: ScheduleIn) -> str:
    layers = []
    for layer in body.layers:
        layers.append({"rotation": layer.rotation, "length_days": layer.days(), "handoff": layer.handoff,
                       "start_date": layer.start_date.isoformat(), "users": layer.users})
    return orjson.dumps(layers).decode()


def _check_users(conn: Connection, user_ids: set[int]) -> None:
    from watchkeeper.auth.tables import users

    found = set(conn.scalars(select(users.c.id).where(users.c.id.in_(sorted(user_ids)), users.c.is_active)))
    missing = sorted(user_ids - found)
    if missing:
        raise ScheduleError(f"users: no active user with id {', '.join(map(str, missing))}")


def _name_free(conn: Connection, name: str, schedule_id: int | None) -> None:
    taken = conn.scalar(select(oncall_schedules.c.id).where(oncall_schedules.c.name == name))
    if taken is not None and taken != schedule_id:
        raise ScheduleError(f"name: a schedule named {name!r} exists")


def create_schedule(conn: Connection, body: ScheduleIn, *, now: float) -> Schedule:
    layers = _layers_json(body)
    _check_users(conn, {u for layer in body.layers for u in layer.users})
    _name_free(conn, body.name, None)
    result = conn.execute(insert(oncall_schedules).values(name=body.name, time_zone=body.time_zone, layers=layers,
                                                          created_at=now, updated_at=now))
    schedule = get_schedule(conn, int(result.inserted_primary_key[0]))  # type: ignore[index]
    assert schedule is not None
    return schedule


def replace_schedule(conn: Connection, schedule_id: int, body: ScheduleIn, *, now: float) -> Schedule | None:
    layers = _layers_json(body)
    _check_users(conn, {u for layer in body.layers for u in layer.users})
    _name_free(conn, body.name, schedule_id)
    changed = conn.execute(update(oncall_schedules).where(oncall_schedules.c.id == schedule_id).values(
        name=body.name, time_zone=body.time_zone, layers=layers, updated_at=now)).rowcount
    return get_schedule(conn, schedule_id) if changed else None


def delete_schedule(conn: Connection, schedule_id: int) -> bool:
    return bool(conn.execute(delete(oncall_schedules).where(oncall_schedules.c.id == schedule_id)).rowcount)


def _overrides(conn: Connection, schedule_ids: list[int]) -> dict[int, list[Override]]:
    found: dict[int, list[Override]] = {}
    rows = conn.execute(select(oncall_overrides).where(oncall_overrides.c.schedule_id.in_(schedule_ids))
                        .order_by(oncall_overrides.c.id))
    for row in rows:
        found.setdefault(row.schedule_id, []).append(Override(row.id, row.user_id, row.starts_at, row.ends_at))
    return found


def list_schedules(conn: Connection) -> list[Schedule]:
    rows = conn.execute(select(oncall_schedules).order_by(oncall_schedules.c.name)).all()
    overrides = _overrides(conn, [r.id for r in rows])
    return [Schedule(r.id, r.name, r.time_zone, orjson.loads(r.layers), overrides.get(r.id, [])) for r in rows]


def get_schedule(conn: Connection, schedule_id: int) -> Schedule | None:
    row = conn.execute(select(oncall_schedules).where(oncall_schedules.c.id == schedule_id)).first()
    if row is None:
        return None
    return Schedule(row.id, row.name, row.time_zone, orjson.loads(row.layers),
                    _overrides(conn, [row.id]).get(row.id, []))


def add_override(conn: Connection, schedule_id: int, user_id: int, starts_at: float, ends_at: float, *,
                 now: float) -> int:
    """User `user_id` covers the schedule from `starts_at` to `ends_at`; returns the override's id."""
    if ends_at <= starts_at:
        raise ScheduleError("ends_at: must be after starts_at")
    _check_users(conn, {user_id})
    result = conn.execute(insert(oncall_overrides).values(schedule_id=schedule_id, user_id=user_id,
                                                          starts_at=starts_at, ends_at=ends_at, created_at=now))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def delete_override(conn: Connection, schedule_id: int, override_id: int) -> bool:
    return bool(conn.execute(delete(oncall_overrides).where(
        oncall_overrides.c.id == override_id, oncall_overrides.c.schedule_id == schedule_id)).rowcount)
