"""Tables of the auth domain: users, API tokens, projects and their DSN keys."""

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
