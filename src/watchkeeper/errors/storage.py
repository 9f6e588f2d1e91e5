"""Writing accepted envelopes: events into issues, counters, tags, signals — one transaction per batch.

Runs only on the writer thread (see store/writer.py), so issue rows are never updated concurrently
within a process; across processes the unique (project_id, hash) key and upserts keep it correct.
"""

from __future__ import annotations

import pickle
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, case, func, select, update

from watchkeeper.errors.records import EnvelopeRecords, EventRecord
from watchkeeper.errors.tables import (
    attachments,
    envelope_items,
    events,
    issue_hour_counts,
    issue_minute_counts,
    issue_tags,
    issues,
    project_minute_counts,
    transactions,
)
from watchkeeper.lib.signals import emit_signals, register_signal
from watchkeeper.store.dialect import execute_many, greatest, least, upsert

ISSUE_NEW = register_signal("issue.new", "an event created a new issue")
ISSUE_REGRESSION = register_signal("issue.regression", "an event arrived for a resolved issue")
ISSUE_UNIGNORED = register_signal("issue.unignored", "an ignored issue passed its ignore condition")

_CHUNK = 400  # bound the number of SQL parameters per IN (...) list

# Built statements per (dialect, name). Building SQLAlchemy constructs for every batch cost ~8 % of
# ingest CPU; the statements are the same every time, only their parameters change.
_STATEMENTS: dict[tuple[str, str], Any] = {}


def _statement(conn: Connection, name: str, build: Callable[[], Any]) -> Any:
    key = (conn.dialect.name, name)
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = _STATEMENTS[key] = build()
    return stmt


@dataclass(slots=True)
class _IssueState:
    id: int
    status: str
    substatus: str
    details: dict[str, Any]
    times_seen: int
    new: bool = False
    batch: list[EventRecord] = field(default_factory=list)


def save_envelopes(conn: Connection, batch: Sequence[EnvelopeRecords]) -> list[None]:
    """Batch function for the writer: store every record of every envelope in the caller's transaction."""
    all_events = [event for envelope in batch for event in envelope.events]
    if all_events:
        _save_events(conn, all_events)
    rows = [
        {
            "project_id": t.project_id, "event_id": t.event_id, "trace_id": t.trace_id, "name": t.name,
            "op": t.op, "status": t.status, "start_timestamp": t.start_timestamp, "timestamp": t.timestamp,
            "duration_ms": max(0.0, (t.timestamp - t.start_timestamp) * 1000.0),
            "environment": t.environment, "release": t.release, "received": t.received, "data": t.data,
        }
        for envelope in batch for t in envelope.transactions
    ]
    if rows:
        conn.execute(_statement(conn, "transactions", lambda: upsert(conn, transactions).on_conflict_do_nothing()),
                     rows)
    rows = [
        {"project_id": i.project_id, "type": i.type, "event_id": i.event_id, "received": i.received,
         "data": i.data}
        for envelope in batch for i in envelope.items
    ]
    if rows:
        conn.execute(envelope_items.insert(), rows)
    rows = [
        {"project_id": a.project_id, "event_id": a.event_id, "filename": a.filename,
         "content_type": a.content_type, "attachment_type": a.attachment_type, "size": len(a.data),
         "received": a.received, "data": a.data}
        for envelope in batch for a in envelope.attachments
    ]
    if rows:
        conn.execute(attachments.insert(), rows)
    _count_outcomes(conn, batch)
    return [None] * len(batch)


