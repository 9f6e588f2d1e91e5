"""The incident loop: turns firing alerts into incidents and runs escalation steps when they are due.

Each round reads and matches the alerts on a reader connection, then, in one writer transaction: every
firing alert not seen before is recorded as an occurrence (all severities: the alert volume of the
metrics); one of an incident severity for its project (and not silenced) joins the open incident of its
alert group or opens one; occurrences whose alert resolved or went away are closed on their incident's
timeline; then due escalation steps run. Everything it knows is in the database, so a restart carries
on where the last round stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, bindparam, insert, select, update

from watchkeeper.alerting import links
from watchkeeper.alerting.alerts import Alert
from watchkeeper.alerting.dispatch import Dispatcher, stored_key, take_snapshot
from watchkeeper.alerting.escalation import Pager, escalate_due, policy_for
from watchkeeper.alerting.incident_tables import alert_occurrences, incident_events, incident_settings, incidents
from watchkeeper.alerting.incidents import declare
from watchkeeper.alerting.tables import alerts
from watchkeeper.config import ConfigError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from watchkeeper.alerting.service import Alerting

log = logging.getLogger(__name__)


def _project_of(alert: Alert) -> int | None:
    if alert.project_id is not None:
        return alert.project_id
    value = alert.labels.get("project_id", "")
    return int(value) if value.isdigit() and len(value) < 10 else None


def _name(alert: Alert) -> str:
    return (alert.annotations.get("summary") or alert.labels.get("alertname") or alert.fingerprint)[:500]


def severities_for(conn: Connection, project_id: int | None, default: Collection[str],
                   cache: dict[int | None, Collection[str]]) -> Collection[str]:
    if project_id not in cache:
        chosen = None
        if project_id is not None:
            chosen = conn.scalar(select(incident_settings.c.severities)
                                 .where(incident_settings.c.project_id == project_id))
        cache[project_id] = orjson.loads(chosen) if chosen is not None else default
    return cache[project_id]


def _open_occurrences(conn: Connection) -> list[Any]:
    o = alert_occurrences
    return list(conn.execute(select(o.c.fingerprint, o.c.starts_at, o.c.incident_id, o.c.name)
                             .where(o.c.resolved_at.is_(None))))


def _firing(alerts: list[Alert], now: float) -> list[Alert]:
    return [a for a in alerts if a.state == "firing" and not a.resolved(now)]


def anything_to_do(conn: Connection, now: float) -> bool:
    """Whether a round would change anything: an alert fired or ended since the last one, or an
    escalation step is due. Asked on a read connection, so quiet rounds never wait for the writer."""
    rows = conn.execute(select(alerts.c.fingerprint, alerts.c.starts_at, alerts.c.active_at, alerts.c.ends_at)
                        .where(alerts.c.state == "firing"))
    firing = {(r.fingerprint, r.starts_at or r.active_at) for r in rows if r.ends_at is None or r.ends_at > now}
    known = {(r.fingerprint, r.starts_at) for r in _open_occurrences(conn)}
    if firing != known:
        return True
    due = select(incidents.c.id).where(incidents.c.state == "triggered", incidents.c.next_escalation_at <= now)
    return conn.execute(due.limit(1)).first() is not None


@dataclass
class AlertPlan:
    """What one look at the alerts decided, on a reader connection (`plan_from_alerts`); the writer
    applies it (`apply_alert_plan`). Only the responder of the process holding the background lease
    writes occurrences, so nothing else can record the same alert between the two."""

    new: list[dict[str, Any]] = field(default_factory=list)  # occurrences to record, with "incident" wishes
    ended: list[Any] = field(default_factory=list)  # open occurrences whose alert resolved or went away

    @property
    def empty(self) -> bool:
        return not self.new and not self.ended


def plan_from_alerts(conn: Connection, dispatcher: Dispatcher, now: float, severities: Collection[str]) -> AlertPlan:
    """Read every firing alert and decide (all the reading and matching, off the writer)."""
    snapshot = take_snapshot(conn, now)
    firing = _firing(snapshot.alerts, now)
    open_rows = _open_occurrences(conn)
    known = {(r.fingerprint, r.starts_at) for r in open_rows}
    # Silences, maintenance and inhibition only matter for alerts not seen before.
    muted = dispatcher.muted(snapshot, now) if any(
        (a.fingerprint, a.starts_at or a.active_at) not in known for a in firing) else set()
    plan = AlertPlan()
    seen: set[tuple[str, float]] = set()
    cache: dict[int | None, Collection[str]] = {}
    for alert in sorted(firing, key=lambda a: (a.starts_at or a.active_at, a.fingerprint)):
        start = alert.starts_at or alert.active_at
        seen.add((alert.fingerprint, start))
        if (alert.fingerprint, start) in known:
            continue
        project_id, severity = _project_of(alert), alert.labels.get("severity", "")
        key: str | None = None
        wants_incident = alert.fingerprint not in muted and severity in severities_for(conn, project_id, severities,
                                                                                        cache)
        if wants_incident:
            routes = dispatcher.root.match(alert.labels)
            key = stored_key(routes[0].group_key(alert.labels)) if routes else None
        plan.new.append({"fingerprint": alert.fingerprint, "starts_at": start, "project_id": project_id,
                         "severity": severity, "name": _name(alert), "impact": min(start, alert.active_at),
                         "incident": wants_incident, "group_key": key})
    plan.ended = [row for row in open_rows if (row.fingerprint, row.starts_at) not in seen]
    return plan


def apply_alert_plan(conn: Connection, plan: AlertPlan, now: float) -> int:
    """Record the plan's occurrences, opening or joining incidents; returns how many incidents it opened.
    Rows are written in a few executemany calls, so an alert storm holds the writer briefly."""
    o, events = alert_occurrences, incident_events
    # Read here, not in the plan: a person may have resolved an incident meanwhile.
    open_incidents: dict[str | None, int] = {
        key: incident_id for incident_id, key in conn.execute(
            select(incidents.c.id, incidents.c.group_key).where(incidents.c.state != "resolved")
            .order_by(incidents.c.id))}
    occurrences: list[dict[str, Any]] = []
    timeline: list[dict[str, Any]] = []
    opened = 0
    for new in plan.new:
        incident_id = None
        severity = new["severity"]
        if new["incident"]:
            key = new["group_key"]
            incident_id = open_incidents.get(key)
            if incident_id is None:
                incident = declare(conn, title=new["name"], severity=severity, now=now, project_id=new["project_id"],
                                   impact_started_at=new["impact"], group_key=key,
                                   escalation_policy_id=policy_for(conn, new["project_id"]), source="an alert")
                incident_id = open_incidents[key] = incident.id
                opened += 1
            timeline.append({"incident_id": incident_id, "at": min(new["starts_at"], now), "kind": "alert.fired",
                             "text": f"{new['name']} ({severity})", "actor_user_id": None})
        occurrences.append({"fingerprint": new["fingerprint"], "starts_at": new["starts_at"],
                            "project_id": new["project_id"], "severity": severity[:16] or "none",
                            "name": new["name"], "incident_id": incident_id, "resolved_at": None})
    if occurrences:
        conn.execute(insert(o), occurrences)
    if plan.ended:
        conn.execute(update(o).where(o.c.fingerprint == bindparam("b_fingerprint"),
                                     o.c.starts_at == bindparam("b_starts_at")).values(resolved_at=now),
                     [{"b_fingerprint": r.fingerprint, "b_starts_at": r.starts_at} for r in plan.ended])
        timeline += [{"incident_id": r.incident_id, "at": now, "kind": "alert.resolved", "text": r.name,
                      "actor_user_id": None} for r in plan.ended if r.incident_id is not None]
    if timeline:
        conn.execute(insert(events), timeline)
    return opened


class Responder:
    """The loop of one server process; `round()` is one pass (the tests call it with a manual clock)."""

    def __init__(self, alerting: Alerting) -> None:
        self.alerting = alerting
        self.settings = alerting.settings
        self.dispatcher = Dispatcher(alerting.config)  # for routes and mutes only: groups are the dispatcher's
        self._secret: bytes | None = None
        name = self.settings.oncall_email_receiver
        if name is not None:
            receiver = alerting.config.receiver(name)
            if receiver is None or not receiver.email_configs:
                raise ConfigError(f"setting 'alerting.oncall_email_receiver': the routing file has no receiver "
                                  f"{name!r} with an e-mail integration")

    async def pager(self) -> Pager:
        if self._secret is None:
            configured = self.settings.link_secret or self.alerting.runtime.settings.secret_key
            if configured is not None:
                self._secret = configured.get_secret_value().encode()
            else:
                self._secret = await self.alerting.write(links.stored_secret)
        return Pager(self.alerting.config, self.alerting.runtime.settings.base_url, self._secret,
                     self.settings.link_expiry_seconds, self.settings.oncall_email_receiver)

    async def round(self) -> tuple[int, int]:
        """Declare incidents from new alerts, then run due escalation steps: (opened, steps run)."""
        now = self.alerting.runtime.clock.now()
        engine = self.alerting.runtime.engine

        severities = list(self.settings.incident_severities)

        def look() -> AlertPlan | None:
            """None when the round has nothing to do; else what the alerts ask for (read and matched
            here, on a reader: under an alert storm that is most of the work, and the writer is shared)."""
            with engine.connect() as conn:
                if not anything_to_do(conn, now):
                    return None
                return plan_from_alerts(conn, self.dispatcher, now, severities)

        plan = await asyncio.to_thread(look)
        if plan is None:
            return 0, 0
        pager = await self.pager()

        def work(conn: Connection) -> tuple[int, int]:
            return apply_alert_plan(conn, plan, now), escalate_due(conn, pager, now)

        opened, steps = await self.alerting.write(work)
        if steps:
            self.alerting.wake()  # deliver the pages now, not at the next dispatch interval
        return opened, steps

    async def run(self) -> None:
        while True:
            try:
                await self.round()
            except Exception:
                log.exception("incident round failed; will retry")
            await asyncio.sleep(self.settings.incident_interval_seconds)


def responder_of(app: FastAPI) -> Responder:
    """The app's Responder (made on first use)."""
    found: Responder | None = getattr(app.state, "responder", None)
    if found is None:
        found = app.state.responder = Responder(app.state.alerting)
    return found


def start(app: FastAPI) -> None:
    """Run the incident loop for the life of the app (called from alerting.service.start)."""
    runtime: Any = app.state.runtime
    runtime.tasks.append(asyncio.create_task(responder_of(app).run()))

