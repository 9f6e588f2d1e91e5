"""Deleting data older than each project's retention (default from settings, 90 days)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, select

from watchkeeper.auth.tables import projects
from watchkeeper.errors.tables import (
    attachments,
    envelope_items,
    events,
    issue_hour_counts,
    issue_minute_counts,
    issues,
    project_minute_counts,
    transactions,
)


def _cutoffs(conn: Connection, now: float, default_days: int) -> list[tuple[int, float]]:
    rows = conn.execute(select(projects.c.id, projects.c.retention_days))
    return [(r.id, now - 86400 * (r.retention_days or default_days)) for r in rows]


def delete_expired(conn: Connection, now: float, default_days: int, batch_size: int) -> int:
    """Delete one batch of expired rows per table and project; returns how many rows went.

    Called repeatedly until it returns 0, each call its own short transaction, so ingest is never
    blocked for long.
    """
    deleted = 0
    for project_id, cutoff in _cutoffs(conn, now, default_days):
        for table, column in ((events, events.c.received), (transactions, transactions.c.received),
                              (envelope_items, envelope_items.c.received),
                              (attachments, attachments.c.received)):
            ids = select(table.c.id).where(table.c.project_id == project_id, column < cutoff).limit(batch_size)
            deleted += conn.execute(delete(table).where(table.c.id.in_(ids))).rowcount
        minute = int(cutoff // 60)
        deleted += conn.execute(delete(project_minute_counts).where(
            project_minute_counts.c.project_id == project_id, project_minute_counts.c.minute < minute)).rowcount
        stale = select(issues.c.id).where(
            issues.c.project_id == project_id, issues.c.last_seen < cutoff,
            ~exists().where(events.c.issue_id == issues.c.id),
        ).limit(batch_size)
        deleted += conn.execute(delete(issues).where(issues.c.id.in_(stale))).rowcount
        old_counts = select(issues.c.id).where(issues.c.project_id == project_id)
        deleted += conn.execute(delete(issue_minute_counts).where(
            and_(issue_minute_counts.c.minute < minute, issue_minute_counts.c.issue_id.in_(old_counts)))).rowcount
        deleted += conn.execute(delete(issue_hour_counts).where(
            and_(issue_hour_counts.c.hour < minute // 60, issue_hour_counts.c.issue_id.in_(old_counts)))).rowcount
    return deleted


def retention_batch(conn: Connection, items: Sequence[tuple[float, int, int]]) -> list[Any]:
    """Writer batch function: items are (now, default_days, batch_size)."""
    return [delete_expired(conn, *item) for item in items]
