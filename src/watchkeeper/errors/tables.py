"""Tables of the errors domain: issues, events and what the ingest keeps for later domains."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from watchkeeper.store.schema import RowId, metadata

issues = Table(
    "issues",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("hash", String(32), nullable=False),
    # The grouping configuration that made the hash: a later algorithm keeps using it for old issues.
    Column("grouping_config", String(64), nullable=False),
    Column("title", Text, nullable=False),
    Column("culprit", Text, nullable=False, server_default=""),
    Column("type", String(16), nullable=False),
    Column("level", String(16), nullable=False),
    Column("platform", String(64), nullable=False, server_default="other"),
    Column("status", String(16), nullable=False, server_default="unresolved"),
    Column("substatus", String(16), nullable=False, server_default="new"),
    Column("status_details", Text, nullable=False, server_default="{}"),
    Column("resolved_at", Double, nullable=True),
    Column("assignee_id", Integer, ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("first_seen", Double, nullable=False),
    Column("last_seen", Double, nullable=False),
    Column("times_seen", Integer, nullable=False, server_default="0"),
    Column("users_seen", Integer, nullable=False, server_default="0"),
    Column("first_release", String(200), nullable=True),
    Column("last_release", String(200), nullable=True),
    Column("metadata", Text, nullable=False, server_default="{}"),
    UniqueConstraint("project_id", "hash"),
)
Index("ix_issues_project_last_seen", issues.c.project_id, issues.c.last_seen)
Index("ix_issues_project_status_last_seen", issues.c.project_id, issues.c.status, issues.c.last_seen)
Index("ix_issues_project_first_seen", issues.c.project_id, issues.c.first_seen)
Index("ix_issues_project_times_seen", issues.c.project_id, issues.c.times_seen)
Index("ix_issues_project_users_seen", issues.c.project_id, issues.c.users_seen)

events = Table(
    "events",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("issue_id", RowId, ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", String(32), nullable=False),
    Column("timestamp", Double, nullable=False),
    Column("received", Double, nullable=False),
    Column("level", String(16), nullable=False),
    Column("environment", String(64), nullable=True),
    Column("release", String(200), nullable=True),
    Column("user_key", String(200), nullable=True),
    Column("title", Text, nullable=False),
    # The normalised, scrubbed event as zstd-compressed JSON.
    Column("data", LargeBinary, nullable=False),
    UniqueConstraint("project_id", "event_id"),
)
Index("ix_events_issue_timestamp", events.c.issue_id, events.c.timestamp)
Index("ix_events_project_received", events.c.project_id, events.c.received)

issue_tags = Table(
    "issue_tags",
    metadata,
    Column("issue_id", RowId, ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("value", String(200), primary_key=True),
    Column("times_seen", Integer, nullable=False),
    Column("first_seen", Double, nullable=False),
    Column("last_seen", Double, nullable=False),
    # Clustered by its key on SQLite: an issue's tags share pages, which every ingest batch updates
    # (migration 0010 says what it saved).
    sqlite_with_rowid=False,
)

# Events per issue per minute: sparklines, occurrence charts and the "events per issue" signal.
issue_minute_counts = Table(
    "issue_minute_counts",
    metadata,
    Column("issue_id", RowId, ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("minute", Integer, primary_key=True),
    Column("count", Integer, nullable=False),
)

# The same per hour: charts over days read 24 rows a day instead of 1,440 (a busy issue's 30-day
# sparkline was 43,200 minute rows). Written with the minute counts, in the same transaction.
issue_hour_counts = Table(
    "issue_hour_counts",
    metadata,
    Column("issue_id", RowId, ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("hour", Integer, primary_key=True),
    Column("count", Integer, nullable=False),
)

# Accepted and rejected items per project, category and minute: the "events per project" signal.
project_minute_counts = Table(
    "project_minute_counts",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("minute", Integer, primary_key=True),
    Column("category", String(32), primary_key=True),
    Column("outcome", String(32), primary_key=True),
    Column("count", Integer, nullable=False),
)

transactions = Table(
    "transactions",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", String(32), nullable=False),
    Column("trace_id", String(32), nullable=True),
    Column("name", Text, nullable=False),
    Column("op", String(200), nullable=True),
    Column("status", String(64), nullable=True),
    Column("start_timestamp", Double, nullable=False),
    Column("timestamp", Double, nullable=False),
    Column("duration_ms", Double, nullable=False),
    Column("environment", String(64), nullable=True),
    Column("release", String(200), nullable=True),
    Column("received", Double, nullable=False),
    Column("data", LargeBinary, nullable=False),
    UniqueConstraint("project_id", "event_id"),
)
Index("ix_transactions_project_timestamp", transactions.c.project_id, transactions.c.timestamp)

# Sessions, client reports, check-ins and logs, kept as sent (scrubbed) for the domains that use them.
envelope_items = Table(
    "envelope_items",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("type", String(32), nullable=False),
    Column("event_id", String(32), nullable=True),
    Column("received", Double, nullable=False),
    Column("data", LargeBinary, nullable=False),
)
Index(
    "ix_envelope_items_project_type_received",
    envelope_items.c.project_id,
    envelope_items.c.type,
    envelope_items.c.received,
)

attachments = Table(
    "attachments",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", String(32), nullable=True),
    Column("filename", String(255), nullable=False),
    Column("content_type", String(255), nullable=True),
    Column("attachment_type", String(64), nullable=True),
    Column("size", Integer, nullable=False),
    Column("received", Double, nullable=False),
    Column("data", LargeBinary, nullable=False),
)
Index("ix_attachments_project_event", attachments.c.project_id, attachments.c.event_id)
