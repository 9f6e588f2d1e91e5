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
from sqlalchemy import Connection, and_, bindparam, exists, func, insert, or_, select, union, update

from watchkeeper.alerting import links
from watchkeeper.alerting.alerts import Alert, alert_from_row, version_counts
from watchkeeper.alerting.dispatch import Dispatcher, firing_labels, monitor_of, stored_key
from watchkeeper.alerting.escalation import Pager, escalate_due, policy_for
from watchkeeper.alerting.incident_tables import alert_occurrences, incident_events, incident_settings, incidents
from watchkeeper.alerting.incidents import declare
from watchkeeper.alerting.routing import AlertingConfig
from watchkeeper.alerting.silences import active_silences
from watchkeeper.alerting.tables import alerts
from watchkeeper.config import ConfigError
from watchkeeper.lib.periodic import repeat
from watchkeeper.uptime.maintenance import in_maintenance, list_windows

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


# A round reads only the alerts changed since a little before its last look (by version, as the
# dispatcher does); everything (two anti-joins over all firing alerts and all open occurrences, most of
# a round's work under an alert storm) is looked at in the first round and then this often, which also
# finds the occurrences of alerts deleted outright (their rule deleted).
FULL_LOOK_SECONDS = 60.0
OVERLAP_SECONDS = 60.0

# New occurrences recorded per round at most: an alert storm (tens of thousands of new alerts at once) is
# taken in rounds of this many, the oldest first, so a round's reads and writes stay bounded in memory
# and in writer time. The next round follows at once while there are more (see `Responder.run`).
MAX_NEW_PER_ROUND = 2000


def _start() -> Any:
    return func.coalesce(alerts.c.starts_at, alerts.c.active_at)


def _firing_now(now: float) -> Any:
    """Alerts firing now (not pending, not resolved)."""
    return and_(alerts.c.state == "firing", or_(alerts.c.ends_at.is_(None), alerts.c.ends_at > now))


def _has_open_occurrence() -> Any:
    """The alert (of the outer query) has an open occurrence of its current firing (fingerprint and start)."""
    o = alert_occurrences
    return exists().where(o.c.fingerprint == alerts.c.fingerprint, o.c.starts_at == _start(),
                          o.c.resolved_at.is_(None))


def _occurrence_still_firing(now: float) -> Any:
    """The open occurrence (of the outer query) is of an alert still firing with the same start."""
    o = alert_occurrences
    return exists().where(alerts.c.fingerprint == o.c.fingerprint, _start() == o.c.starts_at, _firing_now(now))


def _new_firing(conn: Connection, now: float, limit: int, versions: Collection[float] | None = None) -> list[Alert]:
    """Firing alerts without an open occurrence (fired since the last round), oldest first, at most `limit`:
    the database compares them with the occurrences, so a round holds only these in memory. With
    `versions`, only the alerts of those versions (`updated_at`) are looked at."""
    query = select(alerts).where(_firing_now(now), ~_has_open_occurrence())
    if versions is not None:
        query = query.where(alerts.c.updated_at.in_(sorted(versions)))
    return [alert_from_row(row) for row in conn.execute(query.order_by(_start(), alerts.c.fingerprint).limit(limit))]


def _ended_occurrences(conn: Connection, now: float, limit: int, versions: Collection[float] | None = None,
                       ended_after: float = 0.0) -> list[Any]:
    """Open occurrences whose alert resolved, went back to pending or went away, at most `limit`. With
    `versions`, only those of the alerts of those versions, or whose `ends_at` passed after `ended_after`
    (not those whose alert was deleted outright with its rule: the full look of `Responder.round` finds
    them)."""
    o = alert_occurrences
    columns = (o.c.fingerprint, o.c.starts_at, o.c.incident_id, o.c.name)
    order = (o.c.starts_at, o.c.fingerprint)
    if versions is None:
        query = select(*columns).where(o.c.resolved_at.is_(None), ~_occurrence_still_firing(now))
        return list(conn.execute(query.order_by(*order).limit(limit)))
    changed = union(select(alerts.c.fingerprint).where(alerts.c.updated_at.in_(sorted(versions))),
                    select(alerts.c.fingerprint).where(alerts.c.ends_at > ended_after, alerts.c.ends_at <= now))
    # `resolved_at + 0`: not by the index of open occurrences (SQLite would take it and look at every
    # open occurrence), but from the few changed alerts to their occurrences by primary key.
    query = select(*columns).where((o.c.resolved_at + 0).is_(None), o.c.fingerprint.in_(changed),
                                   ~_occurrence_still_firing(now))
    return list(conn.execute(query.order_by(*order).limit(limit)))


