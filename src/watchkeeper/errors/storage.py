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
    first_seen: float
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
        issues.c.id, issues.c.hash, issues.c.status, issues.c.substatus, issues.c.status_details, issues.c.times_seen,
        issues.c.first_seen,
    ).where(issues.c.project_id == bindparam("project_id"), issues.c.hash.in_(bindparam("hashes", expanding=True))))
    for start in range(0, len(hashes), _CHUNK):
        rows = conn.execute(query, {"project_id": project_id, "hashes": hashes[start:start + _CHUNK]})
        for r in rows:
            found[r.hash] = _IssueState(r.id, r.status, r.substatus, orjson.loads(r.status_details),
                                        r.times_seen, r.first_seen)
    return found


_ISSUE_COLUMNS = (
    "project_id", "hash", "grouping_config", "title", "culprit", "type", "level", "platform", "status", "substatus",
    "status_details", "first_seen", "last_seen", "times_seen", "users_seen", "first_release", "last_release",
    "metadata",
)


def _create_issues(conn: Connection, project_id: int, groups: dict[str, list[EventRecord]],
                   hashes: list[str]) -> dict[str, _IssueState]:
    """Insert the issues of `hashes`, already counting their events of this batch.

    An issue made here needs no UPDATE afterwards: inserting the final counts once instead of zeros
    that the update then moves spares five index rewrites per new issue. Only the rows this insert
    really made come back from RETURNING; an issue another writer (PostgreSQL) made meanwhile is
    loaded and counted by the update like any existing issue.
    """
    rows = []
    for h in hashes:
        batch = sorted(groups[h], key=lambda e: e.timestamp)
        first, latest = batch[0], batch[-1]
        releases = [e.release for e in batch if e.release]
        # Every "user" tag row of an issue made in this transaction is new: users_seen is their number.
        users = {value for e in batch for key, value in e.tags if key == "user"}
        rows.append((
            project_id, h, first.grouping_config, first.title, first.culprit, first.type, latest.level,
            first.platform, "unresolved", "new", "{}", first.timestamp, latest.timestamp, len(batch), len(users),
            first.release, releases[-1] if releases else first.release, orjson.dumps(first.metadata).decode(),
        ))
    marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    quote = conn.dialect.identifier_preparer.quote
    head = f"INSERT INTO issues ({', '.join(quote(c) for c in _ISSUE_COLUMNS)}) VALUES "
    group = "(" + ", ".join([marker] * len(_ISSUE_COLUMNS)) + ")"
    states: dict[str, _IssueState] = {}
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start:start + _CHUNK]
        sql = head + ", ".join([group] * len(chunk)) + " ON CONFLICT (project_id, hash) DO NOTHING RETURNING id, hash"
        for issue_id, h in conn.exec_driver_sql(sql, tuple(v for row in chunk for v in row)):
            states[h] = _IssueState(issue_id, "unresolved", "new", {}, len(groups[h]),
                                    min(e.timestamp for e in groups[h]), new=True)
    raced = [h for h in hashes if h not in states]
    if raced:
        states.update(_load_issues(conn, project_id, raced))
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
    # The ones already stored are found first (one indexed lookup per chunk), so the insert needs no
    # RETURNING and can go through the driver's executemany.
    stored = _stored_event_ids(conn, unique)
    by_project: dict[int, dict[str, list[EventRecord]]] = defaultdict(lambda: defaultdict(list))
    for key, record in unique.items():
        if key not in stored:
            by_project[record.project_id][record.hash].append(record)

    states: list[_IssueState] = []
    issue_ids: dict[tuple[int, str], int] = {}
    for project_id, groups in by_project.items():
        hashes = sorted(groups)
        known = _load_issues(conn, project_id, hashes)
        missing = [h for h in hashes if h not in known]
        if missing:
            known.update(_create_issues(conn, project_id, groups, missing))
        for h, state in known.items():
            state.batch = groups[h]
            states.append(state)
            issue_ids[(project_id, h)] = state.id

    execute_many(conn, "events", lambda: upsert(conn, events).on_conflict_do_nothing(
        index_elements=["project_id", "event_id"]), [
        {
            "project_id": r.project_id, "issue_id": issue_ids[(r.project_id, r.hash)], "event_id": r.event_id,
            "timestamp": r.timestamp, "received": r.received, "level": r.level, "environment": r.environment,
            "release": r.release, "user_key": r.user_key, "title": r.title, "data": r.data,
        }
        for key, r in unique.items() if key not in stored
    ])
    _update_issues(conn, states)


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
        _count_events(state.id, batch, tag_counts, minute_counts, hour_counts)
        if state.new:  # inserted with its counts (_create_issues)
            signal_rows.append(_signal(ISSUE_NEW, state, latest, now))
            continue
        kind = _next_status(state, batch, now)
        if kind is not None:
            signal_rows.append(_signal(kind, state, latest, now))
        releases = [e.release for e in batch if e.release]
        row: dict[str, Any] = {
            "b_id": state.id, "b_n": len(batch), "b_last": latest.timestamp, "b_level": latest.level,
            "b_release": releases[-1] if releases else None,
        }
        # first_seen only ever decreases: if the batch's first event is not earlier than the value
        # loaded, it is not earlier than the current one either (also with other writers).
        if batch[0].timestamp < state.first_seen:
            row["b_first"] = batch[0].timestamp
        if kind is not None:  # every status signal comes with a change of status
            row.update(b_status=state.status, b_substatus=state.substatus,
                       b_details=orjson.dumps(state.details).decode())
        issue_rows.append(row)

    new_users = _insert_new_users(conn, tag_counts)
    for row in issue_rows:
        users = new_users.get(row["b_id"], 0)
        if users:
            row["b_users"] = users
    _update_issue_rows(conn, issue_rows)

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


