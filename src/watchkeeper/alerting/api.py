"""REST API for alert rules, alerts, silences and notification history (`/api/v1`).

Rules belong to a project: reading needs the project visible, changing needs write access to it.
Silences, the routing tree and notifications span projects (an alert can come from Prometheus), so
they are for admins.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Connection, select
from starlette.concurrency import run_in_threadpool

from watchkeeper.alerting import rules as R
from watchkeeper.alerting.alerts import Alert, load_alerts
from watchkeeper.alerting.backtest import backtest
from watchkeeper.alerting.dispatch import alert_json, queue_test_notification
from watchkeeper.alerting.matchers import parse_matchers
from watchkeeper.alerting.silences import Silence, expire_silence, get_silence, list_silences, save_silence
from watchkeeper.alerting.tables import notification_outbox
from watchkeeper.alerting.templates import annotation_errors
from watchkeeper.api import (
    CONFLICT,
    MAX_INT,
    AdminEditor,
    AdminReader,
    Editor,
    ProjectId,
    Reader,
    Text,
    check_project_access,
    epoch_field,
    read,
    runtime_of,
    write,
)
from watchkeeper.auth.access import Principal
from watchkeeper.auth.audit import audited
from watchkeeper.auth.projects import get_project

router = APIRouter(tags=["alerting"])
RuleId = Annotated[int, Path(ge=1, le=MAX_INT)]
MAX_SILENCE_SECONDS = 5 * 366 * 86400


async def _check_project(request: Request, project_id: int, principal: Principal, *, write: bool = False) -> None:
    exists = await read(request, lambda conn: get_project(conn, project_id)) is not None
    check_project_access(principal, project_id, exists=exists, write=write, what=f"project {project_id}")


async def _check_templates(rule: R.RuleIn) -> None:
    """422 naming each annotation whose template does not compile or goes over the template bounds
    (compiled and tried off the event loop, with the render deadline)."""
    errors = await run_in_threadpool(annotation_errors, rule.annotations)
    if errors:
        raise RequestValidationError([{"type": "value_error", "loc": ("body", "annotations", name), "msg": message}
                                      for name, message in errors.items()])


async def _rule_or_404(request: Request, rule_id: int, principal: Principal, *, write: bool = False) -> R.AlertRule:
    rule = await read(request, lambda conn: R.get_rule(conn, rule_id))
    check_project_access(principal, rule.project_id if rule else 0, exists=rule is not None, write=write,
                         what=f"alert rule {rule_id}")
    assert rule is not None
    return rule


@router.get("/projects/{project_id}/alert-rules")
async def list_rules(request: Request, project_id: ProjectId, owner: Reader) -> dict[str, Any]:
    """The project's alert rules (the default pack appears after the first evaluation round)."""
    await _check_project(request, project_id, owner)
    rules = await read(request, lambda conn: R.list_rules(conn, project_id))
    return {"rules": [r.to_api() for r in rules]}


@router.post("/projects/{project_id}/alert-rules", status_code=201)
async def create_rule(request: Request, project_id: ProjectId, body: R.RuleIn, owner: Editor) -> dict[str, Any]:
    """Add a rule, e.g. `{"name": "Checkout errors", "kind": "threshold", "severity": "high",
    "threshold": {"metric": "errors", "aggregation": "rate", "window_minutes": 5, "op": ">", "threshold": 3,
    "for_seconds": 120}, "annotations": {"summary": "{{ value }} errors/min"}}`."""
    await _check_project(request, project_id, owner, write=True)
    await _check_templates(body)
    now = runtime_of(request).clock.now()
    rule = await write(request, audited(lambda conn: R.create_rule(conn, project_id, body, now=now), owner.user_id,
                                        "rule.create", "rule", now=now, target=lambda r: r.id, name=body.name))
    return dict(rule.to_api())


@router.post("/projects/{project_id}/alert-rules/backtest")
async def backtest_rule(request: Request, project_id: ProjectId, body: R.RuleIn, owner: Editor,
                        hours: Annotated[float, Query(gt=0, le=168)] = 24) -> dict[str, Any]:
    """When this rule would have fired over the last `hours` (default 24): a list of firings with start,
    end (null: still firing) and, for thresholds, the peak value. Nothing is stored; it is part of editing
    rules, so it takes the right to change the project's rules."""
    await _check_project(request, project_id, owner, write=True)
    await _check_templates(body)
    now = runtime_of(request).clock.now()
    result: dict[str, Any] = await read(request, lambda conn: backtest(conn, project_id, body, now=now,
                                                                       hours=hours))
    return result


@router.get("/alert-rules/{rule_id}")
async def get_rule(request: Request, rule_id: RuleId, owner: Reader) -> dict[str, Any]:
    return (await _rule_or_404(request, rule_id, owner)).to_api()


def _editable(rule: R.AlertRule) -> None:
    if rule.managed_by == "file":
        raise HTTPException(409, f"alert rule {rule.id} is managed by the rules file: change it there")


@router.put("/alert-rules/{rule_id}", responses=CONFLICT)
async def replace_rule(request: Request, rule_id: RuleId, body: R.RuleIn, owner: Editor) -> dict[str, Any]:
    _editable(await _rule_or_404(request, rule_id, owner, write=True))
    await _check_templates(body)
    now = runtime_of(request).clock.now()
    rule = await write(request, audited(lambda conn: R.replace_rule(conn, rule_id, body, now=now), owner.user_id,
                                        "rule.change", "rule", now=now, target=rule_id, name=body.name))
    return dict(rule.to_api())