def _ended_since(conn: Connection, since: float, now: float) -> bool:
    """Whether an alert's `ends_at` passed after `since` (an alert resolves when its time comes)."""
    query = select(alerts.c.fingerprint).where(alerts.c.ends_at > since, alerts.c.ends_at <= now)
    return conn.execute(query.limit(1)).first() is not None


def escalation_due(conn: Connection, now: float) -> bool:
    """Whether an escalation step of a triggered incident is due."""
    due = select(incidents.c.id).where(incidents.c.state == "triggered", incidents.c.next_escalation_at <= now)
    return conn.execute(due.limit(1)).first() is not None


def anything_to_do(conn: Connection, now: float) -> bool:
    """Whether a round would change anything: an alert fired or ended since the last one, or an
    escalation step is due. Asked on a read connection, so quiet rounds never wait for the writer; the
    comparison of firing alerts with open occurrences is two anti-joins, not a copy of either in memory."""
    fired = select(alerts.c.fingerprint).where(_firing_now(now), ~_has_open_occurrence())
    if conn.execute(fired.limit(1)).first() is not None:
        return True
    o = alert_occurrences
    ended = select(o.c.fingerprint).where(o.c.resolved_at.is_(None), ~_occurrence_still_firing(now))
    if conn.execute(ended.limit(1)).first() is not None:
        return True
    return escalation_due(conn, now)


@dataclass
class AlertPlan:
    """What one look at the alerts decided, on a reader connection (`plan_from_alerts`); the writer
    applies it (`apply_alert_plan`). Only the responder of the process holding the background lease
    writes occurrences, so nothing else can record the same alert between the two."""

    new: list[dict[str, Any]] = field(default_factory=list)  # occurrences to record, with "incident" wishes
    ended: list[Any] = field(default_factory=list)  # open occurrences whose alert resolved or went away
    # More alerts fired (or ended) than one round takes (MAX_NEW_PER_ROUND): the next round follows at once.
    more: bool = False

    @property
    def empty(self) -> bool:
        return not self.new and not self.ended


def _muted(conn: Connection, dispatcher: Dispatcher, targets: list[Alert], now: float) -> set[str]:
    """Fingerprints of `targets` (new firing alerts) left out of incidents: silenced, in a maintenance
    window, or inhibited by an alert firing now."""
    silences = active_silences(conn, now)
    muted = {a.fingerprint for a in targets if any(s.mutes(a.labels, now) for s in silences)}
    monitors = {a.fingerprint: m for a in targets if (m := monitor_of(a)) is not None}
    if monitors:
        windows = list_windows(conn, {project for project, _ in monitors.values()})
        muted |= {fp for fp, (project, monitor) in monitors.items() if in_maintenance(windows, project, monitor, now)}
    if dispatcher.inhibitor.rules:  # the sources: every alert firing now (their labels only)
        sources = firing_labels(conn, now)
        muted |= dispatcher.inhibitor.inhibited(sources, [(a.fingerprint, a.labels) for a in targets])
    return muted


def plan_from_alerts(conn: Connection, dispatcher: Dispatcher, now: float, severities: Collection[str],
                     *, limit: int = MAX_NEW_PER_ROUND, versions: Collection[float] | None = None,
                     ended_after: float = 0.0) -> AlertPlan:
    """Read the alerts fired and the occurrences ended since the last round (at most `limit` of each, the
    oldest first) and decide (all the reading and matching, off the writer). With `versions`, only the
    alerts of those versions and those whose `ends_at` passed after `ended_after` are looked at."""
    fired = _new_firing(conn, now, limit, versions)
    plan = AlertPlan(ended=_ended_occurrences(conn, now, limit, versions, ended_after))
    plan.more = len(fired) >= limit or len(plan.ended) >= limit
    # Silences, maintenance and inhibition only matter for alerts not seen before.
    muted = _muted(conn, dispatcher, fired, now) if fired else set()
    cache: dict[int | None, Collection[str]] = {}
    for alert in fired:
        start = alert.starts_at or alert.active_at
        project_id, severity = _project_of(alert), alert.labels.get("severity", "")
        key: str | None = None
        wants_incident = alert.fingerprint not in muted and severity in severities_for(conn, project_id, severities,
                                                                                        cache)
        if wants_incident:
            routes = dispatcher.root.match(alert.labels)
            key = stored_key(routes[0].group_key(alert.labels)) if routes else None
        plan.new.append({"fingerprint": alert.fingerprint, "starts_at": start, "project_id": project_id,
                         "severity": severity, "name": _name(alert), "impact": min(start, alert.active_at),
                         "incident": wants_incident, "group_key": key,
                         "source": links.cause_of(alert.labels, alert.generator_url)[:2000]})
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
                            "name": new["name"], "incident_id": incident_id, "resolved_at": None,
                            "source": new.get("source")})
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


