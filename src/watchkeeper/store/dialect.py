"""The few statements that SQLite and PostgreSQL spell differently (upserts, two-argument max/min)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement


def upsert(conn: Connection, table: Table) -> Any:
    """An INSERT that supports `.on_conflict_do_nothing()` / `.on_conflict_do_update()` on either database."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def greatest(conn: Connection, a: Any, b: Any) -> ColumnElement[Any]:
    return func.greatest(a, b) if conn.dialect.name == "postgresql" else func.max(a, b)


def least(conn: Connection, a: Any, b: Any) -> ColumnElement[Any]:
    return func.least(a, b) if conn.dialect.name == "postgresql" else func.min(a, b)
