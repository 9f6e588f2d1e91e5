"""Small read queries the pages need that the errors domain does not offer: bucketed event counts
for sparklines and charts, the environments and releases a project has seen, and an event's
older/newer neighbours."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from watchkeeper.errors.tables import events, issue_hour_counts, issue_minute_counts, issue_tags, issues


@dataclass(frozen=True, slots=True)
class Buckets:
    """Equal-width time buckets over a range: bucket i starts at `start + i * width` (epoch seconds)."""

    start: float
    width: float
    count: int

    def starts(self) -> list[float]:
        return [self.start + i * self.width for i in range(self.count)]


def buckets_for(since: float, until: float, count: int) -> Buckets:
    """About ``count`` equal buckets covering [since, until]: whole minutes, or — once a bucket would
    span 45 minutes or more — whole hours starting on the hour, whose counts come from the hourly
    table (a 24 h range then has 25 hourly buckets, the first starting before ``since``).

    >>> buckets_for(0, 3540, 6)
    Buckets(start=0, width=600, count=6)
    >>> buckets_for(1800, 86400 + 1800, 24)
    Buckets(start=0, width=3600, count=25)
    >>> buckets_for(0, 7 * 86400, 24).width // 3600
    7
    """
    first, last = int(since // 60), int(until // 60)
    span = last - first + 1
    if span / count < 45:
        minutes = max(1, math.ceil(span / count))
        return Buckets(first * 60, minutes * 60, math.ceil(span / minutes))
    first_hour, last_hour = first // 60, last // 60
    hours = last_hour - first_hour + 1
    width = max(1, round(hours / count))
    return Buckets(first_hour * 3600, width * 3600, math.ceil(hours / width))


def issue_counts(conn: Connection, issue_ids: list[int], buckets: Buckets) -> dict[int, list[int]]:
    """Events per bucket for each issue (one query for a whole page of issues)."""
    out = {issue_id: [0] * buckets.count for issue_id in issue_ids}
    if not issue_ids:
        return out
    hourly = buckets.start % 3600 == 0 and buckets.width % 3600 == 0
    table, unit = (issue_hour_counts, 3600) if hourly else (issue_minute_counts, 60)
    slot = table.c.hour if hourly else table.c.minute
    first = int(buckets.start // unit)
    width = int(buckets.width // unit)
    # Integer columns and integer parameters: `//` is integer division on SQLite and PostgreSQL alike.
    bucket = ((slot - first) // width).label("bucket")
    rows = conn.execute(
        select(table.c.issue_id, bucket, func.sum(table.c.count))
        .where(table.c.issue_id.in_(issue_ids), slot >= first, slot < first + width * buckets.count)
        .group_by(table.c.issue_id, bucket)
    )
    for issue_id, index, count in rows:
        out[issue_id][int(index)] += int(count)
    return out


def issues_of_project(conn: Connection, project_id: int, issue_ids: list[int]) -> list[int]:
    """Those of `issue_ids` that belong to the project (ids from a query string are not trusted)."""
    if not issue_ids:
        return []
    rows = conn.execute(select(issues.c.id).where(issues.c.project_id == project_id, issues.c.id.in_(issue_ids)))
    return [r.id for r in rows]


def tag_summary(conn: Connection, issue_id: int, top: int = 5) -> list[dict[str, Any]]:
    """Per tag key of an issue: total, distinct values and the `top` most frequent values, largest first.

    The shape of `errors.issues.tag_breakdown`, computed in the database: a busy issue has tens of
    thousands of `user` values, and only the first few are shown.
    """
    totals = conn.execute(
        select(issue_tags.c.key, func.count(), func.sum(issue_tags.c.times_seen))
        .where(issue_tags.c.issue_id == issue_id)
        .group_by(issue_tags.c.key)
    ).all()
    summary = []
    for key, unique_values, total in totals:
        values = conn.execute(
            select(issue_tags.c.value, issue_tags.c.times_seen)
            .where(issue_tags.c.issue_id == issue_id, issue_tags.c.key == key)
            .order_by(issue_tags.c.times_seen.desc(), issue_tags.c.value)
            .limit(top)
        )
        summary.append({"key": key, "total": int(total), "unique_values": int(unique_values),
                        "top_values": [{"value": v, "count": c} for v, c in values]})
    return sorted(summary, key=lambda entry: -entry["total"])


FILTER_KEYS = ("environment", "release")


def seen_values(conn: Connection, project_id: int, limit: int = 50) -> dict[str, list[str]]:
    """Distinct environments and releases over a project's issues (the first `limit` of each, sorted)."""
    values = {}
    for key in FILTER_KEYS:  # one query per key: with `key IN (...)` SQLite picks a plan 3x slower
        rows = conn.execute(
            select(issue_tags.c.value)
            .select_from(issue_tags.join(issues, issues.c.id == issue_tags.c.issue_id))
            .where(issues.c.project_id == project_id, issue_tags.c.key == key)
            .group_by(issue_tags.c.value)
            .order_by(issue_tags.c.value)
            .limit(limit)
        )
        values[key] = [r.value for r in rows]
    return values


class FilterChoices:
    """The environments and releases offered in filter menus, remembered per project for a while.

    Collecting them reads every issue's tags, which on a project with 10k issues costs as much as the
    rest of the page; a menu that learns of a new release a minute late is fine (a value typed into the
    address still filters).
    """

    def __init__(self, ttl_seconds: float = 60.0) -> None:
        self.ttl_seconds = ttl_seconds
        self._entries: dict[int, tuple[float, dict[str, list[str]]]] = {}

    def get(self, conn: Connection, project_id: int, now: float) -> dict[str, list[str]]:
        entry = self._entries.get(project_id)
        if entry is None or now - entry[0] >= self.ttl_seconds or now < entry[0]:
            entry = (now, seen_values(conn, project_id))
            if any(entry[1].values()):  # a new project's first events should show up at once
                self._entries[project_id] = entry
        return entry[1]


@dataclass(frozen=True, slots=True)
class Neighbours:
    older: str | None
    newer: str | None


def event_neighbours(conn: Connection, issue_id: int, event_id: str) -> Neighbours:
    """The event ids just before and after `event_id` in its issue (by timestamp, then row id)."""
    here = conn.execute(
        select(events.c.id, events.c.timestamp).where(events.c.issue_id == issue_id, events.c.event_id == event_id)
    ).first()
    if here is None:
        return Neighbours(None, None)
    ts, row_id = here.timestamp, here.id
    # The plain `timestamp <=` / `>=` bound lets the (issue_id, timestamp) index start at this event
    # instead of walking every event of a busy issue; the OR only breaks ties.
    older = conn.execute(
        select(events.c.event_id)
        .where(
            events.c.issue_id == issue_id,
            events.c.timestamp <= ts,
            or_(events.c.timestamp < ts, and_(events.c.timestamp == ts, events.c.id < row_id)),
        )
        .order_by(events.c.timestamp.desc(), events.c.id.desc())
        .limit(1)
    ).scalar()
    newer = conn.execute(
        select(events.c.event_id)
        .where(
            events.c.issue_id == issue_id,
            events.c.timestamp >= ts,
            or_(events.c.timestamp > ts, and_(events.c.timestamp == ts, events.c.id > row_id)),
        )
        .order_by(events.c.timestamp.asc(), events.c.id.asc())
        .limit(1)
    ).scalar()
    return Neighbours(older, newer)
