"""The few statements that SQLite and PostgreSQL spell differently (upserts, two-argument max/min)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
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


# Compiled SQL per (dialect, statement name, columns): text, bind names in order (None for a named
# paramstyle), and the values of the statement's own literals ("resolved" in `status == 'resolved'`).
_COMPILED: dict[tuple[str, str, tuple[str, ...]], tuple[str, list[str] | None, dict[str, Any]]] = {}


def execute_many(conn: Connection, name: str, build: Callable[[], Any], rows: Sequence[Mapping[str, Any]]) -> None:
    """Run the statement ``build()`` once per row, straight through the driver's executemany.

    For the hot statements of the writer. SQLAlchemy's own executemany processes every parameter of
    every row in Python, which cost about a third of the ingest writer's CPU; here the statement is
    compiled once per dialect and the rows go to the driver as they are. So the values must be what
    the driver takes as is (str, int, float, bytes, None): no type conversion happens. ``name``
    identifies the statement; ``build`` is called only on the first use.
    """
    if not rows:
        return
    columns = tuple(rows[0])
    key = (conn.dialect.name, name, columns)
    compiled = _COMPILED.get(key)
    if compiled is None:
        statement = build().compile(dialect=conn.dialect, column_keys=list(columns))
        order = list(statement.positiontup) if statement.positional and statement.positiontup else None
        literals = {name: value for name, value in statement.params.items() if name not in columns}
        compiled = _COMPILED[key] = (str(statement), order, literals)
    sql, order, literals = compiled
    if order is None:
        conn.exec_driver_sql(sql, [{**literals, **row} for row in rows] if literals else list(rows))
    elif literals:
        conn.exec_driver_sql(sql, [tuple(row[n] if n in row else literals[n] for n in order) for row in rows])
    elif len(order) > 1:
        conn.exec_driver_sql(sql, list(map(itemgetter(*order), rows)))
    else:
        conn.exec_driver_sql(sql, [(row[order[0]],) for row in rows])
