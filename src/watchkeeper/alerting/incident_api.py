"""REST API for on-call schedules, escalation policies, incidents and their metrics (`/api/v1`).

Schedules span projects: everyone logged in reads them (who is on call is no secret to the team), admins
change them. Escalation policies belong to teams: a user reads their teams' policies and, as a member,
changes them; admins see and change all (see alerting.escalation). An incident of a project is seen by
those who see the project, and changed by those who may change it; an incident of no project (e.g. from
a Prometheus alert) by every user, and changed by members and admins.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from watchkeeper.alerting import escalation as E
from watchkeeper.alerting import incidents as I
from watchkeeper.alerting import links
from watchkeeper.alerting import oncall as O
from watchkeeper.alerting.incident_metrics import incident_metrics
from watchkeeper.api import (
    CONFLICT,
    LIMITED_TOKEN,
    MAX_INT,
    NOT_FOUND,
    AdminEditor,
    Editor,
    Reader,
    Text,
    epoch_field,
    epoch_query,
    read,
    runtime_of,
    write,
)
from watchkeeper.auth.access import Principal
from watchkeeper.auth.projects import get_project
from watchkeeper.auth.teams import get_team, list_teams

router = APIRouter(tags=["incidents"])
Id = Annotated[int, Path(ge=1, le=MAX_INT)]
MAX_DAYS = 90


def _now(request: Request) -> float:
    return runtime_of(request).clock.now()


# --- schedules ---


@router.get("/oncall/schedules")
async def schedules(request: Request, owner: Reader) -> dict[str, Any]:
    """Every schedule with who is on call now (`on_call_user_id`)."""
    now = _now(request)
    found = await read(request, O.list_schedules)
    return {"schedules": [s.to_api() | {"on_call_user_id": s.on_call_at(now)} for s in found]}


async def _schedule(request: Request, schedule_id: int) -> O.Schedule:
    schedule = await read(request, lambda conn: O.get_schedule(conn, schedule_id))
    if schedule is None:
        raise HTTPException(404, f"schedule {schedule_id} not found")
    return schedule


@router.post("/oncall/schedules", status_code=201)
async def create_schedule(request: Request, body: O.ScheduleIn, owner: AdminEditor) -> dict[str, Any]:
    """E.g. `{"name": "Ops", "time_zone": "Europe/Berlin", "layers": [{"rotation": "weekly", "handoff": "09:00",
    "start_date": "2026-01-05", "users": [2, 3]}]}`."""
    now = _now(request)
    try:
        schedule = await write(request, lambda conn: O.create_schedule(conn, body, now=now))
    except O.ScheduleError as exc:
        raise HTTPException(422, str(exc)) from None
    return dict(schedule.to_api())


@router.get("/oncall/schedules/{schedule_id}")
async def get_schedule(request: Request, schedule_id: Id, owner: Reader) -> dict[str, Any]:
    schedule = await _schedule(request, schedule_id)
    return schedule.to_api() | {"on_call_user_id": schedule.on_call_at(_now(request))}


@router.put("/oncall/schedules/{schedule_id}")
async def replace_schedule(request: Request, schedule_id: Id, body: O.ScheduleIn, owner: AdminEditor) -> dict[str, Any]:
    now = _now(request)
    try:
        schedule = await write(request, lambda conn: O.replace_schedule(conn, schedule_id, body, now=now))
    except O.ScheduleError as exc:
        raise HTTPException(422, str(exc)) from None
    if schedule is None:
        raise HTTPException(404, f"schedule {schedule_id} not found")
    return dict(schedule.to_api())


@router.delete("/oncall/schedules/{schedule_id}", status_code=204)
async def delete_schedule(request: Request, schedule_id: Id, owner: AdminEditor) -> None:
    if not await write(request, lambda conn: O.delete_schedule(conn, schedule_id)):
        raise HTTPException(404, f"schedule {schedule_id} not found")


@router.get("/oncall/schedules/{schedule_id}/on-call")
async def on_call(request: Request, schedule_id: Id, owner: Reader,
                  at: Annotated[float | None, epoch_query("epoch seconds; default now")] = None
                  ) -> dict[str, Any]:
    """Who is on call now, or at `at`."""
    schedule = await _schedule(request, schedule_id)
    when = _now(request) if at is None else at
    return {"schedule_id": schedule_id, "at": when, "user_id": schedule.on_call_at(when)}


@router.get("/oncall/schedules/{schedule_id}/shifts")
async def shifts(request: Request, schedule_id: Id, owner: Reader,
                 days: Annotated[int, Query(ge=1, le=MAX_DAYS)] = 14) -> dict[str, Any]:
    """The shifts of the next `days` days (overrides applied), from now."""
    schedule = await _schedule(request, schedule_id)
    now = _now(request)
    return {"schedule_id": schedule_id, "shifts": schedule.shifts(now, now + days * 86400)}


class OverrideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: int = Field(ge=1, le=MAX_INT)
    starts_at: float = epoch_field()
    ends_at: float = epoch_field()


@router.post("/oncall/schedules/{schedule_id}/overrides", status_code=201)
async def add_override(request: Request, schedule_id: Id, body: OverrideIn, owner: AdminEditor) -> dict[str, Any]:
    """User `user_id` covers the schedule from `starts_at` to `ends_at` (epoch seconds)."""
    await _schedule(request, schedule_id)
    now = _now(request)
    try:
        override_id = await write(request, lambda conn: O.add_override(conn, schedule_id, body.user_id,
                                                                       body.starts_at, body.ends_at, now=now))
    except O.ScheduleError as exc:
        raise HTTPException(422, str(exc)) from None
    return {"id": override_id, **body.model_dump()}


@router.delete("/oncall/schedules/{schedule_id}/overrides/{override_id}", status_code=204)
async def delete_override(request: Request, schedule_id: Id, override_id: Id, owner: AdminEditor) -> None:
    if not await write(request, lambda conn: O.delete_override(conn, schedule_id, override_id)):
        raise HTTPException(404, f"override {override_id} not found")


# --- escalation policies ---


def _config(request: Request) -> Any:
    return request.app.state.alerting.config


async def _policy_teams(request: Request, principal: Principal) -> frozenset[int] | None:
    """The teams whose policies the principal sees; None = all (an admin)."""
    if principal.role == "admin":
        return None
    found = await read(request, lambda conn: list_teams(conn, user_id=principal.user_id))
    return frozenset(t.id for t in found)


async def _visible_policy(request: Request, policy_id: int, principal: Principal) -> E.Policy:
    policy = await read(request, lambda conn: E.get_policy(conn, policy_id))
    teams = await _policy_teams(request, principal)
    if policy is None or (teams is not None and policy.team_id not in teams):
        raise HTTPException(404, f"escalation policy {policy_id} not found")
    return policy


async def _owned(request: Request, body: E.PolicyIn, principal: Principal) -> E.PolicyIn:
    """The policy as it will be stored: owned by one of the principal's teams (a member's policy must be;
    with one team, that is the default). Raises 403/422 naming why not."""
    if principal.scope is not None:
        raise HTTPException(403, "a project-limited token cannot change escalation policies (they span projects)")
    teams = await _policy_teams(request, principal)
    if teams is None:
        if body.team_id is not None and await read(request, lambda conn: get_team(conn, body.team_id or 0)) is None:
            raise HTTPException(422, f"team_id: no team {body.team_id}")
        return body
    if body.team_id is None:
        if len(teams) != 1:
            raise HTTPException(422, "team_id: say which of your teams owns the policy" if teams else
                                "team_id: you are in no team; an administrator can add you to one")
        return body.model_copy(update={"team_id": next(iter(teams))})
    if body.team_id not in teams:
        raise HTTPException(422, f"team_id: you are not in team {body.team_id}")
    return body


@router.get("/escalation-policies")
async def policies(request: Request, owner: Reader) -> dict[str, Any]:
    """The policies of your teams (every policy for an admin)."""
    teams = await _policy_teams(request, owner)
    return {"policies": [p.to_api() for p in await read(request, lambda conn: E.list_policies(conn, teams))]}


@router.post("/escalation-policies", status_code=201)
async def create_policy(request: Request, body: E.PolicyIn, owner: Editor) -> dict[str, Any]:
    """E.g. `{"name": "Ops", "team_id": 1, "repeat": 1, "steps": [{"targets": [{"kind": "schedule", "id": 1}],
    "minutes": 10}, {"targets": [{"kind": "user", "id": 2}, {"kind": "receiver", "name": "slack"}],
    "minutes": 10}]}`."""
    body = await _owned(request, body, owner)
    now, config = _now(request), _config(request)
    try:
        policy = await write(request, lambda conn: E.create_policy(conn, body, config, now=now))
    except E.PolicyError as exc:
        raise HTTPException(422, str(exc)) from None
    return dict(policy.to_api())


@router.get("/escalation-policies/{policy_id}")
async def get_policy(request: Request, policy_id: Id, owner: Reader) -> dict[str, Any]:
    return dict((await _visible_policy(request, policy_id, owner)).to_api())


@router.put("/escalation-policies/{policy_id}")
async def replace_policy(request: Request, policy_id: Id, body: E.PolicyIn, owner: Editor) -> dict[str, Any]:
    """Replace a policy of one of your teams (it may move to another of your teams)."""
    await _visible_policy(request, policy_id, owner)
    body = await _owned(request, body, owner)
    now, config = _now(request), _config(request)
    try:
        policy = await write(request, lambda conn: E.replace_policy(conn, policy_id, body, config, now=now))
    except E.PolicyError as exc:
        raise HTTPException(422, str(exc)) from None
    if policy is None:
        raise HTTPException(404, f"escalation policy {policy_id} not found")
    return dict(policy.to_api())


@router.delete("/escalation-policies/{policy_id}", status_code=204)
async def delete_policy(request: Request, policy_id: Id, owner: Editor) -> None:
    await _visible_policy(request, policy_id, owner)
    if owner.scope is not None:
        raise HTTPException(403, "a project-limited token cannot change escalation policies (they span projects)")
    if not await write(request, lambda conn: E.delete_policy(conn, policy_id)):
        raise HTTPException(404, f"escalation policy {policy_id} not found")


# --- incidents ---


def visible_projects(principal: Principal) -> frozenset[int] | None:
    """The projects whose incidents the principal sees (None = all)."""
    if principal.scope is None:
        return principal.projects
    return principal.scope if principal.projects is None else principal.scope & principal.projects


def may_see(principal: Principal, incident: I.Incident) -> bool:
    """An incident of no project is the account's: not for a token limited to projects."""
    if incident.project_id is None:
        return principal.scope is None
    return principal.can_read(incident.project_id)


