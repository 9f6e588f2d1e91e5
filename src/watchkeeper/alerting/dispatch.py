"""The dispatcher: alerts → routes → aggregation groups → notifications in the outbox.

Alertmanager's semantics: a new group waits `group_wait` before its first notification, then is looked
at every `group_interval`; at each look, each integration of the receiver is notified only when the
notification log says something changed (new firing alerts, all resolved, new resolved alerts for an
integration with `send_resolved`) or `repeat_interval` has passed. Silenced and inhibited alerts are
left out. The notification log and the outbox rows are written in one transaction, so a restart
neither loses a decided notification nor sends it twice.

Groups live in memory (as in Alertmanager); after a restart they form again and the notification
log keeps them from repeating what was sent.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, select

from watchkeeper.alerting.alerts import Alert, fingerprint, load_alerts
from watchkeeper.alerting.routing import AlertingConfig, Inhibitor, Route, build_routes, label_set
from watchkeeper.alerting.silences import Silence, active_silences
from watchkeeper.alerting.tables import notification_log, notification_outbox
from watchkeeper.store.dialect import upsert
from watchkeeper.uptime.maintenance import in_maintenance, list_windows

log = logging.getLogger(__name__)
MAX_KEY_CHARS = 500
ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of an alert that has not ended


def rfc3339(epoch: float | None) -> str:
    """>>> rfc3339(0)
    '1970-01-01T00:00:00Z'
    """
    if epoch is None:
        return ZERO_TIME
    text = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return text.replace(".000Z", "Z")


def stored_key(group_key: str) -> str:
    """Group keys longer than the column are shortened with a hash of the whole key."""
    if len(group_key) <= MAX_KEY_CHARS:
        return group_key
    return group_key[: MAX_KEY_CHARS - 17] + "#" + hashlib.sha256(group_key.encode()).hexdigest()[:16]


@dataclass
class AggregationGroup:
    key: str
    route: Route
    labels: dict[str, str]
    next_flush: float
    flushed_once: bool = False
    # Resolved alerts already notified (fingerprint → ends_at): later flushes leave them out, as
    # Alertmanager removes them from the group after a successful flush.
    flushed_resolved: dict[str, float] = field(default_factory=dict)


@dataclass
class FlushPlan:
    group: AggregationGroup
    firing: list[Alert]
    resolved: list[Alert]


def alert_json(alert: Alert, now: float) -> dict[str, Any]:
    """One alert as Alertmanager's webhook and API v2 show it."""
    return {
        "status": "resolved" if alert.resolved(now) else "firing", "labels": alert.labels,
        "annotations": alert.annotations, "startsAt": rfc3339(alert.starts_at or alert.active_at),
        "endsAt": rfc3339(alert.ends_at), "generatorURL": alert.generator_url or "",
        "fingerprint": alert.fingerprint,
    }


