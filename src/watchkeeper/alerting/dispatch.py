"""The dispatcher: alerts → routes → aggregation groups → notifications in the outbox.

Alertmanager's semantics: a new group waits `group_wait` before its first notification, then is looked
at every `group_interval`; at each look, each integration of the receiver is notified only when the
notification log says something changed (new firing alerts, all resolved, new resolved alerts for an
integration with `send_resolved`) or `repeat_interval` has passed. Silenced and inhibited alerts are
left out. The notification log and the outbox rows are written in one transaction, so a restart
neither loses a decided notification nor sends it twice.

Groups live in memory (as in Alertmanager); after a restart they form again and the notification
log keeps them from repeating what was sent.

A round is incremental: the dispatcher keeps an index of the firing (and resolved) alerts, loaded
whole at start and every `RESYNC_SECONDS`, and otherwise reads only the alerts changed since its last
look (by the indexed `updated_at`, counted per version so that only the versions whose count moved
are read). A new alert joins or forms its groups; a group whose timer is due
re-reads its own members (so resolved and deleted alerts are seen) and is the only one planned.
Silences, maintenance windows and inhibition are applied when a group is flushed, as Alertmanager's
notification pipeline does; a flush holds a bounded number of a big group's alerts (groups.py).
All of this reads on a reader connection; the writer only stores the
outbox rows and notification log entries decided, after checking that the log entries they replace
did not move (another dispatcher sent meanwhile), so nothing is sent twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection, insert, or_, select

from watchkeeper.alerting import alerts as A
from watchkeeper.alerting import links
from watchkeeper.alerting.alerts import Alert, fingerprint
from watchkeeper.alerting.groups import MAX_LISTED_ALERTS, AggregationGroup, FlushPlan, Gathered
from watchkeeper.alerting.routing import AlertingConfig, Inhibitor, build_routes
from watchkeeper.alerting.silences import active_silences
from watchkeeper.alerting.tables import alerts as alerts_table
from watchkeeper.alerting.tables import notification_log, notification_outbox
from watchkeeper.store.dialect import upsert
from watchkeeper.uptime.maintenance import in_maintenance, list_windows

log = logging.getLogger(__name__)
MAX_KEY_CHARS = 500
# The whole index is read again this often (bounds what a missed change or a deleted alert can cost).
RESYNC_SECONDS = 300.0
# Changes are read from a little before the last look: a transaction that committed late, or a clock
# of another process a little behind, is still seen.
OVERLAP_SECONDS = 60.0
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


def alert_json(alert: Alert, now: float, base_url: str) -> dict[str, Any]:
    """One alert as Alertmanager's webhook and API v2 show it; `generatorURL` is the page of what the
    alert is about (its issue, monitor or project), a full URL under `base_url`."""
    return {
        "status": "resolved" if alert.resolved(now) else "firing", "labels": alert.labels,
        "annotations": alert.annotations, "startsAt": rfc3339(alert.starts_at or alert.active_at),
        "endsAt": rfc3339(alert.ends_at),
        "generatorURL": links.absolute(base_url, links.cause_of(alert.labels, alert.generator_url)),
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
                    external_url: str, *, truncated: int = 0, truncated_firing: int = 0,
                    common: tuple[dict[str, str], dict[str, str]] | None = None) -> dict[str, Any]:
    """The Alertmanager v4 webhook payload: every channel renders its message from it.

    `truncated` alerts were left out of `alerts` (`truncated_firing` of them firing, which the
    channels add to the firing ones listed: a title still counts them all), and `common` gives the
    labels and annotations common to all of them, listed or not."""
    firing = any(not a.resolved(now) for a in alerts) or truncated_firing > 0
    labels, annotations = common or (_common([a.labels for a in alerts]), _common([a.annotations for a in alerts]))
    payload = {
        "version": "4", "groupKey": group.key, "truncatedAlerts": truncated,
        "status": "firing" if firing else "resolved", "receiver": receiver, "groupLabels": group.labels,
        "commonLabels": labels, "commonAnnotations": annotations,
        "externalURL": external_url, "alerts": [alert_json(a, now, external_url) for a in alerts],
    }
    if truncated_firing:
        payload["truncatedFiring"] = truncated_firing
    return payload


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


@dataclass
class LogDecision:
    """One integration of one group to notify (or to clear): the outbox row and the new log entry."""

    group_key: str
    receiver: str
    integration: str
    # The log entry's sent_at as read (None: no entry); written only if it is still that.
    seen_sent_at: float | None
    payload: str | None
    firing: str
    resolved: str
    now: float


def decide_flushes(conn: Connection, plans: list[FlushPlan], config: AlertingConfig, now: float,
                   external_url: str) -> list[LogDecision]:
    """Alertmanager's DedupStage for every integration of every planned group, reading the notification
    log (a reader connection will do); `write_decisions` stores the result."""
    decisions = []
    for plan in plans:
        receiver = config.receiver(plan.group.route.receiver)
        if receiver is None or plan.time_muted:
            continue
        firing = plan.firing_fingerprints
        resolved = set(plan.resolved_ends)
        key = stored_key(plan.group.key)
        for name, integration in receiver.integrations().items():
            entry = conn.execute(select(notification_log).where(
                notification_log.c.group_key == key, notification_log.c.receiver == receiver.name,
                notification_log.c.integration == name)).first()
            if not needs_update(entry, firing, resolved, send_resolved=integration.send_resolved,
                                repeat=plan.group.route.repeat_interval, now=now):
                continue
            alerts = plan.firing + (plan.resolved if integration.send_resolved else [])
            payload = None
            if alerts and plan.counted is None:
                payload = orjson.dumps(webhook_payload(plan.group, receiver.name, alerts, now, external_url)).decode()
            elif alerts:
                assert plan.counted is not None
                kinds = ("firing", "resolved") if integration.send_resolved else ("firing",)
                listed = alerts[:plan.counted.limit]
                listed_firing = sum(1 for a in listed if not a.resolved(now))
                total = len(firing) + (len(resolved) if integration.send_resolved else 0)
                payload = orjson.dumps(webhook_payload(
                    plan.group, receiver.name, listed, now, external_url, truncated=total - len(listed),
                    truncated_firing=len(firing) - listed_firing,
                    common=plan.counted.common_of(kinds, listed[0]))).decode()
            decisions.append(LogDecision(key, receiver.name, name, entry.sent_at if entry else None, payload,
                                         orjson.dumps(sorted(firing)).decode(),
                                         orjson.dumps(sorted(resolved)).decode(), now))
    return decisions


def write_decisions(conn: Connection, decisions: list[LogDecision]) -> int | None:
    """In the caller's (writer) transaction: queue the notifications and update the notification log, if
    every log entry is still as it was read; returns how many notifications were queued, or None (and
    nothing written) when another dispatcher got there first."""
    if not decisions:
        return 0
    t = notification_log
    stored: dict[tuple[str, str, str], float] = {}
    keys = sorted({d.group_key for d in decisions})
    for start in range(0, len(keys), 500):
        query = select(t.c.group_key, t.c.receiver, t.c.integration, t.c.sent_at).where(
            t.c.group_key.in_(keys[start:start + 500]))
        stored.update({(k, r, i): at for k, r, i, at in conn.execute(query)})
    for d in decisions:
        if stored.get((d.group_key, d.receiver, d.integration)) != d.seen_sent_at:
            log.info("dispatch round not written: the notification log of %s moved", d.group_key)
            return None
    outbox = [{"receiver": d.receiver, "integration": d.integration, "group_key": d.group_key, "payload": d.payload,
               "status": "pending", "attempts": 0, "next_attempt_at": d.now, "created_at": d.now}
              for d in decisions if d.payload is not None]
    if outbox:
        conn.execute(insert(notification_outbox), outbox)
    statement = upsert(conn, t)
    conn.execute(statement.on_conflict_do_update(
        index_elements=["group_key", "receiver", "integration"],
        set_={"firing": statement.excluded.firing, "resolved": statement.excluded.resolved,
              "sent_at": statement.excluded.sent_at}),
        [{"group_key": d.group_key, "receiver": d.receiver, "integration": d.integration, "firing": d.firing,
          "resolved": d.resolved, "sent_at": d.now} for d in decisions])
    return len(outbox)


def record_flushes(conn: Connection, plans: list[FlushPlan], config: AlertingConfig, now: float,
                   external_url: str) -> int:
    """Decide and write on one connection: returns how many notifications were queued."""
    return write_decisions(conn, decide_flushes(conn, plans, config, now, external_url)) or 0


def monitor_of(alert: Alert) -> tuple[int, int] | None:
    project, monitor = alert.labels.get("project_id", ""), alert.labels.get("monitor", "")
    return (int(project), int(monitor)) if project.isdigit() and monitor.isdigit() else None


class Indexed(NamedTuple):
    """An alert in the dispatcher's index: the version (updated_at) read, and the keys of its groups.
    Immutable, so that the alerts written by one round into the same groups share one (see
    `Dispatcher._indexed`): an alert storm keeps tens of thousands of alerts in the index, and one
    object each cost memory and the garbage collector's time (each full collection walked them all)."""

    updated_at: float
    group_keys: tuple[str, ...]


