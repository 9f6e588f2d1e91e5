"""The incident loop: turns firing alerts into incidents and runs escalation steps when they are due.

Each round, in one writer transaction: every firing alert not seen before is recorded as an occurrence
(all severities: the alert volume of the metrics); one of an incident severity for its project (and not
silenced) joins the open incident of its alert group or opens one; occurrences whose alert resolved or
went away are closed on their incident's timeline; then due escalation steps run. Everything it knows
is in the database, so a restart carries on where the last round stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, insert, select, update

from watchkeeper.alerting import links
from watchkeeper.alerting.alerts import Alert
from watchkeeper.alerting.dispatch import Dispatcher, stored_key, take_snapshot
from watchkeeper.alerting.escalation import Pager, escalate_due, policy_for
from watchkeeper.alerting.incident_tables import alert_occurrences, incident_settings, incidents
from watchkeeper.alerting.incidents import add_event, declare

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


def declare_from_alerts(conn: Connection, dispatcher: Dispatcher, now: float, severities: Collection[str]) -> int:
    """One look at the alerts; returns how many incidents it opened."""
    snapshot = take_snapshot(conn, now)
    firing = [a for a in snapshot.alerts if a.state == "firing" and not a.resolved(now)]
    muted = dispatcher.muted(snapshot, now) if firing else set()
    o = alert_occurrences
    open_rows = conn.execute(select(o.c.fingerprint, o.c.starts_at, o.c.incident_id, o.c.name)
                             .where(o.c.resolved_at.is_(None))).all()
    known = {(r.fingerprint, r.starts_at) for r in open_rows}
    seen: set[tuple[str, float]] = set()
    cache: dict[int | None, Collection[str]] = {}
    opened = 0
    for alert in sorted(firing, key=lambda a: (a.starts_at or a.active_at, a.fingerprint)):
        start = alert.starts_at or alert.active_at
        seen.add((alert.fingerprint, start))
        if (alert.fingerprint, start) in known:
            continue
        project_id, severity = _project_of(alert), alert.labels.get("severity", "")
        incident_id = None
        if alert.fingerprint not in muted and severity in severities_for(conn, project_id, severities, cache):
            routes = dispatcher.root.match(alert.labels)
            key = stored_key(routes[0].group_key(alert.labels)) if routes else None
            incident_id = conn.scalar(select(incidents.c.id).where(incidents.c.group_key == key,
                                                                   incidents.c.state != "resolved")
                                      .order_by(incidents.c.id.desc()).limit(1))
            if incident_id is None:
                incident = declare(conn, title=_name(alert), severity=severity, now=now, project_id=project_id,
                                   impact_started_at=start, group_key=key,
                                   escalation_policy_id=policy_for(conn, project_id), source="an alert")
                incident_id, opened = incident.id, opened + 1
            add_event(conn, incident_id, "alert.fired", f"{_name(alert)} ({severity})", at=min(start, now))
        conn.execute(insert(o).values(fingerprint=alert.fingerprint, starts_at=start, project_id=project_id,
                                      severity=severity[:16] or "none", name=_name(alert), incident_id=incident_id))
    for row in open_rows:
        if (row.fingerprint, row.starts_at) in seen:
            continue
        conn.execute(update(o).where(o.c.fingerprint == row.fingerprint, o.c.starts_at == row.starts_at)
                     .values(resolved_at=now))
        if row.incident_id is not None:
            add_event(conn, row.incident_id, "alert.resolved", row.name, at=now)
    return opened


class Responder:
    """The loop of one server process; `round()` is one pass (the tests call it with a manual clock)."""

    def __init__(self, alerting: Alerting) -> None:
        self.alerting = alerting
        self.settings = alerting.settings
        self.dispatcher = Dispatcher(alerting.config)  # for routes and mutes only: groups are the dispatcher's
        self._secret: bytes | None = None

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
        pager = await self.pager()
        severities = list(self.settings.incident_severities)

        def work(conn: Connection) -> tuple[int, int]:
            return declare_from_alerts(conn, self.dispatcher, now, severities), escalate_due(conn, pager, now)

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