def _common(maps: list[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    common = dict(maps[0])
    for other in maps[1:]:
        common = {k: v for k, v in common.items() if other.get(k) == v}
    return common


def webhook_payload(group: AggregationGroup, receiver: str, alerts: list[Alert], now: float,
                    external_url: str) -> dict[str, Any]:
    """The Alertmanager v4 webhook payload: every channel renders its message from it."""
    firing = any(not a.resolved(now) for a in alerts)
    return {
        "version": "4", "groupKey": group.key, "truncatedAlerts": 0, "status": "firing" if firing else "resolved",
        "receiver": receiver, "groupLabels": group.labels,
        "commonLabels": _common([a.labels for a in alerts]),
        "commonAnnotations": _common([a.annotations for a in alerts]),
        "externalURL": external_url, "alerts": [alert_json(a, now) for a in alerts],
    }


def needs_update(entry: Any, firing: set[str], resolved: set[str], *, send_resolved: bool, repeat: float,
                 now: float) -> bool:
    """Alertmanager's DedupStage decision for one integration of one group."""
    if entry is None:
        return bool(firing)
    before_firing, before_resolved = set(orjson.loads(entry.firing)), set(orjson.loads(entry.resolved))
    if not firing <= before_firing:
        return True
    if not firing:
        # All resolved: tell integrations that were told about firing alerts (clears the log too).
        return bool(before_firing)
    if send_resolved and not resolved <= before_resolved:
        return True
    return bool(entry.sent_at + repeat <= now)


def record_flushes(conn: Connection, plans: list[FlushPlan], config: AlertingConfig, now: float,
                   external_url: str) -> int:
    """In one transaction: decide per integration, queue notifications, update the notification log.
    Returns how many notifications were queued."""
    queued = 0
    for plan in plans:
        receiver = config.receiver(plan.group.route.receiver)
        if receiver is None:
            continue
        firing = {a.fingerprint for a in plan.firing}
        resolved = {a.fingerprint for a in plan.resolved}
        key = stored_key(plan.group.key)
        for name, integration in receiver.integrations().items():
            entry = conn.execute(select(notification_log).where(
                notification_log.c.group_key == key, notification_log.c.receiver == receiver.name,
                notification_log.c.integration == name)).first()
            if not needs_update(entry, firing, resolved, send_resolved=integration.send_resolved,
                                repeat=plan.group.route.repeat_interval, now=now):
                continue
            alerts = plan.firing + (plan.resolved if integration.send_resolved else [])
            if alerts:
                payload = webhook_payload(plan.group, receiver.name, alerts, now, external_url)
                conn.execute(notification_outbox.insert().values(
                    receiver=receiver.name, integration=name, group_key=key, payload=orjson.dumps(payload).decode(),
                    status="pending", attempts=0, next_attempt_at=now, created_at=now))
                queued += 1
            values = {"firing": orjson.dumps(sorted(firing)).decode(),
                      "resolved": orjson.dumps(sorted(resolved)).decode(), "sent_at": now}
            statement = upsert(conn, notification_log).values(group_key=key, receiver=receiver.name,
                                                               integration=name, **values)
            conn.execute(statement.on_conflict_do_update(
                index_elements=["group_key", "receiver", "integration"], set_=values))
    return queued


@dataclass
class Snapshot:
    alerts: list[Alert]
    silences: list[Silence]
    # Alerts about monitors in an uptime maintenance window now: muted like silenced ones.
    in_maintenance: set[str] = field(default_factory=set)


def _monitor_of(alert: Alert) -> tuple[int, int] | None:
    project, monitor = alert.labels.get("project_id", ""), alert.labels.get("monitor", "")
    return (int(project), int(monitor)) if project.isdigit() and monitor.isdigit() else None


def take_snapshot(conn: Connection, now: float) -> Snapshot:
    found = load_alerts(conn, firing_only=True)
    monitors = {a.fingerprint: m for a in found if (m := _monitor_of(a)) is not None}
    maintained: set[str] = set()
    if monitors:
        windows = list_windows(conn, {project for project, _ in monitors.values()})
        maintained = {fp for fp, (project, monitor) in monitors.items()
                      if in_maintenance(windows, project, monitor, now)}
    return Snapshot(found, active_silences(conn, now), maintained)


class Dispatcher:
    """Keeps the aggregation groups; `plan(snapshot, now)` says which groups to flush now.

    >>> # plans = dispatcher.plan(take_snapshot(conn, now), now); record_flushes(conn, plans, config, now, url)
    """

    def __init__(self, config: AlertingConfig) -> None:
        self.config = config
        self.root = build_routes(config.route)
        self.inhibitor = Inhibitor(config.inhibit_rules)
        self.groups: dict[str, AggregationGroup] = {}

    def muted(self, snapshot: Snapshot, now: float) -> set[str]:
        """Fingerprints left out of notifications: silenced, in a maintenance window, or inhibited."""
        everyone = [(a.fingerprint, a.labels) for a in snapshot.alerts]
        firing = [(a.fingerprint, a.labels) for a in snapshot.alerts if not a.resolved(now)]
        silenced = {fp for fp, labels in everyone if any(s.mutes(labels, now) for s in snapshot.silences)}
        return silenced | snapshot.in_maintenance | self.inhibitor.inhibited(firing, everyone)

    def route(self, snapshot: Snapshot, now: float) -> dict[str, list[Alert]]:
        """Alerts by group key, creating groups that are new (flushed after group_wait)."""
        muted = self.muted(snapshot, now)
        members: dict[str, list[Alert]] = {}
        for alert in snapshot.alerts:
            if alert.fingerprint in muted:
                continue
            for route in self.root.match(alert.labels):
                key = route.group_key(alert.labels)
                members.setdefault(key, []).append(alert)
                group = self.groups.get(key)
                if group is None:
                    group = self.groups[key] = AggregationGroup(key, route, route.group_labels(alert.labels),
                                                                now + route.group_wait)
                # An alert older than group_wait (e.g. after a restart) need not wait again.
                if not group.flushed_once and (alert.starts_at or now) + route.group_wait <= now:
                    group.next_flush = min(group.next_flush, now)
        for key in [k for k in self.groups if k not in members]:
            del self.groups[key]
        return members

    def plan(self, snapshot: Snapshot, now: float) -> list[FlushPlan]:
        plans = []
        for key, alerts in self.route(snapshot, now).items():
            group = self.groups[key]
            if group.next_flush > now:
                continue
            firing = [a for a in alerts if not a.resolved(now)]
            resolved = [a for a in alerts if a.resolved(now)
                        and group.flushed_resolved.get(a.fingerprint) != a.ends_at]
            plans.append(FlushPlan(group, sorted(firing, key=_order), sorted(resolved, key=_order)))
        return plans

    def flushed(self, plans: list[FlushPlan], now: float) -> None:
        """After the flush committed: the next look is a group_interval away."""
        for plan in plans:
            plan.group.next_flush = now + plan.group.route.group_interval
            plan.group.flushed_once = True
            plan.group.flushed_resolved = {a.fingerprint: a.ends_at or 0.0 for a in plan.resolved} | {
                fp: ends for fp, ends in plan.group.flushed_resolved.items()
                if fp not in {a.fingerprint for a in plan.firing}}

    def next_flush(self) -> float | None:
        return min((g.next_flush for g in self.groups.values()), default=None)


def _order(alert: Alert) -> tuple[float, str]:
    return (alert.starts_at or alert.active_at, label_set(alert.labels))


@dataclass
class DispatchResult:
    queued: int
    plans: list[FlushPlan]


def dispatch_round(conn: Connection, dispatcher: Dispatcher, now: float, external_url: str) -> DispatchResult:
    """Look at every group once, in the caller's (writer) transaction.

    Call `dispatcher.flushed(result.plans, now)` after the commit: the groups' timers move only then,
    so a failed transaction is simply tried again on the next round.
    """
    plans = dispatcher.plan(take_snapshot(conn, now), now)
    return DispatchResult(record_flushes(conn, plans, dispatcher.config, now, external_url), plans)


def queue_test_notification(conn: Connection, config: AlertingConfig, receiver_name: str, now: float,
                            external_url: str, requested_by: str) -> list[int]:
    """Queue a test notification to every integration of a receiver (not in the notification log);
    returns the outbox ids. LookupError when there is no such receiver."""
    receiver = config.receiver(receiver_name)
    if receiver is None:
        raise LookupError(receiver_name)
    labels = {"alertname": "TestNotification", "severity": "low", "priority": "P3"}
    alert = Alert(fingerprint(labels), labels, {"summary": f"Test notification requested by {requested_by}"},
                  "firing", now, now, None, updated_at=now)
    route = build_routes(config.route)
    group = AggregationGroup(f'{{}}:{{alertname="TestNotification"}}/test-{int(now * 1000)}', route,
                             {"alertname": "TestNotification"}, now)
    payload = orjson.dumps(webhook_payload(group, receiver.name, [alert], now, external_url)).decode()
    ids = []
    for name in receiver.integrations():
        result = conn.execute(notification_outbox.insert().values(
            receiver=receiver.name, integration=name, group_key=stored_key(group.key), payload=payload,
            status="pending", attempts=0, next_attempt_at=now, created_at=now))
        ids.append(int(result.inserted_primary_key[0]))  # type: ignore[index]
    return ids
