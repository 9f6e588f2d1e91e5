"""Issues: listing with filters and keyset pagination, detail with tag breakdowns, status changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson
from sqlalchemy import Connection, and_, delete, exists, func, or_, select, update

from watchkeeper.auth.audit import record
from watchkeeper.auth.teams import assignable_user_ids
from watchkeeper.errors.tables import events, issue_hour_counts, issue_minute_counts, issue_tags, issues
from watchkeeper.lib.blobs import unpack_document

SORTS = {
    "last_seen": issues.c.last_seen,
    "first_seen": issues.c.first_seen,
    "events": issues.c.times_seen,
    "users": issues.c.users_seen,
}
Sort = Literal["last_seen", "first_seen", "events", "users"]
STATUSES = ("unresolved", "resolved", "ignored")


class IssueChangeError(ValueError):
    """A status change that makes no sense; the message names the field."""


@dataclass(frozen=True, slots=True)
class IssueFilter:
    status: str | None = "unresolved"
    level: str | None = None
    environment: str | None = None
    release: str | None = None
    since: float | None = None
    until: float | None = None
    query: str | None = None


def issue_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "project_id": row.project_id,
        "title": row.title,
        "culprit": row.culprit,
        "type": row.type,
        "level": row.level,
        "platform": row.platform,
        "status": row.status,
        "substatus": row.substatus,
        "status_details": orjson.loads(row.status_details),
        "first_seen": row.first_seen,
        "last_seen": row.last_seen,
        "count": row.times_seen,
        "user_count": row.users_seen,
        "first_release": row.first_release,
        "last_release": row.last_release,
        "assignee_id": row.assignee_id,
        "metadata": orjson.loads(row.metadata),
        "hash": row.hash,
        "grouping_config": row.grouping_config,
        "resolved_at": row.resolved_at,
    }


def _has_tag(key: str, value: str) -> Any:
    return exists().where(issue_tags.c.issue_id == issues.c.id, issue_tags.c.key == key, issue_tags.c.value == value)


def list_issues(
    conn: Connection,
    project_id: int,
    flt: IssueFilter,
    *,
    sort: Sort = "last_seen",
    limit: int = 25,
    after: list[Any] | None = None,
) -> tuple[list[dict[str, Any]], list[Any] | None]:
    """One page of issues, newest/largest first; returns the rows and the key of the last row for the next page."""
    column = SORTS[sort]
    query = select(issues).where(issues.c.project_id == project_id)
    if flt.status:
        query = query.where(issues.c.status == flt.status)
    if flt.level:
        query = query.where(issues.c.level == flt.level)
    if flt.environment:
        query = query.where(_has_tag("environment", flt.environment))
    if flt.release:
        query = query.where(_has_tag("release", flt.release))
    if flt.since is not None:
        query = query.where(issues.c.last_seen >= flt.since)
    if flt.until is not None:
        query = query.where(issues.c.first_seen <= flt.until)
    if flt.query:
        pattern = "%" + flt.query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(issues.c.title.ilike(pattern, escape="\\"), issues.c.culprit.ilike(pattern, escape="\\"))
        )
    if after is not None:
        value, last_id = after
        query = query.where(or_(column < value, and_(column == value, issues.c.id < last_id)))
    rows = conn.execute(query.order_by(column.desc(), issues.c.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_key = [getattr(rows[-1], column.name), rows[-1].id] if more and rows else None
    return [issue_json(r) for r in rows], next_key


def get_issue(conn: Connection, issue_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(issues).where(issues.c.id == issue_id)).first()
    return issue_json(row) if row else None


def tag_breakdown(conn: Connection, issue_id: int, top: int = 10) -> list[dict[str, Any]]:
    """Per tag key: distinct values, total, and the most frequent values."""
    rows = conn.execute(
        select(
            issue_tags.c.key,
            issue_tags.c.value,
            issue_tags.c.times_seen,
            issue_tags.c.first_seen,
            issue_tags.c.last_seen,
        )
        .where(issue_tags.c.issue_id == issue_id)
        .order_by(issue_tags.c.key, issue_tags.c.times_seen.desc())
    )
    keys: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = keys.setdefault(r.key, {"key": r.key, "total": 0, "unique_values": 0, "top_values": []})
        entry["total"] += r.times_seen
        entry["unique_values"] += 1
        if len(entry["top_values"]) < top:
            entry["top_values"].append(
                {"value": r.value, "count": r.times_seen, "first_seen": r.first_seen, "last_seen": r.last_seen}
            )
    return sorted(keys.values(), key=lambda e: -e["total"])


def issue_histogram(conn: Connection, issue_id: int, since_minute: int) -> list[list[int]]:
    rows = conn.execute(
        select(issue_minute_counts.c.minute, issue_minute_counts.c.count)
        .where(issue_minute_counts.c.issue_id == issue_id, issue_minute_counts.c.minute >= since_minute)
        .order_by(issue_minute_counts.c.minute)
    )
    return [[r.minute * 60, r[1]] for r in rows]  # r[1]: "count" is also a tuple method


def _event_summary(row: Any) -> dict[str, Any]:
    return {
        "event_id": row.event_id,
        "issue_id": row.issue_id,
        "project_id": row.project_id,
        "timestamp": row.timestamp,
        "received": row.received,
        "level": row.level,
        "environment": row.environment,
        "release": row.release,
        "user": row.user_key,
        "title": row.title,
    }


def list_events(
    conn: Connection, issue_id: int, *, limit: int = 50, after: list[Any] | None = None, full: bool = False
) -> tuple[list[dict[str, Any]], list[Any] | None]:
    query = select(events).where(events.c.issue_id == issue_id)
    if after is not None:
        ts, last_id = after
        query = query.where(or_(events.c.timestamp < ts, and_(events.c.timestamp == ts, events.c.id < last_id)))
    rows = conn.execute(query.order_by(events.c.timestamp.desc(), events.c.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    out = [{**_event_summary(r), **({"data": unpack_document(r.data)} if full else {})} for r in rows]
    return out, ([rows[-1].timestamp, rows[-1].id] if more and rows else None)


def get_event(conn: Connection, project_id: int, event_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(events).where(events.c.project_id == project_id, events.c.event_id == event_id.replace("-", "").lower())
    ).first()
    if row is None:
        return None
    return {**_event_summary(row), "data": unpack_document(row.data)}


def change_issues(conn: Connection, project_id: int, issue_ids: list[int], change: dict[str, Any], now: float,
                  *, actor_user_id: int | None = None) -> int:
    """Apply a status/assignee change to issues of one project; returns how many changed. The change
    goes into the audit log, by ``actor_user_id`` (None: the system or the command line).

    `change`: status (unresolved|resolved|ignored), in_next_release (bool, with resolved),
    ignore_until (epoch), ignore_count (events), assignee_id (int or None; an active member of a team
    owning the project, or an admin).
    """
    values: dict[str, Any] = {}
    status = change.get("status")
    if status is not None:
        if status not in STATUSES:
            raise IssueChangeError(f"status: must be one of {', '.join(STATUSES)}")
        values["status"] = status
        details: dict[str, Any] = {}
        if status == "resolved":
            values["resolved_at"] = now
            values["substatus"] = "resolved"
        else:
            values["resolved_at"] = None
            values["substatus"] = "ongoing" if status == "unresolved" else "ignored"
        if status == "ignored":
            if change.get("ignore_until") is not None:
                details["ignore_until"] = float(change["ignore_until"])
            if change.get("ignore_count") is not None:
                details["ignore_count"] = int(change["ignore_count"])
        elif change.get("ignore_until") is not None or change.get("ignore_count") is not None:
            raise IssueChangeError("ignore_until/ignore_count: only with status 'ignored'")
        if change.get("in_next_release") and status != "resolved":
            raise IssueChangeError("in_next_release: only with status 'resolved'")
    if "assignee_id" in change:
        assignee = change["assignee_id"]
        # One message whether the user does not exist or belongs elsewhere: it must not tell which.
        if assignee is not None and assignee not in assignable_user_ids(conn, project_id):
            raise IssueChangeError(
                f"assignee_id: user {assignee} cannot be assigned: not an active member of a team owning this "
                "project, nor an admin"
            )
        values["assignee_id"] = assignee
    if not values:
        raise IssueChangeError("nothing to change: give status and/or assignee_id")
    changed = 0
    rows = conn.execute(
        select(issues.c.id, issues.c.times_seen, issues.c.last_release).where(
            issues.c.project_id == project_id, issues.c.id.in_(issue_ids)
        )
    ).all()
    for row in rows:
        row_values = dict(values)
        if status is not None:
            details = {}
            if status == "ignored":
                details = {
                    k: v
                    for k, v in (
                        ("ignore_until", change.get("ignore_until")),
                        ("ignore_count", change.get("ignore_count")),
                    )
                    if v is not None
                }
                if "ignore_count" in details:
                    details["ignore_baseline"] = row.times_seen
            if status == "resolved" and change.get("in_next_release"):
                # Events from the release it was last seen in don't reopen it; any other release does.
                details = {"in_release": row.last_release}
            row_values["status_details"] = orjson.dumps(details).decode()
        changed += conn.execute(update(issues).where(issues.c.id == row.id).values(**row_values)).rowcount
    if changed:
        record(conn, actor_user_id=actor_user_id, action="issue.change", target_type="project", target_id=project_id,
               details={"issues": [row.id for row in rows][:100], "changed": changed, **change}, now=now)
    return changed


def delete_issue(conn: Connection, issue_id: int) -> bool:
    conn.execute(delete(events).where(events.c.issue_id == issue_id))
    conn.execute(delete(issue_tags).where(issue_tags.c.issue_id == issue_id))
    conn.execute(delete(issue_minute_counts).where(issue_minute_counts.c.issue_id == issue_id))
    conn.execute(delete(issue_hour_counts).where(issue_hour_counts.c.issue_id == issue_id))
    return conn.execute(delete(issues).where(issues.c.id == issue_id)).rowcount > 0


def count_issues(conn: Connection, project_id: int) -> int:
    return int(
        conn.execute(select(func.count()).select_from(issues).where(issues.c.project_id == project_id)).scalar_one()
    )
