"""Alerting's and incidents' data classes, and what they store about one person (GDPR).

A person is named by their account (on-call rotations and overrides, escalation targets, who
declared an incident or wrote in its timeline), by e-mail (an e-mail receiver's address, a silence's
`created_by`, a notification sent to them) or in free text. Erasure takes them out of rotations and
escalation steps, deletes their overrides and the notifications that name them, and anonymises the
rest; a receiver is configuration its owner edits, so export lists it and erase leaves it.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, delete, select, tuple_, update

from watchkeeper.alerting.incident_tables import (
    alert_occurrences,
    escalation_policies,
    incident_events,
    incident_links,
    incidents,
    oncall_overrides,
    oncall_schedules,
)
from watchkeeper.alerting.tables import notification_outbox, notification_receivers, silences
from watchkeeper.lib.data_classes import DataClass, Expiry, Person

ERASED = "[erased]"


def expire_alert_history(conn: Connection, run: Expiry) -> int:
    t = alert_occurrences
    old = (select(t.c.fingerprint, t.c.starts_at)
           .where(t.c.resolved_at.is_not(None), t.c.resolved_at < run.now - run.days * 86400).limit(run.batch_size))
    return int(conn.execute(delete(t).where(tuple_(t.c.fingerprint, t.c.starts_at).in_(old))).rowcount)


def expire_notifications(conn: Connection, run: Expiry) -> int:
    t = notification_outbox
    ids = (select(t.c.id).where(t.c.status != "pending", t.c.created_at < run.now - run.days * 86400)
           .limit(run.batch_size))
    return int(conn.execute(delete(t).where(t.c.id.in_(ids.scalar_subquery()))).rowcount)


def expire_silences(conn: Connection, run: Expiry) -> int:
    ids = select(silences.c.id).where(silences.c.ends_at < run.now - run.days * 86400).limit(run.batch_size)
    return int(conn.execute(delete(silences).where(silences.c.id.in_(ids.scalar_subquery()))).rowcount)


def expire_incidents(conn: Connection, run: Expiry) -> int:
    """Resolved incidents with their timeline and used links (the alerts' history keeps its rows)."""
    ids = list(conn.scalars(select(incidents.c.id).where(
        incidents.c.resolved_at.is_not(None), incidents.c.resolved_at < run.now - run.days * 86400,
    ).limit(run.batch_size)))
    if not ids:
        return 0
    removed = conn.execute(delete(incident_events).where(incident_events.c.incident_id.in_(ids))).rowcount
    removed += conn.execute(delete(incident_links).where(incident_links.c.incident_id.in_(ids))).rowcount
    conn.execute(update(alert_occurrences).where(alert_occurrences.c.incident_id.in_(ids)).values(incident_id=None))
    return int(removed + conn.execute(delete(incidents).where(incidents.c.id.in_(ids))).rowcount)


DATA_CLASSES: tuple[DataClass, ...] = (
    DataClass("alerting", "alert_history", "every firing of every alert, once resolved", "alert_history_days",
              expire_alert_history),
    DataClass("alerting", "notifications", "notifications sent or given up (the outbox)", "notifications_days",
              expire_notifications),
    DataClass("alerting", "expired_silences", "silences after their end", "expired_silences_days",
              expire_silences),
    DataClass("alerting", "alerts", "active alerts, and resolved ones until their resolved notification",
              kept="alerting.resolved_retention_seconds after they resolve"),
    DataClass("alerting", "alerting_configuration",
              "alert rules, receivers, routes, on-call schedules and escalation policies",
              kept="until deleted by their owner"),
    DataClass("incidents", "incidents", "resolved incidents with their timeline", "incidents_days",
              expire_incidents),
)


def _schedule_users(layers: list[dict[str, Any]]) -> set[int]:
    return {int(u) for layer in layers for u in layer.get("users", [])}


def _policy_users(steps: list[dict[str, Any]]) -> set[int]:
    return {int(t["id"]) for step in steps for t in step.get("targets", []) if t.get("kind") == "user"}


def _receiver_names(person: Person, integrations: str) -> bool:
    return bool(person.email) and person.mentioned_in(integrations)


def export_person(conn: Connection, person: Person) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    row: Any
    accounts = set(person.accounts)
    for row in conn.execute(select(oncall_schedules.c.id, oncall_schedules.c.name, oncall_schedules.c.layers)):
        if accounts & _schedule_users(orjson.loads(row.layers)):
            found.setdefault("oncall_schedules", []).append({"id": row.id, "name": row.name})
    if accounts:
        for row in conn.execute(select(oncall_overrides).where(oncall_overrides.c.user_id.in_(sorted(accounts)))):
            found.setdefault("oncall_overrides", []).append(
                {"schedule_id": row.schedule_id, "user_id": row.user_id, "starts_at": row.starts_at,
                 "ends_at": row.ends_at})
        for row in conn.execute(select(incidents.c.id, incidents.c.title, incidents.c.created_at)
                                .where(incidents.c.created_by.in_(sorted(accounts)))):
            found.setdefault("incidents_declared", []).append(
                {"id": row.id, "title": row.title, "created_at": row.created_at})
        for row in conn.execute(select(incident_events).where(incident_events.c.actor_user_id.in_(sorted(accounts)))):
            found.setdefault("incident_timeline", []).append(
                {"incident_id": row.incident_id, "at": row.at, "kind": row.kind, "text": row.text})
    for row in conn.execute(select(escalation_policies.c.id, escalation_policies.c.name, escalation_policies.c.steps)):
        if accounts & _policy_users(orjson.loads(row.steps)):
            found.setdefault("escalation_policies", []).append({"id": row.id, "name": row.name})
    for row in conn.execute(select(notification_receivers.c.name, notification_receivers.c.integrations)):
        if _receiver_names(person, row.integrations):
            found.setdefault("notification_receivers", []).append(
                {"name": row.name, "integrations": orjson.loads(row.integrations)})
    for row in conn.execute(select(silences.c.id, silences.c.created_by, silences.c.comment)):
        if person.mentioned_in(row.created_by) or person.mentioned_in(row.comment):
            found.setdefault("silences", []).append(
                {"id": row.id, "created_by": row.created_by, "comment": row.comment})
    for row in conn.execute(select(notification_outbox.c.id, notification_outbox.c.receiver,
                                   notification_outbox.c.created_at, notification_outbox.c.payload)):
        if person.mentioned_in(row.payload):
            found.setdefault("notifications", []).append(
                {"receiver": row.receiver, "created_at": row.created_at, "payload": row.payload})
    return found


def erase_person(conn: Connection, person: Person, now: float) -> dict[str, int]:
    row: Any
    counts: dict[str, int] = {}

    def count(name: str, n: int) -> None:
        if n:
            counts[name] = counts.get(name, 0) + n

    accounts = set(person.accounts)
    for row in conn.execute(select(oncall_schedules.c.id, oncall_schedules.c.layers)).all():
        layers = orjson.loads(row.layers)
        if accounts & _schedule_users(layers):
            kept = [{**layer, "users": [u for u in layer["users"] if int(u) not in accounts]} for layer in layers]
            conn.execute(update(oncall_schedules).where(oncall_schedules.c.id == row.id).values(
                layers=orjson.dumps([layer for layer in kept if layer["users"]]).decode(), updated_at=now))
            count("oncall_schedules", 1)
    for row in conn.execute(select(escalation_policies.c.id, escalation_policies.c.steps)).all():
        steps = orjson.loads(row.steps)
        if accounts & _policy_users(steps):
            kept = [{**step, "targets": [t for t in step["targets"]
                                         if not (t.get("kind") == "user" and int(t["id"]) in accounts)]}
                    for step in steps]
            conn.execute(update(escalation_policies).where(escalation_policies.c.id == row.id).values(
                steps=orjson.dumps([step for step in kept if step["targets"]]).decode(), updated_at=now))
            count("escalation_policies", 1)
    if accounts:
        ids = sorted(accounts)
        count("oncall_overrides", conn.execute(delete(oncall_overrides).where(
            oncall_overrides.c.user_id.in_(ids))).rowcount)
        count("incidents_declared", conn.execute(update(incidents).where(
            incidents.c.created_by.in_(ids)).values(created_by=None)).rowcount)
        count("incident_timeline", conn.execute(update(incident_events).where(
            incident_events.c.actor_user_id.in_(ids)).values(actor_user_id=None)).rowcount)
    for row in conn.execute(select(silences.c.id, silences.c.created_by, silences.c.comment)).all():
        if person.mentioned_in(row.created_by) or person.mentioned_in(row.comment):
            conn.execute(update(silences).where(silences.c.id == row.id).values(
                created_by=person.redact(row.created_by), comment=person.redact(row.comment)))
            count("silences", 1)
    gone = [row.id for row in conn.execute(select(notification_outbox.c.id, notification_outbox.c.payload)).all()
            if person.mentioned_in(row.payload)]
    if gone:
        count("notifications", conn.execute(delete(notification_outbox).where(
            notification_outbox.c.id.in_(gone))).rowcount)
    return counts