def _count_outcomes(conn: Connection, batch: Sequence[EnvelopeRecords]) -> None:
    counts: dict[tuple[int, int, str, str], int] = defaultdict(int)
    for envelope in batch:
        minute = int(envelope.received // 60)
        for (category, outcome), n in envelope.outcomes.items():
            counts[(envelope.project_id, minute, category, outcome)] += n
    if not counts:
        return
    def build() -> Any:
        stmt = upsert(conn, project_minute_counts)
        return stmt.on_conflict_do_update(
            index_elements=["project_id", "minute", "category", "outcome"],
            set_={"count": project_minute_counts.c.count + stmt.excluded.count},
        )

    execute_many(conn, "project_minute_counts", build, [
        {"project_id": p, "minute": m, "category": c, "outcome": o, "count": n}
        for (p, m, c, o), n in sorted(counts.items())
    ])


def _load_issues(conn: Connection, project_id: int, hashes: list[str]) -> dict[str, _IssueState]:
    found: dict[str, _IssueState] = {}
    query = _statement(conn, "load_issues", lambda: select(
        issues.c.id, issues.c.hash, issues.c.status, issues.c.substatus, issues.c.status_details, issues.c.times_seen
    ).where(issues.c.project_id == bindparam("project_id"), issues.c.hash.in_(bindparam("hashes", expanding=True))))
    for start in range(0, len(hashes), _CHUNK):
        rows = conn.execute(query, {"project_id": project_id, "hashes": hashes[start:start + _CHUNK]})
        for r in rows:
            found[r.hash] = _IssueState(r.id, r.status, r.substatus, orjson.loads(r.status_details),
                                        r.times_seen)
    return found


def _create_issues(conn: Connection, project_id: int, groups: dict[str, list[EventRecord]],
                   hashes: list[str]) -> dict[str, _IssueState]:
    rows = []
    for h in hashes:
        first = min(groups[h], key=lambda e: e.timestamp)
        rows.append({
            "project_id": project_id, "hash": h, "grouping_config": first.grouping_config,
            "title": first.title, "culprit": first.culprit, "type": first.type, "level": first.level,
            "platform": first.platform, "status": "unresolved", "substatus": "new", "status_details": "{}",
            "first_seen": first.timestamp, "last_seen": first.timestamp, "times_seen": 0, "users_seen": 0,
            "first_release": first.release, "last_release": first.release,
            "metadata": orjson.dumps(first.metadata).decode(),
        })
    execute_many(conn, "new_issues", lambda: upsert(conn, issues).on_conflict_do_nothing(
        index_elements=["project_id", "hash"]), rows)
    states = _load_issues(conn, project_id, hashes)
    for state in states.values():
        # Issues are created and counted in the same transaction: only one made just now has no events.
        state.new = state.times_seen == 0
    return states


def _next_status(state: _IssueState, batch: list[EventRecord], now: float) -> str | None:
    """Apply the issue's status rules to newly arrived events; returns the signal to emit, if any."""
    details = state.details
    if state.status == "resolved":
        pinned = details.get("in_release")
        if pinned is not None and all(e.release in (None, pinned) for e in batch):
            return None  # resolved in the next release: events of the old release don't regress it
        state.status, state.substatus, state.details = "unresolved", "regressed", {}
        return ISSUE_REGRESSION
    if state.status == "ignored":
        until = details.get("ignore_until")
        count = details.get("ignore_count")
        baseline = details.get("ignore_baseline", 0)
        if (until is not None and now >= until) or (
            count is not None and state.times_seen + len(batch) - baseline >= count
        ):
            state.status, state.substatus, state.details = "unresolved", "escalating", {}
            return ISSUE_UNIGNORED
    return None


def _save_events(conn: Connection, records: list[EventRecord]) -> None:
    # SDK retries resend the same event_id: keep the first, count it once.
    unique: dict[tuple[int, str], EventRecord] = {}
    for record in records:
        unique.setdefault((record.project_id, record.event_id), record)
    by_project: dict[int, dict[str, list[EventRecord]]] = defaultdict(lambda: defaultdict(list))
    for record in unique.values():
        by_project[record.project_id][record.hash].append(record)

    states: dict[tuple[int, str], _IssueState] = {}
    for project_id, groups in by_project.items():
        hashes = sorted(groups)
        known = _load_issues(conn, project_id, hashes)
        missing = [h for h in hashes if h not in known]
        if missing:
            known.update(_create_issues(conn, project_id, groups, missing))
        for h, state in known.items():
            states[(project_id, h)] = state

    event_rows = [
        {
            "project_id": r.project_id, "issue_id": states[(r.project_id, r.hash)].id, "event_id": r.event_id,
            "timestamp": r.timestamp, "received": r.received, "level": r.level, "environment": r.environment,
            "release": r.release, "user_key": r.user_key, "title": r.title, "data": r.data,
        }
        for r in unique.values()
    ]
    # SDK retries resend an event: the ones already stored are found first (one indexed lookup per
    # chunk), so the insert needs no RETURNING and can go through the driver's executemany.
    stored = set(unique) - _stored_event_ids(conn, unique)
    new_rows = [row for row in event_rows if (row["project_id"], row["event_id"]) in stored]
    execute_many(conn, "events", lambda: upsert(conn, events).on_conflict_do_nothing(
        index_elements=["project_id", "event_id"]), new_rows)
    for key, record in unique.items():
        if key in stored:
            states[(record.project_id, record.hash)].batch.append(record)

    _update_issues(conn, [s for s in states.values() if s.batch])


def _stored_event_ids(conn: Connection, keys: dict[tuple[int, str], EventRecord]) -> set[tuple[int, str]]:
    by_project: dict[int, list[str]] = defaultdict(list)
    for project_id, event_id in keys:
        by_project[project_id].append(event_id)
    found: set[tuple[int, str]] = set()
    query = _statement(conn, "stored_event_ids", lambda: select(events.c.event_id).where(
        events.c.project_id == bindparam("project_id"), events.c.event_id.in_(bindparam("ids", expanding=True))))
    for project_id, ids in by_project.items():
        for start in range(0, len(ids), _CHUNK):
            rows = conn.scalars(query, {"project_id": project_id, "ids": ids[start:start + _CHUNK]})
            found.update((project_id, event_id) for event_id in rows)
    return found


def _update_issues(conn: Connection, touched: list[_IssueState]) -> None:
    if not touched:
        return
    now = max(e.received for s in touched for e in s.batch)
    signal_rows: list[dict[str, Any]] = []
    issue_rows: list[dict[str, Any]] = []
    tag_counts: dict[tuple[int, str, str], list[float]] = {}
    minute_counts: dict[tuple[int, int], int] = defaultdict(int)
    hour_counts: dict[tuple[int, int], int] = defaultdict(int)
    for state in touched:
        batch = sorted(state.batch, key=lambda e: e.timestamp)
        latest = batch[-1]
        if state.new:
            signal_rows.append(_signal(ISSUE_NEW, state, latest, now))
        else:
            kind = _next_status(state, batch, now)
            if kind is not None:
                signal_rows.append(_signal(kind, state, latest, now))
        releases = [e.release for e in batch if e.release]
        issue_rows.append({
            "b_id": state.id, "b_n": len(batch), "b_first": batch[0].timestamp, "b_last": latest.timestamp,
            "b_level": latest.level, "b_release": releases[-1] if releases else None,
            "b_status": state.status, "b_substatus": state.substatus,
            "b_details": orjson.dumps(state.details).decode(),
        })
        for event in batch:
            minute_counts[(state.id, int(event.timestamp // 60))] += 1
            hour_counts[(state.id, int(event.timestamp // 3600))] += 1
            for key, value in event.tags:
                slot = tag_counts.get((state.id, key, value))
                if slot is None:
                    tag_counts[(state.id, key, value)] = [1, event.timestamp, event.timestamp]
                else:
                    slot[0] += 1
                    slot[1] = min(slot[1], event.timestamp)
                    slot[2] = max(slot[2], event.timestamp)

    new_users = _insert_new_users(conn, tag_counts)
    for row in issue_rows:
        row["b_users"] = new_users.get(row["b_id"], 0)

    def build_update() -> Any:
        return (
            update(issues)
            .where(issues.c.id == bindparam("b_id"))
            .values(
                times_seen=issues.c.times_seen + bindparam("b_n"),
                users_seen=issues.c.users_seen + bindparam("b_users"),
                first_seen=least(conn, issues.c.first_seen, bindparam("b_first")),
                last_seen=greatest(conn, issues.c.last_seen, bindparam("b_last")),
                level=bindparam("b_level"),
                last_release=func.coalesce(bindparam("b_release"), issues.c.last_release),
                status=bindparam("b_status"),
                substatus=bindparam("b_substatus"),
                status_details=bindparam("b_details"),
                # A reopened issue is no longer resolved.
                resolved_at=case((bindparam("b_status") == "resolved", issues.c.resolved_at), else_=None),
            )
        )

    execute_many(conn, "issue_update", build_update, issue_rows)

    def build_tags() -> Any:
        stmt = upsert(conn, issue_tags)
        return stmt.on_conflict_do_update(
            index_elements=["issue_id", "key", "value"],
            set_={
                "times_seen": issue_tags.c.times_seen + stmt.excluded.times_seen,
                "first_seen": least(conn, issue_tags.c.first_seen, stmt.excluded.first_seen),
                "last_seen": greatest(conn, issue_tags.c.last_seen, stmt.excluded.last_seen),
            },
        )

    if tag_counts:
        execute_many(conn, "issue_tags", build_tags, [
            {"issue_id": i, "key": k, "value": v, "times_seen": n, "first_seen": f, "last_seen": la}
            for (i, k, v), (n, f, la) in sorted(tag_counts.items())
        ])

    def build_counts() -> Any:
        stmt = upsert(conn, issue_minute_counts)
        return stmt.on_conflict_do_update(
            index_elements=["issue_id", "minute"],
            set_={"count": issue_minute_counts.c.count + stmt.excluded.count},
        )

    execute_many(conn, "issue_minute_counts", build_counts,
                 [{"issue_id": i, "minute": m, "count": n} for (i, m), n in sorted(minute_counts.items())])

    def build_hours() -> Any:
        stmt = upsert(conn, issue_hour_counts)
        return stmt.on_conflict_do_update(
            index_elements=["issue_id", "hour"], set_={"count": issue_hour_counts.c.count + stmt.excluded.count}
        )

    execute_many(conn, "issue_hour_counts", build_hours,
                 [{"issue_id": i, "hour": h, "count": n} for (i, h), n in sorted(hour_counts.items())])

    emit_signals(conn, signal_rows)


def _insert_new_users(conn: Connection, tag_counts: dict[tuple[int, str, str], list[float]]) -> dict[int, int]:
    """Insert the batch's "user" tag rows an issue did not have yet; returns how many each issue got.

    Users affected is the number of distinct values of an issue's "user" tag (as Sentry counts them).
    Counting those rows again after every batch cost a scan of all of an issue's users (a million for
    a big issue, every few milliseconds under load); counting the rows this insert creates is exact
    and costs one index probe per user of the batch — also with several writers on PostgreSQL,
    because ON CONFLICT DO NOTHING returns only the rows this transaction really inserted. The rows
    start at times_seen 0: the tag upsert that follows counts their events like any other tag's.
    """
    rows = [(issue_id, value, first, last) for (issue_id, key, value), (_, first, last) in sorted(tag_counts.items())
            if key == "user"]
    added: dict[int, int] = defaultdict(int)
    marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start:start + _CHUNK]
        sql = (
            "INSERT INTO issue_tags (issue_id, key, value, times_seen, first_seen, last_seen) VALUES "
            + ", ".join([f"({marker}, 'user', {marker}, 0, {marker}, {marker})"] * len(chunk))
            + " ON CONFLICT (issue_id, key, value) DO NOTHING RETURNING issue_id"
        )
        for (issue_id,) in conn.exec_driver_sql(sql, tuple(v for row in chunk for v in row)):
            added[issue_id] += 1
    return added


def _signal(kind: str, state: _IssueState, event: EventRecord, now: float) -> dict[str, Any]:
    return {
        "kind": kind, "project_id": event.project_id, "subject": f"issue:{state.id}", "created_at": now,
        "payload": {"issue_id": state.id, "event_id": event.event_id, "title": event.title,
                    "level": event.level, "environment": event.environment, "release": event.release},
    }


def save_packed_envelopes(conn: Connection, batch: Sequence[bytes]) -> list[None]:
    """`save_envelopes` for records a processor process pickled (processing.pack_records).

    The pickles come only from our own processor processes, through the server, never from a client.
    """
    return save_envelopes(conn, [pickle.loads(packed) for packed in batch])