def check_email_receiver(config: AlertingConfig, name: str | None) -> None:
    """`alerting.oncall_email_receiver` must name a receiver with an e-mail integration (pages to on-call
    users go through its mail server)."""
    if name is None:
        return
    receiver = config.receiver(name)
    if receiver is None or not receiver.email_configs:
        raise ConfigError(f"setting 'alerting.oncall_email_receiver': the routing tree has no receiver "
                          f"{name!r} with an e-mail integration")


class Responder:
    """The loop of one server process; `round()` is one pass (the tests call it with a manual clock)."""

    def __init__(self, alerting: Alerting) -> None:
        self.alerting = alerting
        self.settings = alerting.settings
        self.dispatcher = Dispatcher(alerting.config)  # for routes and mutes only: groups are the dispatcher's
        self._secret: bytes | None = None
        self.more = False  # the last round left alerts for the next one (MAX_NEW_PER_ROUND)
        # The last round that took everything it found: when it looked, when it last looked at all the
        # alerts, and how many alerts carried each version (updated_at) from a little before then.
        self._looked_at: float | None = None
        self._full_at = 0.0
        self._versions: dict[float, int] = {}
        check_email_receiver(alerting.config, self.settings.oncall_email_receiver)

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
        if self.dispatcher.config is not self.alerting.config:  # reloaded (a file change, an edit)
            self.dispatcher = Dispatcher(self.alerting.config)

        severities = list(self.settings.incident_severities)

        def look() -> tuple[AlertPlan | None, dict[float, int], bool]:
            """None when the round has nothing to do; else what the alerts ask for (read and matched
            here, on a reader: under an alert storm that is most of the work, and the writer is shared).
            Also the versions counted, and whether this was a full look."""
            with engine.connect() as conn:
                last = self._looked_at
                full = last is None or now - self._full_at >= FULL_LOOK_SECONDS or now < last
                if not full:
                    assert last is not None
                    since = last - OVERLAP_SECONDS
                    stored = version_counts(conn, since)
                    known = self._versions
                    differ = [at for at, n in stored.items() if at >= since and known.get(at) != n]
                    if len(differ) <= 500:
                        if not differ and not _ended_since(conn, since, now) and not escalation_due(conn, now):
                            return None, stored, False
                        return plan_from_alerts(conn, self.dispatcher, now, severities, versions=differ,
                                                ended_after=since), stored, False
                # Counted before the alerts are read: one committed in between is read again next round.
                stored = version_counts(conn, now - OVERLAP_SECONDS)
                if not anything_to_do(conn, now):
                    return None, stored, True
                return plan_from_alerts(conn, self.dispatcher, now, severities), stored, True

        plan, stored, full = await asyncio.to_thread(look)
        self.more = plan is not None and plan.more
        if plan is None:
            self._looked(now, stored, full)
            return 0, 0
        pager = await self.pager()

        def work(conn: Connection) -> tuple[int, int]:
            return apply_alert_plan(conn, plan, now), escalate_due(conn, pager, now)

        opened, steps = await self.alerting.write(work)
        if not plan.more:  # else the next round looks from where this one did
            self._looked(now, stored, full)
        if steps:
            self.alerting.wake()  # deliver the pages now, not at the next dispatch interval
        return opened, steps

    def _looked(self, now: float, stored: dict[float, int], full: bool) -> None:
        self._looked_at, self._versions = now, stored
        if full:
            self._full_at = now

    async def run(self) -> None:
        async def step() -> float:
            try:
                await self.round()
            except Exception:
                self.more = False
                raise
            # After a round that took only part of an alert storm, the next one follows at once.
            return 0 if self.more else self.settings.incident_interval_seconds

        await repeat("incident round", step, self.settings.incident_interval_seconds, logger=log)


def responder_for(alerting: Alerting) -> Responder:
    """Alerting's Responder (made on first use: by the responder job, or a page that pages someone)."""
    if alerting.responder is None:
        alerting.responder = Responder(alerting)
    return alerting.responder


def responder_of(app: FastAPI) -> Responder:
    """The app's Responder (made on first use)."""
    return responder_for(app.state.alerting)
