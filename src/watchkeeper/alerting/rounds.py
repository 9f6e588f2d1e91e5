"""The write half of an evaluation round, and the signal cursor it moves.

`evaluator.read_round` works a round out on a reader connection into a `RoundPlan`; `apply_round`
writes it in the caller's (writer) transaction after `conflict` found that nothing it read moved
since: the cursor is where the round read it and every alert it changes still has the version
(`updated_at`) it read. So a crash between read and write, or a concurrent round, neither loses nor
double-counts a signal: the losing plan writes nothing and the next round starts from what is stored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import Connection, func, select

from watchkeeper.alerting import alerts as A
from watchkeeper.alerting.tables import alerting_cursors
from watchkeeper.lib.signals import signals as signals_table
from watchkeeper.store.dialect import upsert

log = logging.getLogger(__name__)
CURSOR = "evaluator.signals"


@dataclass
class RoundReport:
    rules: int = 0
    signals: int = 0
    new: int = 0
    changed: int = 0
    forgotten: int = 0
    packs_applied: int = 0
    states: dict[str, int] = field(default_factory=dict)


@dataclass
class RoundPlan:
    """What a round decided, to be written by `apply_round` if nothing it read has moved since."""

    now: float
    thresholds: bool
    report: RoundReport
    cursor_from: int
    cursor_to: int | None
    new: list[A.Alert]
    changed: list[A.Alert]
    gone: set[str]
    # The stored version (updated_at) of every alert in `changed` and `gone`, as read.
    versions: dict[str, float]
    forget_before: float | None

    @property
    def writes(self) -> bool:
        return bool(self.new or self.changed or self.gone or self.cursor_to is not None
                    or self.forget_before is not None)


def has_new_signals(conn: Connection) -> bool:
    """Whether signals arrived since the last round (one indexed lookup: cheap to ask every second)."""
    newest = conn.execute(select(func.max(signals_table.c.id))).scalar()
    return newest is not None and int(newest) > read_cursor(conn)


def read_cursor(conn: Connection) -> int:
    found = conn.execute(select(alerting_cursors.c.position).where(alerting_cursors.c.name == CURSOR)).scalar()
    return int(found or 0)


def _write_cursor(conn: Connection, position: int) -> None:
    statement = upsert(conn, alerting_cursors).values(name=CURSOR, position=position)
    conn.execute(statement.on_conflict_do_update(index_elements=["name"], set_={"position": position}))


class RoundConflict(Exception):
    """What a round read moved before it could write (another round ran): nothing was written."""


def conflict(conn: Connection, plan: RoundPlan) -> str | None:
    """Why `plan` may not be written (the cursor or an alert it changes moved since it was read), or None.
    On PostgreSQL the cursor row stays locked to the end of the transaction, so rounds of several
    processes take turns."""
    query = select(alerting_cursors.c.position).where(alerting_cursors.c.name == CURSOR)
    position = int(conn.execute(query.with_for_update()).scalar() or 0)
    if position != plan.cursor_from:
        return f"the signal cursor moved from {plan.cursor_from} to {position}"
    touched = [a.fingerprint for a in plan.changed] + [a.fingerprint for a in plan.new] + sorted(plan.gone)
    stored = A.versions(conn, touched)
    for fingerprint in touched:
        if stored.get(fingerprint) != plan.versions.get(fingerprint):
            return f"alert {fingerprint} changed since it was read"
    return None


def apply_round(conn: Connection, plan: RoundPlan) -> RoundReport | None:
    """Write a round's changes in the caller's (writer) transaction, after checking that the cursor and
    every alert it changes are as the round read them; None (and nothing written) when they are not.

    >>> # report = await writer.run(call_each, lambda conn: apply_round(conn, plan))
    """
    reason = conflict(conn, plan)
    if reason is not None:
        log.info("evaluation round not written: %s", reason)
        return None
    A.save_alerts(conn, plan.new, plan.changed)
    A.delete_alerts(conn, plan.gone)
    if plan.forget_before is not None:
        plan.report.forgotten = A.forget_resolved(conn, before=plan.forget_before)
    if plan.cursor_to is not None:
        _write_cursor(conn, plan.cursor_to)
    return plan.report