def may_change(principal: Principal, incident: I.Incident) -> bool:
    if incident.project_id is None:
        return principal.may_write and principal.scope is None
    return principal.can_write(incident.project_id)


async def incident_for(request: Request, incident_id: int, principal: Principal, *, change: bool = False
                       ) -> I.Incident:
    incident = await read(request, lambda conn: I.get_incident(conn, incident_id))
    if incident is None or not may_see(principal, incident):
        raise HTTPException(404, f"incident {incident_id} not found")
    if change and not may_change(principal, incident):
        raise HTTPException(403, "you may read this incident but not change it")
    return incident


@router.get("/incidents")
async def list_incidents(request: Request, owner: Reader,
                         state: Annotated[list[Literal[I.STATES]] | None, Query()] = None,  # type: ignore[valid-type]
                         severity: Literal["critical", "high", "medium", "low"] | None = None,
                         limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    """Newest first; `state` may repeat (`?state=triggered&state=acknowledged`)."""
    visible = visible_projects(owner)
    found = await read(request, lambda conn: I.list_incidents(conn, states=state, severity=severity,
                                                              project_ids=visible, limit=limit,
                                                              unowned=owner.scope is None))
    return {"incidents": [i.to_api() for i in found]}


class IncidentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Text = Field(min_length=1, max_length=500)
    severity: Literal["critical", "high", "medium", "low"] = "high"
    project_id: int | None = Field(None, ge=1, le=MAX_INT)
    impact_started_at: float | None = epoch_field(None, "epoch seconds; default now")


@router.post("/incidents", status_code=201, responses=NOT_FOUND)
async def declare_incident(request: Request, body: IncidentIn, owner: Editor) -> dict[str, Any]:
    """Declare an incident by hand; it escalates like one from an alert."""
    if body.project_id is None and owner.scope is not None:
        raise HTTPException(403, LIMITED_TOKEN + ": declare it in one of the token's projects (project_id)")
    if body.project_id is not None and not owner.can_write(body.project_id):
        raise HTTPException(404 if not owner.can_read(body.project_id) else 403,
                            f"project {body.project_id} not found or not yours to change")
    now = _now(request)

    def declare(conn: Connection) -> I.Incident | None:
        if body.project_id is not None and get_project(conn, body.project_id) is None:
            return None  # an admin sees every project id, but this one does not exist
        return I.declare(conn, title=body.title, severity=body.severity, now=now, project_id=body.project_id,
                         impact_started_at=body.impact_started_at, created_by=owner.user_id,
                         escalation_policy_id=E.policy_for(conn, body.project_id), source=owner.email)

    incident = await write(request, declare)
    if incident is None:
        raise HTTPException(404, f"project {body.project_id} not found or not yours to change")
    return incident.to_api()


@router.get("/incidents/metrics")
async def metrics(request: Request, owner: Reader,
                  months: Annotated[int, Query(ge=1, le=36)] = 6) -> dict[str, Any]:
    """MTTD, MTTA, MTTR (seconds), incidents, alert volume and the share of alerts acknowledged, per
    severity and month (UTC), over the last `months` months. See docs/alerting.md for the definitions."""
    now = _now(request)
    visible = visible_projects(owner)
    return {"metrics": await read(request, lambda conn: incident_metrics(conn, now, months, visible,
                                                                        unowned=owner.scope is None))}


@router.get("/incidents/{incident_id}")
async def get_incident(request: Request, incident_id: Id, owner: Reader) -> dict[str, Any]:
    """The incident with its timeline and alerts; `source_url` is the page of what caused it (its first
    alert's issue, monitor or project; null for an incident declared by hand), and each alert's too."""
    incident = await incident_for(request, incident_id, owner)
    base = runtime_of(request).settings.base_url

    def load(conn: Connection) -> dict[str, Any]:
        alerts = [a | {"source_url": links.absolute(base, a["source"]) if a["source"] else None}
                  for a in I.incident_alerts(conn, incident_id)]
        source = I.incident_source(conn, incident_id)
        return {"timeline": I.timeline(conn, incident_id), "alerts": alerts,
                "source_url": links.absolute(base, source) if source else None}

    return incident.to_api() | await read(request, load)


class StateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: Literal["acknowledged", "investigating", "mitigated", "resolved"]


@router.post("/incidents/{incident_id}/state", responses=CONFLICT)
async def change_state(request: Request, incident_id: Id, body: StateIn, owner: Editor) -> dict[str, Any]:
    """Move the incident forward (acknowledging stops its escalation); 409 when it is there already."""
    await incident_for(request, incident_id, owner, change=True)
    now = _now(request)
    try:
        incident = await write(request, lambda conn: I.change_state(conn, incident_id, body.state, now=now,
                                                                    actor_user_id=owner.user_id, via="API"))
    except I.IncidentError as exc:
        raise HTTPException(409, str(exc)) from None
    return incident.to_api()


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Text = Field(min_length=1, max_length=10_000)


@router.post("/incidents/{incident_id}/notes", status_code=201)
async def add_note(request: Request, incident_id: Id, body: NoteIn, owner: Editor) -> dict[str, Any]:
    await incident_for(request, incident_id, owner, change=True)
    now = _now(request)
    await write(request, lambda conn: I.add_note(conn, incident_id, body.text, now=now, actor_user_id=owner.user_id))
    return {"incident_id": incident_id, "at": now, "text": body.text}


@router.get("/incidents/{incident_id}/postmortem", response_class=Response,
            responses={200: {"content": {"text/markdown": {}}}})
async def get_postmortem(request: Request, incident_id: Id, owner: Reader, download: bool = False) -> Response:
    """The post-mortem as `text/markdown` (a draft from the timeline until someone saves one)."""
    await incident_for(request, incident_id, owner)
    text = await read(request, lambda conn: I.postmortem(conn, incident_id))
    headers = {"Content-Disposition": f'attachment; filename="incident-{incident_id}-postmortem.md"'} \
        if download else {}
    return Response(text, media_type="text/markdown; charset=utf-8", headers=headers)


class PostmortemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    markdown: Text = Field(max_length=200_000)


@router.put("/incidents/{incident_id}/postmortem")
async def save_postmortem(request: Request, incident_id: Id, body: PostmortemIn, owner: Editor) -> dict[str, Any]:
    await incident_for(request, incident_id, owner, change=True)
    now = _now(request)
    await write(request, lambda conn: I.save_postmortem(conn, incident_id, body.markdown, now=now,
                                                        actor_user_id=owner.user_id))
    return {"incident_id": incident_id, "saved_at": now}


class IncidentSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    severities: list[Literal["critical", "high", "medium", "low"]] | None = Field(
        description="alert severities that declare incidents in this project; null = the server's setting")


@router.put("/projects/{project_id}/incident-settings")
async def project_incident_settings(request: Request, project_id: Id, body: IncidentSettingsIn,
                                    owner: Editor) -> dict[str, Any]:
    """Which severities of this project's alerts declare incidents (`[]` = none)."""
    from watchkeeper.auth.projects import get_project

    exists = await read(request, lambda conn: get_project(conn, project_id)) is not None
    if not exists or not owner.can_read(project_id):
        raise HTTPException(404, f"project {project_id} not found")
    if not owner.can_write(project_id):
        raise HTTPException(403, "you may read this project but not change it")
    await write(request, lambda conn: I.save_project_severities(conn, project_id, body.severities))
    return {"project_id": project_id, "severities": body.severities}