def _count_events(issue_id: int, batch: list[EventRecord], tag_counts: dict[tuple[int, str, str], list[float]],
                  minute_counts: dict[tuple[int, int], int], hour_counts: dict[tuple[int, int], int]) -> None:
    for event in batch:
        minute_counts[(issue_id, int(event.timestamp // 60))] += 1
        hour_counts[(issue_id, int(event.timestamp // 3600))] += 1
        for key, value in event.tags:
            slot = tag_counts.get((issue_id, key, value))
            if slot is None:
                tag_counts[(issue_id, key, value)] = [1, event.timestamp, event.timestamp]
            else:
                slot[0] += 1
                slot[1] = min(slot[1], event.timestamp)
                slot[2] = max(slot[2], event.timestamp)


def _update_issue_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Add the batch's counts to its issues, setting only the columns whose value changes.

    SQLite rewrites the index entries of every column an UPDATE sets, changed or not: setting
    first_seen, users_seen and status to the values they already had cost three index rewrites per
    issue (CPU, and random index pages dirtied and written at each commit). So the rows are grouped by
    the optional columns they carry (b_first, b_users, b_status...) and each group gets the statement
    that sets just those.
    """
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        shapes[tuple(row)].append(row)
    for shape, group in shapes.items():
        first, users, status = "b_first" in shape, "b_users" in shape, "b_status" in shape

        def build(first: bool = first, users: bool = users, status: bool = status) -> Any:
            values: dict[str, Any] = {
                "times_seen": issues.c.times_seen + bindparam("b_n"),
                "last_seen": greatest(conn, issues.c.last_seen, bindparam("b_last")),
                "level": bindparam("b_level"),
                "last_release": func.coalesce(bindparam("b_release"), issues.c.last_release),
            }
            if users:
                values["users_seen"] = issues.c.users_seen + bindparam("b_users")
            if first:
                values["first_seen"] = least(conn, issues.c.first_seen, bindparam("b_first"))
            if status:
                values.update(
                    status=bindparam("b_status"), substatus=bindparam("b_substatus"),
                    status_details=bindparam("b_details"),
                    # A reopened issue is no longer resolved.
                    resolved_at=case((bindparam("b_status") == "resolved", issues.c.resolved_at), else_=None),
                )
            return update(issues).where(issues.c.id == bindparam("b_id")).values(**values)

        execute_many(conn, f"issue_update{int(first)}{int(users)}{int(status)}", build, group)


def _insert_new_users(conn: Connection, tag_counts: dict[tuple[int, str, str], list[float]]) -> dict[int, int]:
    """Insert the batch's "user" tag rows an issue did not have yet; returns how many each issue got.

    Users affected is the number of distinct values of an issue's "user" tag (as Sentry counts them).
    Counting those rows again after every batch cost a scan of all of an issue's users (a million for
    a big issue, every few milliseconds under load); counting the rows this insert creates is exact
    and costs one index probe per user of the batch — also with several writers on PostgreSQL,
    because ON CONFLICT DO NOTHING returns only the rows this transaction really inserted. The rows
    are inserted with the batch's counts, so they are taken out of `tag_counts`: the tag upsert that
    follows counts only the users an issue already had (writing each new row once, not twice).
    """
    rows = [(issue_id, value, n, first, last) for (issue_id, key, value), (n, first, last) in sorted(tag_counts.items())
            if key == "user"]
    added: dict[int, int] = defaultdict(int)
    marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start:start + _CHUNK]
        sql = (
            "INSERT INTO issue_tags (issue_id, key, value, times_seen, first_seen, last_seen) VALUES "
            + ", ".join([f"({marker}, 'user', {marker}, {marker}, {marker}, {marker})"] * len(chunk))
            + " ON CONFLICT (issue_id, key, value) DO NOTHING RETURNING issue_id, value"
        )
        for issue_id, value in conn.exec_driver_sql(sql, tuple(v for row in chunk for v in row)):
            added[issue_id] += 1
            del tag_counts[(issue_id, "user", value)]
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
