"""Audit log: who changed what (projects, keys, teams, members, users, tokens, settings), and when.

Each record is written in the same transaction as the change it describes, so the log cannot claim a
change that was rolled back nor miss one that was committed. Details never hold secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select

from watchkeeper.auth.tables import audit_log, users


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: float
    actor_user_id: int | None
    actor_email: str | None
    action: str
    target_type: str
    target_id: str | None
    details: dict[str, Any]


def record(
    conn: Connection,
    *,
    actor_user_id: int | None,
    action: str,
    target_type: str,
    target_id: int | str | None,
    details: dict[str, Any],
    now: float,
) -> None:
    """Add one entry; `actor_user_id` None means the command line or the system.

    >>> # record(conn, actor_user_id=1, action="project.create", target_type="project", target_id=7,
    >>> #        details={"name": "Shop"}, now=clock.now())
    """
    conn.execute(
        insert(audit_log).values(
            at=now,
            actor_user_id=actor_user_id,
            action=action[:64],
            target_type=target_type[:32],
            target_id=None if target_id is None else str(target_id)[:64],
            details=orjson.dumps(details, default=str).decode(),
        )
    )


def list_entries(conn: Connection, *, limit: int, before_id: int | None = None) -> tuple[list[AuditEntry], int | None]:
    """Newest first; returns the entries and the id to continue before (None at the end)."""
    query = (
        select(audit_log, users.c.email)
        .outerjoin(users, users.c.id == audit_log.c.actor_user_id)
        .order_by(audit_log.c.id.desc())
        .limit(limit + 1)
    )
    if before_id is not None:
        query = query.where(audit_log.c.id < before_id)
    rows = conn.execute(query).all()
    entries = [
        AuditEntry(
            r.id, r.at, r.actor_user_id, r.email, r.action, r.target_type, r.target_id, orjson.loads(r.details)
        )
        for r in rows[:limit]
    ]
    return entries, (entries[-1].id if len(rows) > limit else None)
