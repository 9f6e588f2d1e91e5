"""The durable signal log every domain writes to and the alert evaluator reads.

A signal is a fact worth alerting on ("issue.new", "issue.regression", "monitor.down"…). It is written
in the same transaction as the data that caused it, so an alert never fires for data that was lost and
never misses data that was kept. Rates ("events per minute") are not signals: they are read from each
domain's per-minute count tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Column, Connection, Double, Index, Integer, String, Table, Text, select

from watchkeeper.store.schema import RowId, metadata

signals = Table(
    "signals",
    metadata,
    Column("id", RowId, primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("project_id", Integer, nullable=True),
    Column("subject", String(200), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", Double, nullable=False),
)
Index("ix_signals_kind_id", signals.c.kind, signals.c.id)

# The catalogue: each domain registers the kinds it emits, with a one-line meaning.
CATALOGUE: dict[str, str] = {}


def register_signal(kind: str, meaning: str) -> str:
    """Declare a signal kind; returns the kind so modules can keep it as a constant.

    >>> register_signal("example.happened", "an example happened")
    'example.happened'
    """
    CATALOGUE[kind] = meaning
    return kind


@dataclass(frozen=True, slots=True)
class Signal:
    id: int
    kind: str
    project_id: int | None
    subject: str
    payload: dict[str, Any]
    created_at: float


def emit_signals(conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write signals inside the caller's transaction. Each row: kind, project_id, subject, payload, created_at."""
    batch = [
        {**row, "payload": orjson.dumps(row.get("payload") or {}).decode()}
        for row in rows
    ]
    for row in batch:
        if row["kind"] not in CATALOGUE:
            raise ValueError(f"signal kind {row['kind']!r} is not registered")
    if batch:
        conn.execute(signals.insert(), batch)


def read_signals(conn: Connection, *, after_id: int = 0, kinds: Iterable[str] | None = None,
                 limit: int = 1000) -> list[Signal]:
    """Signals newer than `after_id`, oldest first: how a consumer tails the log."""
    query = select(signals).where(signals.c.id > after_id).order_by(signals.c.id).limit(limit)
    if kinds is not None:
        query = query.where(signals.c.kind.in_(list(kinds)))
    return [
        Signal(r.id, r.kind, r.project_id, r.subject, orjson.loads(r.payload), r.created_at)
        for r in conn.execute(query)
    ]
