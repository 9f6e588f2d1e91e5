"""Small read queries the pages need that the errors domain does not offer: bucketed event counts
for sparklines and charts, the environments and releases a project has seen, and an event's
older/newer neighbours."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import Connection, and_, or_, select

from watchkeeper.errors.tables import events, issue_minute_counts, issue_tags, issues


@dataclass(frozen=True, slots=True)
class Buckets:
    """Equal-width time buckets over a range: bucket i starts at `start + i * width` (epoch seconds)."""

    start: float
    width: float
    count: int

    def starts(self) -> list[float]:
        return [self.start + i * self.width for i in range(self.count)]


def buckets_for(since: float, until: float, count: int) -> Buckets:
    """Whole-minute buckets covering [since, until].

    >>> buckets_for(0, 3600, 6)
    Buckets(start=0, width=600, count=6)
    """
    first, last = int(since // 60), int(until // 60)
    minutes = max(1, math.ceil((last - first + 1) / count))
    return Buckets(first * 60, minutes * 60, math.ceil((last - first + 1) / minutes))


def issue_counts(conn: Connection, issue_ids: list[int], buckets: Buckets) -> dict[int, list[int]]:
    """Events per bucket for each issue (one query for a whole page of issues)."""
    out = {issue_id: [0] * buckets.count for issue_id in issue_ids}
    if not issue_ids:
        return out
    first = int(buckets.start // 60)
    width = int(buckets.width // 60)
    minute = issue_minute_counts.c.minute
    bucket = ((minute - first) // width).label("bucket")
    rows = conn.execute(
        select(issue_minute_counts.c.issue_id, bucket, issue_minute_counts.c.count)
        .where(
            issue_minute_counts.c.issue_id.in_(issue_ids),
            minute >= first,
            minute < first + width * buckets.count,
        )
    )
    # Summed here rather than with GROUP BY: SQLite streams the rows from the primary key either way,
    # and this keeps the bucket expression free of dialect differences in integer division.
    for issue_id, index, count in rows:
        out[issue_id][int(index)] += count
    return out


def seen_values(conn: Connection, project_id: int, key: str, limit: int = 50) -> list[str]:
    """Distinct values of a tag (environment, release) over a project's issues, for filter menus."""
    rows = conn.execute(
        select(issue_tags.c.value)
        .select_from(issue_tags.join(issues, issues.c.id == issue_tags.c.issue_id))
        .where(issues.c.project_id == project_id, issue_tags.c.key == key)
        .group_by(issue_tags.c.value)
        .order_by(issue_tags.c.value)
        .limit(limit)
    )
    return [r.value for r in rows]


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
