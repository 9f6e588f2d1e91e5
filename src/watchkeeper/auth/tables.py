"""Tables of the auth domain: users, API tokens, projects and their DSN keys, teams, sessions, audit log."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Double, ForeignKey, Index, Integer, String, Table, Text

from watchkeeper.store.schema import RowId, metadata

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=True),
    Column("role", String(16), nullable=False, server_default="member"),
    Column("is_active", Boolean, nullable=False, server_default="1"),
    Column("created_at", Double, nullable=False),
    # IANA zone name (Europe/Paris) the pages show times in; None = the browser's.
    Column("timezone", String(64), nullable=True),
    # A generated (one-time) password works for one login only: the pages then ask for a new one and
    # nothing else opens until it is set (migration 0011_firsthour).
    Column("must_change_password", Boolean, nullable=False, server_default="0"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    # Only a hash is kept: a leaked database does not leak usable tokens.
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("read_only", Boolean, nullable=False, server_default="0"),
    Column("created_at", Double, nullable=False),
    Column("last_used_at", Double, nullable=True),
    Column("revoked_at", Double, nullable=True),
    # JSON list of project ids the token is limited to; None = every project its owner can see.
    Column("project_scope", Text, nullable=True),
)

projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("slug", String(64), nullable=False, unique=True),
    Column("platform", String(64), nullable=True),
    Column("retention_days", Integer, nullable=True),
    Column("events_per_minute", Integer, nullable=True),
    Column("events_per_hour", Integer, nullable=True),
    # JSON text: scrubbing rules and other per-project options validated by their owners.
    Column("settings", Text, nullable=False, server_default="{}"),
    Column("created_at", Double, nullable=False),
)

project_keys = Table(
    "project_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("public_key", String(32), nullable=False, unique=True),
    Column("label", String(200), nullable=False, server_default="Default"),
    Column("is_active", Boolean, nullable=False, server_default="1"),
    Column("events_per_minute", Integer, nullable=True),
    Column("events_per_hour", Integer, nullable=True),
    Column("created_at", Double, nullable=False),
    Column("rotated_from", RowId, nullable=True),
)

Index("ix_project_keys_project_active", project_keys.c.project_id, project_keys.c.is_active)

# --- accounts and access (migration 0002) ---

teams = Table(
    "teams",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("created_at", Double, nullable=False),
)

team_members = Table(
    "team_members",
    metadata,
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
)

# Many-to-many: a project shared by two teams is visible to both.
project_teams = Table(
    "project_teams",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True, index=True),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    # SHA-256 of the cookie value: a leaked database does not leak usable sessions.
    Column("id_hash", String(64), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("last_seen_at", Double, nullable=False),
    Column("user_agent", String(300), nullable=True),
    Column("ip", String(45), nullable=True),
)

# Failed logins per account ("email:…") and per client address ("ip:…").
login_throttle = Table(
    "login_throttle",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_start", Double, nullable=False),
    Column("locked_until", Double, nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("at", Double, nullable=False),
    Column("actor_user_id", Integer, ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("action", String(64), nullable=False),
    Column("target_type", String(32), nullable=False),
    Column("target_id", String(64), nullable=True),
    # JSON text: what changed, never secrets.
    Column("details", Text, nullable=False, server_default="{}"),
)
