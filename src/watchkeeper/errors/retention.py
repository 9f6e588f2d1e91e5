"""Deleting error data older than each project's retention (default: the class's `retention.` setting).

Each function deletes one bounded batch and is called by the retention job (watchkeeper/privacy.py)
until it returns 0, each call its own short transaction, so ingest is never blocked for long.
"""

from __future__ import annotations

from sqlalchemy import Connection, Table, and_, delete, exists, select

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
from watchkeeper.lib.data_classes import Expiry


def _cutoffs(conn: Connection, now: float, default_days: float) -> list[tuple[int, float]]:
    rows = conn.execute(select(projects.c.id, projects.c.retention_days))
    return [(r.id, now - 86400 * (r.retention_days or default_days)) for r in rows]


def expire_events(conn: Connection, run: Expiry) -> int:
    """Events, the issues they leave empty, and the per-minute/hour counts past the retention."""
    deleted = 0
    for project_id, cutoff in _cutoffs(conn, run.now, run.days):
        ids = select(events.c.id).where(events.c.project_id == project_id, events.c.received < cutoff)
        deleted += conn.execute(delete(events).where(events.c.id.in_(ids.limit(run.batch_size)))).rowcount
        minute = int(cutoff // 60)
        deleted += conn.execute(delete(project_minute_counts).where(
            project_minute_counts.c.project_id == project_id, project_minute_counts.c.minute < minute)).rowcount
        stale = select(issues.c.id).where(
            issues.c.project_id == project_id, issues.c.last_seen < cutoff,
            ~exists().where(events.c.issue_id == issues.c.id),
        ).limit(run.batch_size)
        deleted += conn.execute(delete(issues).where(issues.c.id.in_(stale))).rowcount
        old_counts = select(issues.c.id).where(issues.c.project_id == project_id)
        deleted += conn.execute(delete(issue_minute_counts).where(
            and_(issue_minute_counts.c.minute < minute, issue_minute_counts.c.issue_id.in_(old_counts)))).rowcount
        deleted += conn.execute(delete(issue_hour_counts).where(
            and_(issue_hour_counts.c.hour < minute // 60, issue_hour_counts.c.issue_id.in_(old_counts)))).rowcount
    return deleted


def expire_transactions(conn: Connection, run: Expiry) -> int:
    return _expire_table(conn, run, transactions)


def expire_envelope_items(conn: Connection, run: Expiry) -> int:
    return _expire_table(conn, run, envelope_items)


def expire_attachments(conn: Connection, run: Expiry) -> int:
    return _expire_table(conn, run, attachments)


def _expire_table(conn: Connection, run: Expiry, table: Table) -> int:
    deleted = 0
    for project_id, cutoff in _cutoffs(conn, run.now, run.days):
        ids = select(table.c.id).where(table.c.project_id == project_id, table.c.received < cutoff)
        deleted += conn.execute(delete(table).where(table.c.id.in_(ids.limit(run.batch_size)))).rowcount
    return deleted
