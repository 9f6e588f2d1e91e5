"""Escalation policies: ordered steps, each paging users, whoever a schedule has on call, or a receiver;
when nobody acknowledges within the step's minutes the next step pages, and the whole policy runs again
up to `repeat` more times.

A policy belongs to a team, like a project: the team's members read and change it (viewers read it),
nobody else sees it. Its steps page the team's members, schedules and receivers; it covers one of the
team's projects, or the team's projects that have no policy of their own. Administrators see every
policy, and their policies of no team cover incidents no team's policy does.

Durable: the incident row holds its step, round and the time of the next step. A step advances with a
conditional update in the same transaction that queues its notifications in the outbox, so a restart
(or a second worker process) neither skips a step nor pages twice.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Connection, delete, insert, select, update

from watchkeeper.alerting import links
from watchkeeper.alerting.dispatch import rfc3339
from watchkeeper.alerting.incident_tables import escalation_policies, incidents
from watchkeeper.alerting.incidents import Incident, add_event, get_incident, incident_source
from watchkeeper.alerting.oncall import get_schedule
from watchkeeper.alerting.routing import AlertingConfig
from watchkeeper.alerting.tables import notification_outbox
from watchkeeper.auth.tables import users
from watchkeeper.auth.teams import member_ids, project_ids, teams_of_project


class PolicyError(ValueError):
    """A policy cannot be saved as asked; the message names the field."""


class TargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["user", "schedule", "receiver"]
    id: int | None = Field(None, ge=1, le=2**31 - 1, description="user or schedule id")
    name: str | None = Field(None, max_length=200, description="receiver name (routing file)")

    @model_validator(mode="after")
    def _one(self) -> TargetIn:
        if (self.kind == "receiver") != (self.name is not None) or (self.kind != "receiver") != (self.id is not None):
            raise ValueError("a user or schedule target takes an id, a receiver target a name")
        return self


class StepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    targets: list[TargetIn] = Field(min_length=1, max_length=10)
    minutes: float = Field(30, gt=0, le=24 * 60, description="wait this long for an acknowledgement")


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    team_id: int | None = Field(None, ge=1, le=2**31 - 1, description=(
        "the team that owns the policy (its members read and change it); default: your team when you are in "
        "one; null from an admin: an administrators' policy, for incidents no team's policy covers"))
    project_id: int | None = Field(None, ge=1, le=2**31 - 1, description=(
        "the project whose incidents it covers (one of the team's); null = the team's other projects"))
    steps: list[StepIn] = Field(min_length=1, max_length=20)
    repeat: int = Field(0, ge=0, le=10, description="run the whole policy again this many times")


@dataclass(frozen=True)
class Policy:
    id: int
    name: str
    project_id: int | None
    steps: list[dict[str, Any]]
    repeat: int
    team_id: int | None = None

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "team_id": self.team_id, "project_id": self.project_id,
                "steps": self.steps, "repeat": self.repeat}


def _from_row(row: Any) -> Policy:
    return Policy(row.id, row.name, row.project_id, orjson.loads(row.steps), row.repeat, row.team_id)


def _check(conn: Connection, body: PolicyIn, config: AlertingConfig, policy_id: int | None) -> dict[str, Any]:
    """The row values of a valid policy. A team's policy covers the team's projects and pages the team's
    members (admins' policies, of no team, anyone)."""
    from watchkeeper.alerting.incident_tables import oncall_schedules
    from watchkeeper.auth.projects import get_project

    members = None if body.team_id is None else set(member_ids(conn, body.team_id))
    for number, step in enumerate(body.steps, 1):
        for target in step.targets:
            if target.kind == "receiver" and config.receiver(target.name or "") is None:
                raise PolicyError(f"steps.{number}: no receiver named {target.name!r} in the routing file")
            if target.kind == "user" and members is not None and target.id not in members:
                raise PolicyError(f"steps.{number}: user {target.id} is not in the policy's team")
            table = users if target.kind == "user" else oncall_schedules
            if target.kind != "receiver" and conn.scalar(select(table.c.id).where(table.c.id == target.id)) is None:
                raise PolicyError(f"steps.{number}: no {target.kind} with id {target.id}")
    if body.project_id is not None and get_project(conn, body.project_id) is None:
        raise PolicyError(f"project_id: no project {body.project_id}")
    if body.team_id is not None and body.project_id is not None and \
            body.project_id not in project_ids(conn, body.team_id):
        raise PolicyError(f"project_id: project {body.project_id} is not one of the team's projects")
    p = escalation_policies
    same_team = p.c.team_id.is_(None) if body.team_id is None else p.c.team_id == body.team_id
    for column, value, scope in (("name", body.name, same_team), ("project_id", body.project_id, p.c.id.is_not(None))):
        if value is None:
            continue
        taken = conn.scalar(select(p.c.id).where(p.c[column] == value, scope))
        if taken is not None and taken != policy_id:
            raise PolicyError(f"{column}: another policy has {column} {value!r}")
    return {"name": body.name, "team_id": body.team_id, "project_id": body.project_id, "repeat": body.repeat,
            "steps": orjson.dumps([s.model_dump(exclude_none=True) for s in body.steps]).decode()}


def create_policy(conn: Connection, body: PolicyIn, config: AlertingConfig, *, now: float) -> Policy:
    values = _check(conn, body, config, None)
    result = conn.execute(insert(escalation_policies).values(**values, created_at=now, updated_at=now))
    policy = get_policy(conn, int(result.inserted_primary_key[0]))  # type: ignore[index]
    assert policy is not None
    return policy


def replace_policy(conn: Connection, policy_id: int, body: PolicyIn, config: AlertingConfig, *,
                   now: float) -> Policy | None:
    values = _check(conn, body, config, policy_id)
    changed = conn.execute(update(escalation_policies).where(escalation_policies.c.id == policy_id)
                           .values(**values, updated_at=now)).rowcount
    return get_policy(conn, policy_id) if changed else None


def delete_policy(conn: Connection, policy_id: int) -> bool:
    return bool(conn.execute(delete(escalation_policies).where(escalation_policies.c.id == policy_id)).rowcount)


def get_policy(conn: Connection, policy_id: int) -> Policy | None:
    row = conn.execute(select(escalation_policies).where(escalation_policies.c.id == policy_id)).first()
    return _from_row(row) if row else None


def list_policies(conn: Connection, team_ids: Collection[int] | None = None) -> list[Policy]:
    """Every policy, or those of `team_ids` (what a member of those teams sees)."""
    query = select(escalation_policies).order_by(escalation_policies.c.name, escalation_policies.c.id)
    if team_ids is not None:
        query = query.where(escalation_policies.c.team_id.in_(list(team_ids)))
    return [_from_row(r) for r in conn.execute(query)]


def policy_for(conn: Connection, project_id: int | None) -> int | None:
    """The policy of a project's incidents: the project's own, else its team's policy for the team's other
    projects, else the administrators' policy for all others.

    >>> # policy_for(conn, 3) -> the id of the policy that pages for project 3's incidents, or None
    """
    p = escalation_policies
    if project_id is not None:
        own = conn.scalar(select(p.c.id).where(p.c.project_id == project_id))
        if own is not None:
            return int(own)
        teams = teams_of_project(conn, project_id)
        if teams:
            team = conn.scalar(select(p.c.id).where(p.c.project_id.is_(None), p.c.team_id.in_(teams))
                               .order_by(p.c.id).limit(1))
            if team is not None:
                return int(team)
    default = conn.scalar(select(p.c.id).where(p.c.project_id.is_(None), p.c.team_id.is_(None))
                          .order_by(p.c.id).limit(1))
    return None if default is None else int(default)


@dataclass
class Pager:
    """What paging needs: the routing file's receivers, where links point, and how they are signed."""

    config: AlertingConfig
    base_url: str
    secret: bytes
    link_expiry: float
    email_receiver: str | None

    def links(self, incident_id: int, now: float) -> dict[str, str]:
        expires = now + self.link_expiry
        return {action: f"{self.base_url}/incident-links/{links.sign(self.secret, incident_id, action, expires)}"
                for action in links.ACTIONS}

    def payload(self, incident: Incident, receiver: str, group_key: str, now: float,
                source: str | None = None) -> dict[str, Any]:
        """An Alertmanager v4 payload about the incident (every channel renders those), with the signed
        acknowledge and resolve links in the description and in `incident`, and the page of what caused
        it (`source`, alerting.links.cause_of) when an alert did."""
        urls = self.links(incident.id, now)
        page = f"{self.base_url}/incidents/{incident.id}"
        cause = links.absolute(self.base_url, source) if source else None
        labels = {"alertname": f"Incident #{incident.id}", "severity": incident.severity}
        annotations = {"summary": f"Incident #{incident.id}: {incident.title}",
                       "description": f"Acknowledge: {urls['acknowledge']}\nResolve: {urls['resolve']}\n"
                                      f"Incident: {page}" + (f"\nSource: {cause}" if cause else "")}
        alert = {"status": "firing", "labels": labels, "annotations": annotations,
                 "startsAt": rfc3339(incident.created_at), "endsAt": rfc3339(None), "generatorURL": page,
                 "fingerprint": f"incident-{incident.id}"}
        return {"version": "4", "groupKey": group_key, "truncatedAlerts": 0, "status": "firing",
                "receiver": receiver,
                # Channels title a message with the group labels: "[FIRING:1] #3 Checkout is down".
                "groupLabels": {"incident": f"#{incident.id} {incident.title}"}, "commonLabels": labels,
                "commonAnnotations": annotations, "externalURL": page, "alerts": [alert],
                "incident": {"id": incident.id, "title": incident.title, "severity": incident.severity,
                             "url": page, "source_url": cause, "acknowledge_url": urls["acknowledge"],
                             "resolve_url": urls["resolve"]}}

    def _queue(self, conn: Connection, receiver: str, integration: str, group_key: str, payload: dict[str, Any],
               now: float) -> None:
        conn.execute(notification_outbox.insert().values(
            receiver=receiver, integration=integration, group_key=group_key,
            payload=orjson.dumps(payload).decode(), status="pending", attempts=0, next_attempt_at=now,
            created_at=now))

    def page_receiver(self, conn: Connection, incident: Incident, name: str, group_key: str, now: float) -> str:
        receiver = self.config.receiver(name)
        if receiver is None:
            return f"receiver {name} is not in the routing file any more"
        source = incident_source(conn, incident.id)
        for integration in receiver.integrations():
            self._queue(conn, name, integration, group_key, self.payload(incident, name, group_key, now, source), now)
        return f"paged receiver {name}"

    def page_user(self, conn: Connection, incident: Incident, user_id: int, group_key: str, now: float) -> str:
        email = conn.scalar(select(users.c.email).where(users.c.id == user_id, users.c.is_active))
        if email is None:
            return f"user {user_id} is not an active user"
        receiver = self.config.receiver(self.email_receiver) if self.email_receiver else None
        integration = next((n for n in (receiver.integrations() if receiver else {}) if n.startswith("email/")), None)
        if receiver is None or integration is None:
            return f"{email} not paged: no e-mail receiver (alerting.oncall_email_receiver)"
        payload = self.payload(incident, receiver.name, group_key, now, incident_source(conn, incident.id)) | {
            "recipient": email}
        self._queue(conn, receiver.name, integration, group_key, payload, now)
        return f"paged {email} by e-mail"

    def page_target(self, conn: Connection, incident: Incident, target: dict[str, Any], group_key: str,
                    now: float) -> str:
        if target["kind"] == "receiver":
            return self.page_receiver(conn, incident, target["name"], group_key, now)
        if target["kind"] == "user":
            return self.page_user(conn, incident, int(target["id"]), group_key, now)
        schedule = get_schedule(conn, int(target["id"]))
        if schedule is None:
            return f"schedule {target['id']} does not exist any more"
        user = schedule.on_call_at(now)
        if user is None:
            return f"nobody on call in {schedule.name}"
        return f"{schedule.name}: " + self.page_user(conn, incident, user, group_key, now)


def escalate(conn: Connection, incident: Incident, pager: Pager, now: float) -> bool:
    """Run the incident's due step and schedule the next; False if another worker did it first."""
    policy = get_policy(conn, incident.escalation_policy_id) if incident.escalation_policy_id else None
    guard = (incidents.c.id == incident.id, incidents.c.state == "triggered",
             incidents.c.escalation_step == incident.escalation_step,
             incidents.c.escalation_round == incident.escalation_round)
    if policy is None or incident.escalation_step >= len(policy.steps):
        return bool(conn.execute(update(incidents).where(*guard).values(next_escalation_at=None)).rowcount)
    step = policy.steps[incident.escalation_step]
    next_step, next_round = incident.escalation_step + 1, incident.escalation_round
    if next_step >= len(policy.steps):
        next_step, next_round = 0, next_round + 1
    more = next_round <= policy.repeat
    taken = conn.execute(update(incidents).where(*guard).values(
        escalation_step=next_step, escalation_round=next_round,
        next_escalation_at=now + float(step["minutes"]) * 60 if more else None, updated_at=now)).rowcount
    if not taken:
        return False
    group_key = f"incident/{incident.id}/{incident.escalation_round}/{incident.escalation_step}"
    outcomes = [pager.page_target(conn, incident, target, group_key, now) for target in step["targets"]]
    where = f"step {incident.escalation_step + 1}" + (f", round {incident.escalation_round + 1}"
                                                      if policy.repeat else "")
    add_event(conn, incident.id, "notification", f"{policy.name} {where}: " + "; ".join(outcomes), at=now)
    if not more:
        add_event(conn, incident.id, "escalation", f"{policy.name}: that was the last step; no more pages", at=now)
    return True


def escalate_due(conn: Connection, pager: Pager, now: float) -> int:
    """Every triggered incident whose next step is due: run it. Returns how many steps ran."""
    ids = conn.scalars(select(incidents.c.id).where(incidents.c.state == "triggered",
                                                    incidents.c.next_escalation_at <= now)
                       .order_by(incidents.c.next_escalation_at).limit(100)).all()
    ran = 0
    for incident_id in ids:
        incident = get_incident(conn, incident_id)
        if incident is not None and escalate(conn, incident, pager, now):
            ran += 1
    return ran
