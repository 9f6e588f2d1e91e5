"""Incidents: declared from alerts or by a person, moved through triggered → acknowledged → investigating
→ mitigated → resolved (each step's time kept), with a timeline and a Markdown post-mortem.

A state may be skipped forward (resolve straight from triggered); the times of skipped states stay
empty, and moving back is refused. Any move past triggered stops the escalation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, insert, select, update

from watchkeeper.alerting.incident_tables import alert_occurrences, incident_events, incident_settings, incidents
from watchkeeper.store.dialect import upsert

STATES = ("triggered", "acknowledged", "investigating", "mitigated", "resolved")
SEVERITIES = ("critical", "high", "medium", "low")
TIME_COLUMNS = {"acknowledged": "acknowledged_at", "investigating": "investigating_at",
                "mitigated": "mitigated_at", "resolved": "resolved_at"}


class IncidentError(ValueError):
    """The change is not possible; the message says why (an API 409/422)."""


@dataclass(frozen=True)
class Incident:
    id: int
    project_id: int | None
    title: str
    severity: str
    state: str
    group_key: str | None
    created_by: int | None
    impact_started_at: float
    created_at: float
    acknowledged_at: float | None
    investigating_at: float | None
    mitigated_at: float | None
    resolved_at: float | None
    postmortem: str | None
    escalation_policy_id: int | None
    escalation_step: int
    escalation_round: int
    next_escalation_at: float | None
    updated_at: float

    @property
    def is_open(self) -> bool:
        return self.state != "resolved"

    def to_api(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values.pop("postmortem")
        return values


def _from_row(row: Any) -> Incident:
    return Incident(**{name: getattr(row, name) for name in Incident.__dataclass_fields__})


def get_incident(conn: Connection, incident_id: int) -> Incident | None:
    row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).first()
    return _from_row(row) if row else None


def list_incidents(conn: Connection, *, states: list[str] | None = None, severity: str | None = None,
                   project_ids: frozenset[int] | None = None, limit: int = 100, unowned: bool = True
                   ) -> list[Incident]:
    """Newest first. `project_ids` None = all; otherwise incidents of those projects and (`unowned`) of none."""
    query = select(incidents).order_by(incidents.c.id.desc()).limit(limit)
    if states:
        query = query.where(incidents.c.state.in_(states))
    if severity:
        query = query.where(incidents.c.severity == severity)
    if project_ids is not None:
        mine = incidents.c.project_id.in_(sorted(project_ids))
        query = query.where(mine | incidents.c.project_id.is_(None) if unowned else mine)
    return [_from_row(r) for r in conn.execute(query)]


def add_event(conn: Connection, incident_id: int, kind: str, text: str, *, at: float,
              actor_user_id: int | None = None) -> None:
    """One timeline entry: alert.fired, alert.resolved, status, note, notification, escalation."""
    conn.execute(insert(incident_events).values(incident_id=incident_id, at=at, kind=kind, text=text,
                                                actor_user_id=actor_user_id))


def timeline(conn: Connection, incident_id: int) -> list[dict[str, Any]]:
    from watchkeeper.auth.tables import users

    rows = conn.execute(select(incident_events, users.c.email)
                        .outerjoin(users, users.c.id == incident_events.c.actor_user_id)
                        .where(incident_events.c.incident_id == incident_id)
                        .order_by(incident_events.c.at, incident_events.c.id))
    return [{"id": r.id, "at": r.at, "kind": r.kind, "text": r.text, "actor_user_id": r.actor_user_id,
             "actor": r.email} for r in rows]


def incident_alerts(conn: Connection, incident_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(select(alert_occurrences).where(alert_occurrences.c.incident_id == incident_id)
                        .order_by(alert_occurrences.c.starts_at))
    return [{"fingerprint": r.fingerprint, "name": r.name, "severity": r.severity, "starts_at": r.starts_at,
             "resolved_at": r.resolved_at, "source": r.source} for r in rows]


def incident_source(conn: Connection, incident_id: int) -> str | None:
    """The page of what caused the incident: its first alert's (alerting.links.cause_of), or None for an
    incident declared by hand."""
    return conn.scalar(select(alert_occurrences.c.source).where(alert_occurrences.c.incident_id == incident_id,
                                                                alert_occurrences.c.source.is_not(None))
                       .order_by(alert_occurrences.c.starts_at).limit(1))


def declare(conn: Connection, *, title: str, severity: str, now: float, project_id: int | None = None,
            impact_started_at: float | None = None, group_key: str | None = None, created_by: int | None = None,
            escalation_policy_id: int | None = None, source: str | None = None) -> Incident:
    """Open an incident; its escalation (if it has a policy) starts at the next loop round."""
    if severity not in SEVERITIES:
        raise IncidentError(f"severity: one of {', '.join(SEVERITIES)}")
    result = conn.execute(insert(incidents).values(
        project_id=project_id, title=title[:500], severity=severity, state="triggered", group_key=group_key,
        created_by=created_by, impact_started_at=min(impact_started_at or now, now), created_at=now,
        escalation_policy_id=escalation_policy_id, escalation_step=0, escalation_round=0,
        next_escalation_at=now if escalation_policy_id is not None else None, updated_at=now))
    incident_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    add_event(conn, incident_id, "status", f"Triggered{' by ' + source if source else ''}", at=now,
              actor_user_id=created_by)
    incident = get_incident(conn, incident_id)
    assert incident is not None
    return incident


def change_state(conn: Connection, incident_id: int, state: str, *, now: float, actor_user_id: int | None,
                 via: str = "") -> Incident:
    """Move an incident forward to `state` (skipping is allowed, going back is not)."""
    if state not in STATES or state == "triggered":
        raise IncidentError(f"state: one of {', '.join(STATES[1:])}")
    incident = get_incident(conn, incident_id)
    if incident is None:
        raise LookupError(incident_id)
    if STATES.index(state) <= STATES.index(incident.state):
        raise IncidentError(f"incident {incident_id} is {incident.state} already")
    values: dict[str, Any] = {"state": state, "updated_at": now, "next_escalation_at": None,
                              TIME_COLUMNS[state]: now}
    # Resolving or mitigating without saying "acknowledged" still acknowledges (MTTA counts it then).
    if incident.acknowledged_at is None:
        values["acknowledged_at"] = now
    # Conditional on the state read: two people acknowledging at once change it once.
    changed = conn.execute(update(incidents).where(incidents.c.id == incident_id,
                                                   incidents.c.state == incident.state).values(values)).rowcount
    if not changed:
        raise IncidentError(f"incident {incident_id} changed meanwhile; reload")
    add_event(conn, incident_id, "status", f"{state.capitalize()}{' via ' + via if via else ''}", at=now,
              actor_user_id=actor_user_id)
    updated = get_incident(conn, incident_id)
    assert updated is not None
    return updated


def add_note(conn: Connection, incident_id: int, text: str, *, now: float, actor_user_id: int | None) -> None:
    if get_incident(conn, incident_id) is None:
        raise LookupError(incident_id)
    add_event(conn, incident_id, "note", text, at=now, actor_user_id=actor_user_id)
    conn.execute(update(incidents).where(incidents.c.id == incident_id).values(updated_at=now))


def _utc(epoch: float | None) -> str:
    return "—" if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min {int(seconds % 60)} s"


def draft_postmortem(conn: Connection, incident: Incident) -> str:
    """The post-mortem's first draft: summary, impact, timeline (from the incident's), root cause and
    action items left for the team."""
    lines = [f"# Post-mortem: {incident.title} (incident #{incident.id})", "", "## Summary", "",
             f"Severity **{incident.severity}**, now **{incident.state}**. _Describe what happened in two "
             "or three sentences._", "", "## Impact", "",
             f"- Impact started: {_utc(incident.impact_started_at)}",
             f"- Detected (incident opened): {_utc(incident.created_at)} "
             f"(after {_duration(incident.created_at - incident.impact_started_at)})",
             f"- Acknowledged: {_utc(incident.acknowledged_at)}",
             f"- Resolved: {_utc(incident.resolved_at)}" + (
                 f" (after {_duration(incident.resolved_at - incident.created_at)})" if incident.resolved_at else ""),
             "", "_Who and what was affected, and how much._", "", "## Timeline", "",
             "| Time (UTC) | Event |", "|---|---|"]
    for entry in timeline(conn, incident.id):
        who = f" ({entry['actor']})" if entry["actor"] else ""
        text = " ".join(entry["text"].split()).replace("|", "\\|")
        lines.append(f"| {_utc(entry['at'])} | {entry['kind']}: {text}{who} |")
    lines += ["", "## Root cause", "", "_Why it happened; keep asking why._", "", "## Action items", "",
              "- [ ] _What will stop this from happening again, with an owner each._", ""]
    return "\n".join(lines)


def postmortem(conn: Connection, incident_id: int) -> str:
    incident = get_incident(conn, incident_id)
    if incident is None:
        raise LookupError(incident_id)
    return incident.postmortem if incident.postmortem is not None else draft_postmortem(conn, incident)


def save_postmortem(conn: Connection, incident_id: int, markdown: str, *, now: float,
                    actor_user_id: int | None) -> None:
    changed = conn.execute(update(incidents).where(incidents.c.id == incident_id)
                           .values(postmortem=markdown, updated_at=now)).rowcount
    if not changed:
        raise LookupError(incident_id)
    add_event(conn, incident_id, "postmortem", "Post-mortem edited", at=now, actor_user_id=actor_user_id)


def open_count(conn: Connection) -> int:
    return int(conn.scalar(select(func.count()).select_from(incidents).where(incidents.c.state != "resolved")) or 0)


def save_project_severities(conn: Connection, project_id: int, severities: Sequence[str] | None) -> None:
    """Which alert severities declare incidents in a project; None = the server's setting."""
    if severities is None:
        conn.execute(delete(incident_settings).where(incident_settings.c.project_id == project_id))
        return
    values = {"severities": orjson.dumps(list(severities)).decode()}
    statement = upsert(conn, incident_settings).values(project_id=project_id, **values)
    conn.execute(statement.on_conflict_do_update(index_elements=["project_id"], set_=values))
