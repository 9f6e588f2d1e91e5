"""Alerting tables. Only code in `watchkeeper.alerting` touches them."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Double, ForeignKey, Index, Integer, String, Table, Text

from watchkeeper.store.schema import RowId, metadata

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    # "event" (a signal kind) or "threshold" (a per-minute count over a window).
    Column("kind", String(16), nullable=False),
    # JSON: the kind's settings, validated by alerting.rules.
    Column("spec", Text, nullable=False),
    Column("labels", Text, nullable=False),
    Column("annotations", Text, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default="1"),
    # "api", "default" (the default pack) or "file" (rules file: read-only over the API).
    Column("managed_by", String(16), nullable=False, server_default="api"),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
)

# Projects that got the default rule pack (once: deleting a default rule keeps it deleted).
alert_rule_packs = Table(
    "alert_rule_packs",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("applied_at", Double, nullable=False),
)

# Alerts from rules and from the Alertmanager API. Resolved = ends_at in the past; kept a while so
# the resolved notification can go out, then deleted.
alerts = Table(
    "alerts",
    metadata,
    Column("fingerprint", String(16), primary_key=True),
    Column("rule_id", Integer, ForeignKey("alert_rules.id", ondelete="CASCADE"), nullable=True, index=True),
    Column("project_id", Integer, nullable=True),
    Column("labels", Text, nullable=False),
    Column("annotations", Text, nullable=False),
    # "pending" (condition true, waiting out `for`) or "firing"; resolved is derived from ends_at.
    Column("state", String(16), nullable=False),
    Column("active_at", Double, nullable=False),
    Column("starts_at", Double, nullable=True),
    Column("ends_at", Double, nullable=True),
    # The last evaluation that found the condition true (for keep_firing_for).
    Column("last_true_at", Double, nullable=True),
    Column("value", Double, nullable=True),
    Column("generator_url", Text, nullable=True),
    # Indexed: a dispatch round reads the alerts changed since its last look (migration 0006).
    Column("updated_at", Double, nullable=False, index=True),
)
Index("ix_alerts_ends_at", alerts.c.ends_at)

silences = Table(
    "silences",
    metadata,
    Column("id", String(36), primary_key=True),
    # JSON list of Alertmanager matchers {name, value, isRegex, isEqual}.
    Column("matchers", Text, nullable=False),
    Column("starts_at", Double, nullable=False),
    Column("ends_at", Double, nullable=False, index=True),
    Column("created_by", String(200), nullable=False),
    Column("comment", Text, nullable=False),
    Column("updated_at", Double, nullable=False),
)

# What each integration of a receiver was last told about a group, like Alertmanager's nflog: a group
# is notified again only when this says something changed, so a restart does not repeat notifications.
notification_log = Table(
    "notification_log",
    metadata,
    Column("group_key", String(500), primary_key=True),
    Column("receiver", String(200), primary_key=True),
    Column("integration", String(64), primary_key=True),
    Column("firing", Text, nullable=False),
    Column("resolved", Text, nullable=False),
    Column("sent_at", Double, nullable=False),
)

# The durable outbox: written in the same transaction as the notification log, delivered by a worker.
notification_outbox = Table(
    "notification_outbox",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("receiver", String(200), nullable=False),
    Column("integration", String(64), nullable=False),
    Column("group_key", String(500), nullable=False),
    # JSON: the Alertmanager v4 webhook payload; each channel renders its message from it.
    Column("payload", Text, nullable=False),
    # "pending" until delivered ("sent") or given up ("failed").
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    # When to (re)try; a claimed row is pushed forward by the lease so a crashed sender's row comes back.
    Column("next_attempt_at", Double, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", Double, nullable=False),
    Column("sent_at", Double, nullable=True),
)
Index("ix_notification_outbox_status_next", notification_outbox.c.status, notification_outbox.c.next_attempt_at)

# Durable positions of consumers (the signal log cursor of the evaluator).
alerting_cursors = Table(
    "alerting_cursors",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", RowId, nullable=False),
)

# The receivers and the routing tree edited in the web UI and the REST API (alerting.routing_store); not
# read when `alerting.config_file` is set (the file is the configuration then).
notification_receivers = Table(
    "notification_receivers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    # JSON: the receiver's integrations as Alertmanager writes them ({"webhook_configs": [...]}), secrets
    # included (an admin's API shows them masked).
    Column("integrations", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
)

notification_routes = Table(
    "notification_routes",
    metadata,
    Column("id", Integer, primary_key=True),
    # None: the root route (exactly one).
    Column("parent_id", Integer, ForeignKey("notification_routes.id", ondelete="CASCADE"), nullable=True,
           index=True),
    # Order among siblings: the first matching child takes an alert.
    Column("position", Integer, nullable=False),
    # JSON: the route's own settings as Alertmanager writes them (receiver, matchers, group_by, continue, timers).
    Column("settings", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
)

# One row (id 1): bumped by every change of the two tables above, so every process sees that the
# configuration moved with one cheap read per round.
notification_config = Table(
    "notification_config",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", Double, nullable=False),
)

# On-call, escalation and incident tables (their own module), so load_all_tables() sees them.
from watchkeeper.alerting import incident_tables as _incident_tables  # noqa: E402, F401
