"""Uptime tables: monitors with their persisted state, results, rollups, outages, maintenance windows,
heartbeat pings, status pages and incidents. Only code in `watchkeeper.uptime` touches them."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
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

monitors = Table(
    "monitors",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False, index=True),
    # The heartbeat ping URL /ping/<uuid> (only heartbeats take pings; the others keep it for a type change).
    Column("uuid", String(36), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("slug", String(64), nullable=True),
    Column("type", String(16), nullable=False),
    # JSON: the type's settings (url, headers, conditions…), validated by uptime.monitors.
    Column("config", Text, nullable=False),
    Column("interval_seconds", Integer, nullable=False),
    Column("timeout_seconds", Double, nullable=False),
    Column("failures_to_down", Integer, nullable=False),
    Column("successes_to_up", Integer, nullable=False),
    Column("sla_target", Double, nullable=True),
    Column("paused", Boolean, nullable=False, server_default="0"),
    # "config" when synced from the monitors file: read-only over the API.
    Column("managed_by", String(16), nullable=True),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    # State, persisted so a restart creates no false transitions.
    Column("status", String(16), nullable=False, server_default="new"),
    Column("status_changed_at", Double, nullable=True),
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    Column("consecutive_successes", Integer, nullable=False, server_default="0"),
    # When the current run of failed checks began: an outage starts there, not when it was confirmed.
    Column("failing_since", Double, nullable=True),
    Column("degraded", Boolean, nullable=False, server_default="0"),
    Column("last_check_at", Double, nullable=True),
    Column("last_error", Text, nullable=True),
    # The smallest "certificate expires in N days" threshold already signalled (reset on renewal).
    Column("cert_warned_days", Integer, nullable=True),
    Column("cert_expires_at", Double, nullable=True),
    # Heartbeats: when the next ping is due at the latest (grace included), and the open run.
    Column("heartbeat_deadline", Double, nullable=True),
    Column("run_started_at", Double, nullable=True),
    # The first check result or ping: uptime is counted from here (docs/uptime.md); NULL = no data yet.
    Column("first_result_at", Double, nullable=True),
    UniqueConstraint("project_id", "slug"),
)
Index("ix_monitors_type_status_deadline", monitors.c.type, monitors.c.status, monitors.c.heartbeat_deadline)
# The monitors list page: counts by status and filters by status or type within a project.
Index("ix_monitors_project_status", monitors.c.project_id, monitors.c.status)
Index("ix_monitors_project_type", monitors.c.project_id, monitors.c.type)

check_results = Table(
    "check_results",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("monitor_id", Integer, ForeignKey("monitors.id", ondelete="CASCADE"), nullable=False),
    Column("at", Double, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("response_ms", Double, nullable=True),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("in_maintenance", Boolean, nullable=False, server_default="0"),
)
Index("ix_check_results_monitor_at", check_results.c.monitor_id, check_results.c.at)
Index("ix_check_results_at", check_results.c.at)

# Per minute (60), hour (3600) and day (86400). Hour and day rows carry a DDSketch of response times.
monitor_rollups = Table(
    "monitor_rollups",
    metadata,
    Column("monitor_id", Integer, ForeignKey("monitors.id", ondelete="CASCADE"), primary_key=True),
    Column("resolution", Integer, primary_key=True),
    Column("bucket", Integer, primary_key=True),
    Column("checks", Integer, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("maintenance_checks", Integer, nullable=False),
    Column("response_ms_sum", Double, nullable=False),
    Column("response_count", Integer, nullable=False),
    Column("sketch", LargeBinary, nullable=True),
)
Index("ix_monitor_rollups_resolution_bucket", monitor_rollups.c.resolution, monitor_rollups.c.bucket)

outages = Table(
    "outages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("monitor_id", Integer, ForeignKey("monitors.id", ondelete="CASCADE"), nullable=False),
    Column("started_at", Double, nullable=False),
    Column("ended_at", Double, nullable=True),
    Column("first_error", Text, nullable=True),
)
Index("ix_outages_monitor_started", outages.c.monitor_id, outages.c.started_at)

# When a monitor was paused: left out of its uptime and SLA (docs/uptime.md). ended_at NULL = still paused.
monitor_pauses = Table(
    "monitor_pauses",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("monitor_id", Integer, ForeignKey("monitors.id", ondelete="CASCADE"), nullable=False),
    Column("started_at", Double, nullable=False),
    Column("ended_at", Double, nullable=True),
)
Index("ix_monitor_pauses_monitor_started", monitor_pauses.c.monitor_id, monitor_pauses.c.started_at)

maintenance_windows = Table(
    "maintenance_windows",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("title", String(200), nullable=False),
    # JSON list of monitor ids; NULL = every monitor of the project.
    Column("monitor_ids", Text, nullable=True),
    # One-off: starts_at/ends_at. Recurring: cron + timezone + duration_seconds.
    Column("starts_at", Double, nullable=True),
    Column("ends_at", Double, nullable=True),
    Column("cron", String(100), nullable=True),
    Column("timezone", String(64), nullable=True),
    Column("duration_seconds", Integer, nullable=True),
    Column("created_at", Double, nullable=False),
)

heartbeat_pings = Table(
    "heartbeat_pings",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("monitor_id", Integer, ForeignKey("monitors.id", ondelete="CASCADE"), nullable=False),
    Column("at", Double, nullable=False),
    # success, start, fail (exit status != 0 is a fail)
    Column("kind", String(16), nullable=False),
    Column("exit_status", Integer, nullable=True),
    Column("duration_seconds", Double, nullable=True),
    Column("source", String(16), nullable=False),
    Column("body", Text, nullable=True),
)
Index("ix_heartbeat_pings_monitor_at", heartbeat_pings.c.monitor_id, heartbeat_pings.c.at)

# The slug form /ping/<ping-key>/<slug>: one key per project.
ping_keys = Table(
    "uptime_ping_keys",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("ping_key", String(32), nullable=False, unique=True),
)

# Positions of background readers of other domains' logs (the Sentry check-in reader).
cursors = Table(
    "uptime_cursors",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", RowId, nullable=False),
)

status_pages = Table(
    "status_pages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("slug", String(64), nullable=False, unique=True),
    Column("title", String(200), nullable=False),
    Column("logo_url", String(500), nullable=True),
    Column("description", Text, nullable=True),
    Column("created_at", Double, nullable=False),
    # Title and first message of incidents opened automatically; {component} is replaced, NULL = the
    # neutral default (uptime.incidents). Internal details (errors, deadlines) never go here.
    Column("incident_title", String(200), nullable=True),
    Column("incident_message", Text, nullable=True),
)

status_components = Table(
    "status_components",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("page_id", Integer, ForeignKey("status_pages.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("group_name", String(200), nullable=True),
    Column("position", Integer, nullable=False, server_default="0"),
    # JSON list of monitor ids: the component is as bad as its worst monitor.
    Column("monitor_ids", Text, nullable=False),
    # Percent, e.g. 99.9: compliance per calendar month and error budget (None: no SLA).
    Column("sla_target", Double, nullable=True),
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("page_id", Integer, ForeignKey("status_pages.id", ondelete="CASCADE"), nullable=False),
    Column("title", String(200), nullable=False),
    # investigating, identified, monitoring, resolved
    Column("status", String(16), nullable=False),
    # Opened automatically from this outage (and resolved when it ends); NULL = posted by a person.
    Column("outage_id", Integer, ForeignKey("outages.id", ondelete="SET NULL"), nullable=True),
    Column("started_at", Double, nullable=False),
    Column("resolved_at", Double, nullable=True),
)
Index("ix_incidents_page_started", incidents.c.page_id, incidents.c.started_at)

incident_updates = Table(
    "incident_updates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("incident_id", Integer, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("at", Double, nullable=False),
    Column("status", String(16), nullable=False),
    Column("message", Text, nullable=False),
)