@router.delete("/alert-rules/{rule_id}", status_code=204, responses=CONFLICT)
async def delete_rule(request: Request, rule_id: RuleId, owner: Editor) -> None:
    _editable(await _rule_or_404(request, rule_id, owner, write=True))
    await write(request, audited(lambda conn: R.delete_rule(conn, rule_id), owner.user_id, "rule.delete", "rule",
                                 now=runtime_of(request).clock.now(), target=rule_id))


def _alert_view(alert: Alert, now: float, base_url: str) -> dict[str, Any]:
    return {**alert_json(alert, now, base_url), "state": alert.status(now), "rule_id": alert.rule_id,
            "value": alert.value, "activeAt": alert.active_at}


@router.get("/projects/{project_id}/alerts")
async def project_alerts(request: Request, project_id: ProjectId, owner: Reader,
                         state: Literal["pending", "firing", "resolved"] | None = None) -> dict[str, Any]:
    """The project's alerts from rules: pending, firing and recently resolved."""
    await _check_project(request, project_id, owner)
    runtime = runtime_of(request)
    now = runtime.clock.now()
    found = await read(request, lambda conn: load_alerts(conn, rules_only=True, project_id=project_id))
    views = [_alert_view(a, now, runtime.settings.base_url) for a in found]
    if state is not None:
        views = [v for v in views if v["state"] == state]
    return {"alerts": sorted(views, key=lambda v: v["activeAt"], reverse=True)}


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    matchers: list[Annotated[Text, Field(max_length=1000)]] = Field(
        min_length=1, max_length=50, description='Alertmanager matchers, e.g. ["alertname=\\"Monitor down\\""]')
    starts_at: float | None = epoch_field(None, "epoch seconds; default now")
    ends_at: float = epoch_field()
    comment: Text = Field(min_length=1, max_length=2000)

    @field_validator("matchers")
    @classmethod
    def _parse(cls, items: list[str]) -> list[str]:
        parse_matchers(items)
        return items


def silence_view(silence: Silence, now: float) -> dict[str, Any]:
    return {"id": silence.id, "matchers": [str(m) for m in silence.matchers], "starts_at": silence.starts_at,
            "ends_at": silence.ends_at, "created_by": silence.created_by, "comment": silence.comment,
            "state": silence.state(now), "updated_at": silence.updated_at}


@router.get("/silences")
async def silences(request: Request, owner: AdminReader) -> dict[str, Any]:
    now = runtime_of(request).clock.now()
    found = await read(request, list_silences)
    return {"silences": [silence_view(s, now) for s in found]}


@router.post("/silences", status_code=201)
async def create_silence(request: Request, body: SilenceIn, owner: AdminEditor) -> dict[str, Any]:
    now = runtime_of(request).clock.now()
    starts = body.starts_at if body.starts_at is not None else now
    if body.ends_at <= starts:
        raise HTTPException(422, "ends_at: must be after starts_at")
    if body.ends_at - starts > MAX_SILENCE_SECONDS:
        raise HTTPException(422, "ends_at: a silence may last at most 5 years")
    matchers = parse_matchers(body.matchers)
    silence = await write(request, lambda conn: save_silence(
        conn, matchers, starts_at=starts, ends_at=body.ends_at, created_by=owner.email, comment=body.comment,
        now=now))
    return silence_view(silence, now)


@router.delete("/silences/{silence_id}", status_code=204)
async def delete_silence(request: Request, silence_id: Annotated[str, Path(max_length=36)],
                         owner: AdminEditor) -> None:
    now = runtime_of(request).clock.now()
    if await read(request, lambda conn: get_silence(conn, silence_id)) is None:
        raise HTTPException(404, f"silence {silence_id} not found")
    await write(request, lambda conn: expire_silence(conn, silence_id, now=now))


@router.get("/alerting/notifications")
async def notifications(request: Request, owner: AdminReader,
                        status: Literal["pending", "sent", "failed"] | None = None,
                        limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    """Delivery history: the outbox, newest first, with attempts and the last error."""
    t = notification_outbox

    def query(conn: Connection) -> list[dict[str, Any]]:
        statement = select(t.c.id, t.c.receiver, t.c.integration, t.c.group_key, t.c.status, t.c.attempts,
                           t.c.next_attempt_at, t.c.last_error, t.c.created_at, t.c.sent_at)
        if status is not None:
            statement = statement.where(t.c.status == status)
        return [dict(r._mapping) for r in conn.execute(statement.order_by(t.c.id.desc()).limit(limit))]

    return {"notifications": await read(request, query)}


@router.post("/alerting/receivers/{name}/test", status_code=202)
async def test_receiver(request: Request, name: Annotated[str, Path(max_length=200)],
                        owner: AdminEditor) -> dict[str, Any]:
    """Send a test notification through every integration of the receiver (delivered by the outbox
    worker; see its status in `/alerting/notifications`)."""
    alerting = request.app.state.alerting
    await alerting.refresh_config()
    config = alerting.config
    runtime = runtime_of(request)
    now, url = runtime.clock.now(), runtime.settings.base_url
    try:
        ids = await write(request, audited(
            lambda conn: queue_test_notification(conn, config, name, now, url, owner.email),
            owner.user_id, "channel.test", "receiver", now=now, target=name[:64]))
    except LookupError:
        raise HTTPException(404, f"receiver {name} not found") from None
    request.app.state.alerting.wake()
    return {"queued": ids}


# On-call schedules, escalation policies and incidents: their own module, served under the same prefix.
from watchkeeper.alerting import incident_api, routing_api  # noqa: E402

router.include_router(incident_api.router)
router.include_router(routing_api.router)