def firing_labels(conn: Connection, now: float) -> list[tuple[str, dict[str, str]]]:
    """(fingerprint, labels) of every alert firing now: the sources of inhibition."""
    t = alerts_table
    query = select(t.c.fingerprint, t.c.labels).where(
        t.c.state == "firing", or_(t.c.ends_at.is_(None), t.c.ends_at > now))
    return [(fp, A.parsed_map(labels)) for fp, labels in conn.execute(query)]


class Dispatcher:
    """Keeps the aggregation groups and the index of firing alerts they are made of; `plan(conn, now)`
    says which groups to flush now.

    >>> # dispatcher.refresh(conn, now); plans = dispatcher.plan(conn, now)
    >>> # record_flushes(conn, plans, config, now, url); dispatcher.flushed(plans, now)
    """

    def __init__(self, config: AlertingConfig, *, max_listed: int = MAX_LISTED_ALERTS) -> None:
        self.config = config
        self.max_listed = max_listed  # alerts a notification lists at most (see MAX_LISTED_ALERTS)
        self.root = build_routes(config.route)
        self.inhibitor = Inhibitor(config.inhibit_rules)
        self.groups: dict[str, AggregationGroup] = {}
        self.intervals = config.intervals()
        # Firing alerts (resolved ones too, until they are forgotten) by fingerprint: the version read
        # and the groups joined, not the alert itself (labels, annotations), which a flush reads again
        # anyway. An alert storm keeps tens of thousands of them here for as long as they fire.
        self.alerts: dict[str, Indexed] = {}
        self._shared: dict[tuple[float, tuple[str, ...]], Indexed] = {}
        self._looked_at: float | None = None
        self._synced_at = 0.0
        # How many alerts (any state) carried each version (`updated_at`) when last read, for versions
        # from a little before the last look: `refresh` reads only the versions whose count moved.
        self._versions: dict[float, int] = {}

    def refresh(self, conn: Connection, now: float) -> None:
        """Bring the index up to date: everything at the first look and every RESYNC_SECONDS, otherwise
        only the alerts changed since the last look.

        Changes are found by version: how many alerts carry each `updated_at` since a little before the
        last look (OVERLAP_SECONDS) is counted by the database, one row per round that wrote alerts, and
        only the alerts of a version whose count differs from the one known are read. Reading every alert
        of the overlap each round instead (to find the few that committed late) was, under an alert storm,
        most of the dispatcher's work: a minute of new alerts, read twice a second."""
        if self._looked_at is None or now - self._synced_at >= RESYNC_SECONDS or now < self._looked_at:
            # Counted before the alerts are read: one that commits in between is read again next look.
            self._versions = A.version_counts(conn, now - OVERLAP_SECONDS)
            self.alerts, self._shared = {}, {}
            for group in self.groups.values():
                group.members = set()
            for alert in A.stream_alerts(conn, alerts_table.c.state == "firing"):
                self._put(alert, now)
            for key in [k for k, g in self.groups.items() if not g.members]:
                del self.groups[key]
            self._synced_at = now
        else:
            since = self._looked_at - OVERLAP_SECONDS
            stored = A.version_counts(conn, since)
            self._versions = {at: n for at, n in self._versions.items() if at >= since}
            differ = [at for at, n in stored.items() if self._versions.get(at) != n]
            read: dict[float, int] = dict.fromkeys(differ, 0)
            for fp, labels, state, starts_at, updated_at in A.index_rows_by_version(conn, differ):
                read[updated_at] = read.get(updated_at, 0) + 1
                self._index(fp, state, updated_at, starts_at, labels, now)
            # Versions no longer stored: their alerts moved on (read above in their new version) or were
            # deleted (a flush or the next resync finds that out).
            self._versions = {at: n for at, n in self._versions.items() if at in stored} | read
        self._looked_at = now

    def _put(self, alert: Alert, now: float) -> None:
        self._index(alert.fingerprint, alert.state, alert.updated_at, alert.starts_at, alert.labels, now)

    def _index(self, fp: str, state: str, updated_at: float, starts_at: float | None,
               labels: dict[str, str] | str, now: float) -> None:
        """Index an alert as read (`labels` as stored, JSON, are parsed only for an alert not known yet)."""
        if state != "firing":  # back to pending (fired again with a `for`)
            self._drop(fp)
            return
        known = self.alerts.get(fp)
        if known is not None:  # the labels are the identity: the same groups
            if known.updated_at != updated_at:
                self._moved(known.updated_at)
                self.alerts[fp] = self._indexed(updated_at, known.group_keys)
            return
        if isinstance(labels, str):
            labels = A.parsed_map(labels)
        keys = []
        for route in self.root.match(labels):
            key = route.group_key(labels)
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = AggregationGroup(key, route, route.group_labels(labels),
                                                            now + route.group_wait)
            group.members.add(fp)
            keys.append(group.key)  # the group's own string, shared by all its members
            # An alert older than group_wait (e.g. after a restart) need not wait again.
            if not group.flushed_once and (starts_at or now) + route.group_wait <= now:
                group.next_flush = min(group.next_flush, now)
        self.alerts[fp] = self._indexed(updated_at, tuple(keys))

    def _indexed(self, updated_at: float, group_keys: tuple[str, ...]) -> Indexed:
        """The shared entry for this version and these groups."""
        found = self._shared.get((updated_at, group_keys))
        if found is None:
            if len(self._shared) >= 10_000:  # entries stay valid (immutable): only the sharing starts over
                self._shared.clear()
            found = self._shared[(updated_at, group_keys)] = Indexed(updated_at, group_keys)
        return found

    def _moved(self, updated_at: float) -> None:
        """An alert known in this version is now in another (or gone): one fewer to expect in it, so that
        an alert of that version committing late still shows as a difference in the counts."""
        count = self._versions.get(updated_at)
        if count is not None:
            self._versions[updated_at] = count - 1

    def _drop(self, fp: str) -> None:
        indexed = self.alerts.pop(fp, None)
        if indexed is None:
            return
        self._moved(indexed.updated_at)
        for key in indexed.group_keys:
            group = self.groups.get(key)
            if group is not None:
                group.members.discard(fp)
                if not group.members:
                    del self.groups[key]

    def muted_now(self, conn: Connection, targets: list[Alert], now: float) -> set[str]:
        """Fingerprints of `targets` left out of notifications: silenced, in a maintenance window, or
        inhibited by an alert firing now."""
        return self._muter(conn, now)(targets)

    def _muter(self, conn: Connection, now: float) -> Callable[[list[Alert]], set[str]]:
        """`muted_now` for several lots of targets, the silences and inhibition sources read once."""
        silences = active_silences(conn, now)
        sources = firing_labels(conn, now) if self.inhibitor.rules else []

        def muted_of(targets: list[Alert]) -> set[str]:
            muted = {a.fingerprint for a in targets if any(s.mutes(a.labels, now) for s in silences)}
            monitors = {a.fingerprint: m for a in targets if (m := monitor_of(a)) is not None}
            if monitors:
                windows = list_windows(conn, {project for project, _ in monitors.values()})
                muted |= {fp for fp, (project, monitor) in monitors.items()
                          if in_maintenance(windows, project, monitor, now)}
            if self.inhibitor.rules:
                muted |= self.inhibitor.inhibited(sources, [(a.fingerprint, a.labels) for a in targets])
            return muted

        return muted_of

    def plan(self, conn: Connection, now: float) -> list[FlushPlan]:
        """The groups whose timer is due, each with its members as stored now (read again, 500 at a time:
        a group of tens of thousands of alerts is counted whole but held only as far as it is listed)."""
        due = [g for g in self.groups.values() if g.next_flush <= now]
        if not due:
            return []
        members = set().union(*(g.members for g in due))
        gathered = {g.key: Gathered(g, self.max_listed) for g in due}
        muted_of = self._muter(conn, now)
        seen: set[str] = set()
        lot: list[Alert] = []

        def gather(alerts: list[Alert]) -> None:
            targets = [a for a in alerts if a.fingerprint in self.alerts]
            muted = muted_of(targets)
            for alert in targets:
                if alert.fingerprint in muted:
                    continue
                for key in self.alerts[alert.fingerprint].group_keys:
                    found = gathered.get(key)
                    if found is not None:
                        found.add(alert, now)

        for alert in A.iter_by_fingerprint(conn, members):
            seen.add(alert.fingerprint)
            self._put(alert, now)
            lot.append(alert)
            if len(lot) >= 500:
                gather(lot)
                lot = []
        gather(lot)
        for fp in members - seen:  # deleted (forgotten after resolving, or its rule was deleted)
            self._drop(fp)
        plans = []
        for group in due:
            if self.groups.get(group.key) is not group:
                continue
            found = gathered[group.key]
            if not found.unmuted:  # all muted: looked at again next round, flushed once something is not
                continue
            if group.route.muted_at(now, self.intervals):
                plans.append(FlushPlan(group, [], [], time_muted=True))
                continue
            plans.append(found.plan())
        return plans

    def flushed(self, plans: list[FlushPlan], now: float) -> None:
        """After the flush committed: the next look is a group_interval away."""
        for plan in plans:
            plan.group.next_flush = now + plan.group.route.group_interval
            plan.group.flushed_once = True
            if plan.time_muted:
                continue
            firing = plan.firing_fingerprints
            plan.group.flushed_resolved = plan.resolved_ends | {
                fp: ends for fp, ends in plan.group.flushed_resolved.items() if fp not in firing}

    def next_flush(self) -> float | None:
        return min((g.next_flush for g in self.groups.values()), default=None)


@dataclass
class DispatchResult:
    queued: int
    plans: list[FlushPlan]


def dispatch_round(conn: Connection, dispatcher: Dispatcher, now: float, external_url: str) -> DispatchResult:
    """Look at the changed alerts and the due groups, and queue their notifications, all on one connection
    in the caller's transaction (tests, tools; the server reads on a reader connection and writes only
    the decisions, see `Alerting.dispatch_once`).

    Call `dispatcher.flushed(result.plans, now)` after the commit: the groups' timers move only then,
    so a failed transaction is simply tried again on the next round.
    """
    dispatcher.refresh(conn, now)
    plans = dispatcher.plan(conn, now)
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
