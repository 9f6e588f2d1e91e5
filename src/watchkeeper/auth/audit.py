"""Audit log: who changed what (projects, keys, teams, members, users, tokens, settings), and when.

Each record is written in the same transaction as the change it describes, so the log cannot claim a
change that was rolled back nor miss one that was committed. Details never hold secrets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection, insert, select

from watchkeeper.auth.tables import audit_log, users

T = TypeVar("T")


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


def audited(
    change: Callable[[Connection], T],
    actor_user_id: int | None,
    action: str,
    target_type: str,
    *,
    now: float,
    target: Callable[[T], int | str | None] | int | str | None = None,
    done: Callable[[T], bool] | None = None,
    **details: Any,
) -> Callable[[Connection], T]:
    """``change`` and its audit entry in one transaction (for the writer), the target taken from the
    change's result when it is a function (the id of what was created). ``done`` tells from the result
    whether the change happened (a change that reports a problem instead is not logged).

    >>> # await write(request, audited(lambda conn: create_rule(conn, …), principal.user_id, "rule.create",
    >>> #                              "rule", now=now, target=lambda rule: rule.id, name=body.name))
    """

    def run(conn: Connection) -> T:
        result = change(conn)
        if done is not None and not done(result):
            return result
        target_id = target(result) if callable(target) else target
        record(conn, actor_user_id=actor_user_id, action=action, target_type=target_type, target_id=target_id,
               details=details, now=now)
        return result

    return run


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
