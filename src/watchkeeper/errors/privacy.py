"""The errors domain's data classes and what it stores about one person (GDPR).

A person shows up in what SDKs send: the event's `user` (id, email, ip_address), a release-health
session's `did` and `attrs.ip_address`. Those are inside the compressed documents, so finding them
reads every stored document, a page at a time (a command run by hand, not a request).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Table, delete, select

from watchkeeper.errors.retention import (
    expire_attachments,
    expire_envelope_items,
    expire_events,
    expire_transactions,
)
from watchkeeper.errors.tables import attachments, envelope_items, events, issue_tags, transactions
from watchkeeper.lib.blobs import unpack_document
from watchkeeper.lib.data_classes import DataClass, Person

DATA_CLASSES: tuple[DataClass, ...] = (
    DataClass("errors", "error_events", "events, the issues they group into, and their per-minute counts",
              "error_events_days", expire_events),
    DataClass("errors", "transactions", "performance transactions sent by SDKs", "transactions_days",
              expire_transactions),
    DataClass("errors", "envelope_items", "release-health sessions, client reports, logs and check-ins as sent",
              "envelope_items_days", expire_envelope_items),
    DataClass("errors", "attachments", "files sent with events (minidumps, logs, screenshots)",
              "attachments_days", expire_attachments),
)

PAGE = 500


def _names(document: Any, person: Person) -> bool:
    """Whether an event, transaction or session names `person`.

    >>> _names({"user": {"id": 42, "email": "A@b.c"}}, Person(email="a@b.c"))
    True
    """
    if not isinstance(document, dict):
        return False
    found: list[tuple[str, Any]] = []
    user = document.get("user")
    if isinstance(user, dict):
        found += [("id", user.get("id")), ("email", user.get("email")), ("ip", user.get("ip_address"))]
    attrs = document.get("attrs")
    found.append(("id", document.get("did")))
    if isinstance(attrs, dict):
        found.append(("ip", attrs.get("ip_address")))
    wanted = {"id": person.user_id, "email": person.email, "ip": person.ip}
    for kind, value in found:
        if value is None or wanted[kind] is None:
            continue
        text = str(value).strip()
        if (text.lower() if kind == "email" else text) == wanted[kind]:
            return True
    return False


def _matching(conn: Connection, table: Table, person: Person) -> Iterator[tuple[Any, Any]]:
    """(row, document) of every row of `table` naming `person`, read in pages of PAGE rows."""
    last = 0
    while True:
        rows = conn.execute(select(table).where(table.c.id > last).order_by(table.c.id).limit(PAGE)).all()
        if not rows:
            return
        for row in rows:
            document = unpack_document(row.data)
            if _names(document, person):
                yield row, document
        last = rows[-1].id


def export_person(conn: Connection, person: Person) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for name, table in (("error_events", events), ("transactions", transactions),
                        ("envelope_items", envelope_items)):
        for row, document in _matching(conn, table, person):
            found.setdefault(name, []).append(
                {"project_id": row.project_id, "event_id": row.event_id, "received": row.received,
                 "data": document})
    event_ids = [(e["project_id"], e["event_id"]) for e in found.get("error_events", [])]
    for project_id, event_id in event_ids:
        for row in conn.execute(select(attachments.c.id, attachments.c.filename, attachments.c.size)
                                .where(attachments.c.project_id == project_id, attachments.c.event_id == event_id)):
            found.setdefault("attachments", []).append(
                {"project_id": project_id, "event_id": event_id, "filename": row.filename, "size": row.size})
    return found


def erase_person(conn: Connection, person: Person, now: float) -> dict[str, int]:
    """Delete the events, transactions and sessions naming the person, the events' attachments, and
    the person's values of the issues' `user` tag."""
    counts: dict[str, int] = {}
    user_keys = {f"{prefix}:{value}" for prefix, value in
                 (("id", person.user_id), ("email", person.email), ("ip", person.ip)) if value}
    for name, table in (("error_events", events), ("transactions", transactions),
                        ("envelope_items", envelope_items)):
        rows = [row for row, _ in _matching(conn, table, person)]
        for row in rows:
            if table is events:
                if row.user_key:
                    user_keys.add(row.user_key)
                counts["attachments"] = counts.get("attachments", 0) + conn.execute(delete(attachments).where(
                    attachments.c.project_id == row.project_id, attachments.c.event_id == row.event_id)).rowcount
            conn.execute(delete(table).where(table.c.id == row.id))
        if rows:
            counts[name] = len(rows)
    if user_keys:
        tags = conn.execute(delete(issue_tags).where(issue_tags.c.key == "user",
                                                     issue_tags.c.value.in_(sorted(user_keys)))).rowcount
        if tags:
            counts["issue_user_tags"] = tags
    return {name: count for name, count in counts.items() if count}
