"""On-call, escalation and incident tables. Only code in `watchkeeper.alerting` touches them.

Imported at the end of `alerting.tables`, so `load_all_tables()` sees them.
"""

from __future__ import annotations

from sqlalchemy import Column, Double, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint

from watchkeeper.store.schema import RowId, metadata

oncall_schedules = Table(
    "oncall_schedules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    # IANA zone the hand-off times are in (e.g. Europe/Berlin): a 09:00 hand-off stays 09:00 across DST.
    Column("time_zone", String(64), nullable=False),
    # JSON list of layers {rotation, length_days, handoff, start_date, users}; see alerting.oncall.
    Column("layers", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
)

oncall_overrides = Table(
    "oncall_overrides",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("schedule_id", Integer, ForeignKey("oncall_schedules.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("starts_at", Double, nullable=False),
    Column("ends_at", Double, nullable=False),
    Column("created_at", Double, nullable=False),
)

escalation_policies = Table(
    "escalation_policies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    # The team that owns the policy: its members read and change it. NULL = an administrators' policy.
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="CASCADE"), nullable=True, index=True),
    # The policy of a project's incidents; NULL = the policy of incidents no project's policy covers
    # (of the team's projects; of every project when the policy has no team).
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=True, unique=True),
    # JSON list of steps {targets: [{kind: user|schedule|receiver, id|name}], minutes}.
    Column("steps", Text, nullable=False),
    # How many times the whole policy runs again when nobody acknowledges (0 = once).
    Column("repeat", Integer, nullable=False, server_default="0"),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    UniqueConstraint("team_id", "name"),
)

# Which alert severities declare incidents, per project (absent: the `alerting.incident_severities` setting).
incident_settings = Table(
    "alert_incident_settings",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("severities", Text, nullable=False),  # JSON list, [] = never declare automatically
)

incidents = Table(
    "alert_incidents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="SET NULL"), nullable=True, index=True),
    Column("title", String(500), nullable=False),
    Column("severity", String(16), nullable=False),
    # triggered → acknowledged → investigating → mitigated → resolved
    Column("state", String(16), nullable=False),
    # The alert group (routing group key) that opened it: alerts of the same group join it while open.
    Column("group_key", String(500), nullable=True, index=True),
    Column("created_by", Integer, ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("impact_started_at", Double, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("acknowledged_at", Double, nullable=True),
    Column("investigating_at", Double, nullable=True),
    Column("mitigated_at", Double, nullable=True),
    Column("resolved_at", Double, nullable=True),
    Column("postmortem", Text, nullable=True),
    # Escalation, durable: the next step runs at next_escalation_at (NULL = nothing more to do).
    Column("escalation_policy_id", Integer, ForeignKey("escalation_policies.id", ondelete="SET NULL"),
           nullable=True),
    Column("escalation_step", Integer, nullable=False, server_default="0"),
    Column("escalation_round", Integer, nullable=False, server_default="0"),
    Column("next_escalation_at", Double, nullable=True, index=True),
    Column("updated_at", Double, nullable=False),
)

# Every firing of an alert (by fingerprint and start), all severities: the incident it joined (if any),
# and the alert volume of the metrics.
alert_occurrences = Table(
    "alert_occurrences",
    metadata,
    Column("fingerprint", String(16), primary_key=True),
    Column("starts_at", Double, primary_key=True),
    Column("project_id", Integer, nullable=True),
    Column("severity", String(16), nullable=False),
    Column("name", String(500), nullable=False),
    Column("incident_id", Integer, ForeignKey("alert_incidents.id", ondelete="SET NULL"), nullable=True, index=True),
    Column("resolved_at", Double, nullable=True),
    # The page of what the alert is about (alerting.links.cause_of): a path of ours or an outside URL.
    Column("source", String(2000), nullable=True),
)
Index("ix_alert_occurrences_open", alert_occurrences.c.resolved_at)

# The timeline: alert fired/resolved, status changes, notes, notifications and escalation steps.
incident_events = Table(
    "alert_incident_events",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("incident_id", Integer, ForeignKey("alert_incidents.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("at", Double, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("actor_user_id", Integer, ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("text", Text, nullable=False),
)

# Signed action links are single use: a link's nonce is recorded here when it is used.
incident_links = Table(
    "alert_incident_links",
    metadata,
    Column("nonce", String(32), primary_key=True),
    Column("incident_id", Integer, ForeignKey("alert_incidents.id", ondelete="CASCADE"), nullable=False),
    Column("action", String(16), nullable=False),
    Column("used_at", Double, nullable=False),
)

# Server secrets made on first use when the settings give none (the link signing key).
alerting_secrets = Table(
    "alerting_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(128), nullable=False),
)
