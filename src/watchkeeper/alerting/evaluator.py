"""One evaluation round: rules against the signal log and the per-minute counts, producing alert state.

A round has two halves. `read_round` reads (rules, signals after the cursor, the alerts concerned,
counts) on a reader connection, outside the single writer, and works out the changes;
`rounds.apply_round` writes only those changes in a short writer call, after checking that nothing it
read moved meanwhile, with the signal cursor in the same commit (see alerting.rounds). Alerts whose
state did not change are not rewritten. States follow Prometheus:
inactive → pending (condition true, `for` not yet elapsed) → firing → resolved (condition false for
`keep_firing_for`). Resolved alerts stay a while so their resolved notification can go out.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from watchkeeper.alerting import alerts as A
from watchkeeper.alerting import tables
from watchkeeper.alerting.anomaly import project_scores
from watchkeeper.alerting.flapping import FlapTracker
from watchkeeper.alerting.metrics import Series, count_value, duration_value, read_counts, read_durations
from watchkeeper.alerting.rounds import RoundConflict, RoundPlan, RoundReport, apply_round, read_cursor
from watchkeeper.alerting.rules import DURATION_METRICS, PRIORITY, AlertRule, apply_default_pack, list_rules
from watchkeeper.alerting.templates import render_all
from watchkeeper.auth.projects import list_projects
from watchkeeper.lib.signals import Signal, read_signals

log = logging.getLogger(__name__)
FLAPPING_NOTE = "true: the condition keeps changing; notifications are held until it settles"
SIGNALS_PER_ROUND = 5000
# A firing alert whose only change is its value (and annotations showing it) is rewritten at most this
# often: a busy rate alert's value moves every round, and 10,000 of them would be 10,000 row updates.
VALUE_REFRESH_SECONDS = 60.0


@dataclass
class _Context:
    """What a round knows: the time, the project names, the stored alerts by fingerprint."""

    now: float
    project_slugs: dict[int, str]
    existing: dict[str, A.Alert]
    flaps: FlapTracker | None = None
    # A quick round reads whether alerts flap but does not add to their history.
    flaps_read_only: bool = False
    seen: set[str] = field(default_factory=set)
    recorded: set[str] = field(default_factory=set)
    new: list[A.Alert] = field(default_factory=list)
    # The version (updated_at) of each stored alert as read: apply_round checks it did not move.
    versions: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.versions = {fp: a.updated_at for fp, a in self.existing.items()}

    def record(self, fingerprint: str, condition: bool) -> bool:
        """Note a threshold result for flap detection; returns whether the alert is flapping."""
        if self.flaps is None:
            return False
        if self.flaps_read_only:
            return fingerprint in self.flaps.flapping
        self.recorded.add(fingerprint)
        return self.flaps.record(fingerprint, condition)

    def record_false(self, fingerprint: str) -> bool:
        """The condition did not hold (noted unless its series was looked at this round already)."""
        if fingerprint in self.recorded:
            return self.flaps is not None and fingerprint in self.flaps.flapping
        return self.record(fingerprint, False)

    def found(self, fingerprint: str) -> A.Alert | None:
        return self.existing.get(fingerprint)


def rule_labels(rule: AlertRule, project_slug: str, extra: dict[str, str]) -> dict[str, str]:
    """The alert's identity: rule labels, then what Watchkeeper sets, then the subject's labels."""
    return {**rule.labels, "alertname": rule.name, "severity": rule.severity, "priority": PRIORITY[rule.severity],
            "project": project_slug, "project_id": str(rule.project_id), **extra}


def _subject_labels(subject: str, payload: dict[str, Any]) -> dict[str, str]:
    kind, _, ident = subject.partition(":")
    labels = {kind: ident} if kind in ("issue", "monitor") and ident else {"subject": subject}
    if kind == "monitor" and payload.get("name"):
        labels["monitor_name"] = str(payload["name"])
    return labels


def _activate(ctx: _Context, rule: AlertRule, labels: dict[str, str], template_context: dict[str, Any],
              *, value: float | None, for_seconds: float, flapping: bool = False, refresh: bool = True) -> None:
    """The condition holds now: create the alert, or move it on (pending → firing, resolved → firing)."""
    fp = A.fingerprint(labels)
    ctx.seen.add(fp)
    annotations = render_all(rule.annotations, {**template_context, "labels": labels, "value": value})
    if flapping:
        annotations["flapping"] = FLAPPING_NOTE
    alert = ctx.found(fp)
    now = ctx.now
    if alert is None or alert.resolved(now):
        state = "pending" if for_seconds > 0 else "firing"
        fresh = A.Alert(fp, labels, annotations, state, now, now if state == "firing" else None, None, rule.id,
                        rule.project_id, now, value, None, now)
        if alert is None:
            ctx.new.append(fresh)
        else:
            fresh.changed = True
            ctx.existing[fp] = fresh
        return
    # Rewritten only when something a reader sees changed, or when `last_true_at` matters (event alerts
    # and keep_firing_for): a steady firing alert costs the writer nothing.
    promote = alert.state == "pending" and now - alert.active_at >= for_seconds
    if not (refresh or promote or alert.ends_at is not None):
        if alert.value == value and alert.annotations == annotations:
            return
        if now - alert.updated_at < VALUE_REFRESH_SECONDS:
            return  # only the value (and the text showing it) moved: written at most once a minute
    alert.last_true_at, alert.value, alert.updated_at, alert.changed = now, value, now, True
    alert.annotations, alert.ends_at = annotations, None
    if promote:
        alert.state, alert.starts_at = "firing", now


def _deactivate(alert: A.Alert, now: float, keep_firing_for: float) -> str | None:
    """The condition no longer holds: pending alerts vanish; firing ones resolve after keep_firing_for.
    Returns "delete" for a pending alert."""
    if alert.resolved(now) or alert.ends_at is not None:
        return None
    if alert.state == "pending":
        return "delete"
    if alert.last_true_at is not None and now - alert.last_true_at < keep_firing_for:
        return None
    alert.ends_at, alert.updated_at, alert.changed = now, now, True
    return None


def _evaluate_threshold(ctx: _Context, rule: AlertRule, counts: dict[str, dict[int, list[Series]]]) -> None:
    spec = rule.threshold
    assert spec is not None
    last_minute = int(ctx.now // 60)
    first_minute = last_minute - spec.window_minutes + 1
    project = {m: found[0] for m in spec.counts if (found := counts.get(m, {}).get(rule.project_id))}
    subjects = counts.get(spec.metric, {}).get(rule.project_id, [])
    if spec.metric != "issue_events" and not subjects:
        subjects = [Series(rule.project_id, "", "", {})]  # no traffic is a value too (0), e.g. for "< 1"
    for series in subjects:
        _judge(ctx, rule, series.subject, series.title, count_value(spec, series, project, first_minute, last_minute))


def _judge(ctx: _Context, rule: AlertRule, subject: str, title: str, value: float | None,
           breached: bool | None = None, context: dict[str, Any] | None = None) -> None:
    """One subject's value against the rule: activate when breached, note the result for flapping."""
    spec = rule.windowed
    assert spec is not None
    if breached is None:
        assert rule.threshold is not None
        breached = rule.threshold.breached(value)
    if not breached and (ctx.flaps is None or ctx.flaps_read_only):
        return
    extra = _subject_labels(subject, {}) if subject else {}
    labels = rule_labels(rule, ctx.project_slugs.get(rule.project_id, str(rule.project_id)), extra)
    flapping = ctx.record(A.fingerprint(labels), breached)
    if breached:
        _activate(ctx, rule, labels, {"title": title, "rule": rule.name, **(context or {})}, value=value,
                  for_seconds=spec.for_seconds, flapping=flapping, refresh=spec.keep_firing_for_seconds > 0)


def _evaluate_anomalies(conn: Connection, ctx: _Context, rules: list[AlertRule]) -> None:
    """Anomaly rules (full rounds only): one score per rule, read with the others of the same spec."""
    by_spec: dict[str, list[AlertRule]] = defaultdict(list)
    for rule in rules:
        assert rule.anomaly is not None
        by_spec[rule.anomaly.model_dump_json(exclude={"for_seconds", "keep_firing_for_seconds"})].append(rule)
    for same in by_spec.values():
        spec = same[0].anomaly
        assert spec is not None
        scores = project_scores(conn, spec, {r.project_id for r in same}, ctx.now)
        for rule in same:
            found = scores.get(rule.project_id)
            if found is None:
                _judge(ctx, rule, "", "", None, breached=False)
                continue
            _judge(ctx, rule, "", "", found.value, breached=found.breached,
                   context={"baseline": found.mean, "z": found.z})


def _apply_signal(ctx: _Context, rule: AlertRule, signal: Signal) -> None:
    spec = rule.event
    assert spec is not None
    slug = ctx.project_slugs.get(rule.project_id, str(rule.project_id))
    labels = rule_labels(rule, slug, _subject_labels(signal.subject, signal.payload))
    if signal.kind in spec.resolving_signals:
        # The resolving signal (monitor.up) does not carry the firing one's payload: match on subject.
        for alert in ctx.existing.values():
            if alert.rule_id == rule.id and _same_subject(alert.labels, labels) and not alert.resolved(ctx.now):
                alert.ends_at, alert.updated_at, alert.changed = ctx.now, ctx.now, True
        return
    if signal.kind == spec.signal and all(c.holds(signal.payload) for c in spec.where):
        _activate(ctx, rule, labels, {"signal": signal.payload, "subject": signal.subject, "rule": rule.name},
                  value=None, for_seconds=0)


def _same_subject(a: dict[str, str], b: dict[str, str]) -> bool:
    keys = ("monitor", "issue", "subject")
    return any(k in a and a.get(k) == b.get(k) for k in keys)


def _expire_event_alerts(ctx: _Context, rules: dict[int, AlertRule]) -> None:
    for alert in ctx.existing.values():
        rule = rules.get(alert.rule_id or 0)
        if rule is None or rule.event is None or alert.ends_at is not None:
            continue
        after = rule.event.resolve_after
        if after is not None and alert.starts_at is not None and ctx.now - (alert.last_true_at or 0) >= after:
            alert.ends_at, alert.updated_at, alert.changed = ctx.now, ctx.now, True


def _signals_by_project(signals: Iterable[Signal]) -> dict[int, list[Signal]]:
    grouped: dict[int, list[Signal]] = defaultdict(list)
    for signal in signals:
        if signal.project_id is not None:
            grouped[signal.project_id].append(signal)
    return grouped


def read_round(conn: Connection, now: float, *, thresholds: bool = True, threshold_projects: Collection[int] = (),
               resolved_retention_seconds: float = 900.0, flaps: FlapTracker | None = None) -> RoundPlan:
    """Work out one round from a reader connection (writes nothing; see `apply_round`).

    With `thresholds` off this is a quick round between full ones: new signals are applied, and the
    threshold rules of `threshold_projects` (whose counts moved) may fire, so neither kind of alert
    waits for the next full round; resolving waits for it. A quick round reads only the alerts those
    signals and rules concern.

    >>> # with engine.connect() as conn: plan = read_round(conn, clock.now())
    """
    report = RoundReport()
    projects = list_projects(conn)
    rules = {r.id: r for r in list_rules(conn, enabled_only=True)}
    report.rules = len(rules)
    cursor = read_cursor(conn)
    signals = read_signals(conn, after_id=cursor, limit=SIGNALS_PER_ROUND)
    report.signals = len(signals)
    by_project = _signals_by_project(signals)
    slugs = {p.id: p.slug for p in projects}
    moved = set(threshold_projects)
    others: dict[str, int] = {}
    if thresholds:
        existing, others = _full_alerts(conn, rules, by_project, slugs, now)
    else:
        existing = _quick_alerts(conn, rules, by_project, moved, slugs)
    ctx = _Context(now, slugs, existing, flaps, flaps_read_only=not thresholds)

    event_rules: dict[int, list[AlertRule]] = defaultdict(list)
    for rule in rules.values():
        if rule.event is not None:
            event_rules[rule.project_id].append(rule)
    for project_id, project_signals in by_project.items():
        for signal in project_signals:
            for rule in event_rules.get(project_id, ()):
                _apply_signal(ctx, rule, signal)
    _expire_event_alerts(ctx, rules)

    if thresholds:
        _evaluate_thresholds(conn, ctx, [r for r in rules.values() if r.threshold is not None])
        _evaluate_anomalies(conn, ctx, [r for r in rules.values() if r.anomaly is not None])
    else:
        _evaluate_thresholds(conn, ctx, _quick_threshold_rules(rules, moved, existing), project_ids=moved)
    gone = _settle(ctx, rules, thresholds=thresholds)
    if thresholds and flaps is not None:
        flaps.forget(set(existing) | {a.fingerprint for a in ctx.new})
    changed = [a for a in ctx.existing.values() if a.changed and a.fingerprint not in gone]
    report.new, report.changed = len(ctx.new), len(changed)
    report.states = dict(others)  # the stored alerts this round could not change, by status
    for alert in [*ctx.new, *ctx.existing.values()]:
        status = alert.status(now)
        report.states[status] = report.states.get(status, 0) + 1
    versions = {a.fingerprint: ctx.versions[a.fingerprint] for a in changed if a.fingerprint in ctx.versions}
    versions |= {fp: ctx.versions[fp] for fp in gone if fp in ctx.versions}
    return RoundPlan(now, thresholds, report, cursor, signals[-1].id if signals else None, ctx.new, changed, gone,
                     versions, now - resolved_retention_seconds if thresholds else None)


def evaluate(conn: Connection, now: float, *, default_pack: bool = True, thresholds: bool = True,
             threshold_projects: Collection[int] = (), resolved_retention_seconds: float = 900.0,
             flaps: FlapTracker | None = None) -> RoundReport:
    """Both halves of a round on one connection, in the caller's transaction (tests, tools); the server
    reads on a reader connection and writes only the changes (see `Alerting.evaluate_once`).

    >>> # with engine.begin() as conn: evaluate(conn, clock.now())
    """
    packs = 0
    if default_pack:
        packs = apply_default_pack(conn, [p.id for p in list_projects(conn)], now=now)
    plan = read_round(conn, now, thresholds=thresholds, threshold_projects=threshold_projects,
                      resolved_retention_seconds=resolved_retention_seconds, flaps=flaps)
    report = apply_round(conn, plan)
    if report is None:  # cannot happen on one connection unless another one wrote in between
        raise RoundConflict("the round's reads moved before its writes")
    report.packs_applied = packs
    return report


def _full_alerts(conn: Connection, rules: dict[int, AlertRule], by_project: dict[int, list[Signal]],
                 slugs: dict[int, str], now: float) -> tuple[dict[str, A.Alert], dict[str, int]]:
    """The stored alerts a full round can change, and how many other rule alerts there are by status.

    Not every stored alert: under an alert storm (a new issue each, tens of thousands) most are event
    alerts that only a signal or their `resolve_after` can change, and reading them all every round
    held them all in memory. Read: the alerts of threshold and anomaly rules (judged or settled every
    full round), those the new signals fire or resolve (as in a quick round), event alerts whose
    `resolve_after` has passed (so may end now; a second early, `_expire_event_alerts` decides), and
    alerts of rules deleted or disabled (they end)."""
    fingerprints, rule_ids = _signal_targets(rules, by_project, slugs)
    rule_ids |= {r.id for r in rules.values() if r.windowed is not None}
    found = A.load_alerts(conn, rules_only=True, rule_ids=rule_ids) if rule_ids else []
    expiring: dict[float, list[int]] = defaultdict(list)
    for rule in rules.values():
        if rule.event is not None and rule.event.resolve_after is not None and rule.id not in rule_ids:
            expiring[rule.event.resolve_after].append(rule.id)
    t = tables.alerts
    for after, ids in expiring.items():
        found += A.select_alerts(conn, t.c.rule_id.in_(sorted(ids)), t.c.ends_at.is_(None), t.c.starts_at.is_not(None),
                                 func.coalesce(t.c.last_true_at, 0.0) <= now - after + 1.0)
    enabled = select(tables.alert_rules.c.id).where(tables.alert_rules.c.enabled.is_(True))
    found += A.select_alerts(conn, t.c.rule_id.is_not(None), t.c.rule_id.not_in(enabled))
    existing = {a.fingerprint: a for a in found}
    existing |= {a.fingerprint: a for a in A.load_by_fingerprint(conn, fingerprints - set(existing))}
    # The others' status as stored (a round leaves them as they are), for the gauge of alerts by state.
    others = A.status_counts(conn, now, rules_only=True)
    for alert in existing.values():
        status = alert.status(now)
        others[status] = max(0, others.get(status, 0) - 1)
    return existing, {k: n for k, n in others.items() if n}


def _signal_targets(rules: dict[int, AlertRule], by_project: dict[int, list[Signal]],
                    slugs: dict[int, str]) -> tuple[set[str], set[int]]:
    """The fingerprints of the alerts the new signals fire (known before reading), and the event rules
    whose alerts they may resolve."""
    fingerprints: set[str] = set()
    rule_ids: set[int] = set()
    for rule in rules.values():
        spec = rule.event
        if spec is None:
            continue
        for signal in by_project.get(rule.project_id, ()):
            if signal.kind in spec.resolving_signals:
                rule_ids.add(rule.id)
            elif signal.kind == spec.signal:
                slug = slugs.get(rule.project_id, str(rule.project_id))
                fingerprints.add(A.fingerprint(rule_labels(rule, slug, _subject_labels(signal.subject,
                                                                                        signal.payload))))
    return fingerprints, rule_ids


def _quick_alerts(conn: Connection, rules: dict[int, AlertRule], by_project: dict[int, list[Signal]],
                  moved: set[int], slugs: dict[int, str]) -> dict[str, A.Alert]:
    """The stored alerts a quick round can change: those the new signals would fire (by fingerprint, known
    before reading), those of rules the signals resolve, and those of the moved projects' threshold rules."""
    fingerprints, rule_ids = _signal_targets(rules, by_project, slugs)
    for rule in rules.values():
        if rule.threshold is not None and rule.project_id in moved and _quick_metric(rule.threshold.metric):
            rule_ids.add(rule.id)
    found = A.load_alerts(conn, rules_only=True, rule_ids=rule_ids) if rule_ids else []
    found += A.load_by_fingerprint(conn, fingerprints - {a.fingerprint for a in found})
    return {a.fingerprint: a for a in found}


def _quick_threshold_rules(rules: dict[int, AlertRule], moved: set[int],
                           existing: dict[str, A.Alert]) -> list[AlertRule]:
    """Threshold rules worth a look between full rounds: per-project count metrics of projects whose
    counts moved, not already firing (a quick round only fires; per-issue rules wait for the full round)."""
    firing = {a.rule_id for a in existing.values() if a.state == "firing" and a.ends_at is None}
    return [r for r in rules.values() if r.threshold is not None and r.project_id in moved
            and _quick_metric(r.threshold.metric) and r.id not in firing]


def _quick_metric(metric: str) -> bool:
    """Per-issue counts (one series per issue) and transaction durations (a read of the window's
    transactions, up to MAX_DURATIONS rows) are judged in full rounds only: quick rounds run up to
    twice a second while traffic flows, and must stay cheap."""
    return metric != "issue_events" and metric not in DURATION_METRICS


def _evaluate_thresholds(conn: Connection, ctx: _Context, rules: list[AlertRule],
                         project_ids: Collection[int] | None = None) -> None:
    last_minute = int(ctx.now // 60)
    widest: dict[str, int] = {}
    duration_rules = []
    for rule in rules:
        assert rule.threshold is not None
        if rule.threshold.metric in DURATION_METRICS:
            duration_rules.append(rule)
        for metric in rule.threshold.counts:
            widest[metric] = max(widest.get(metric, 0), rule.threshold.window_minutes)
    counts: dict[str, dict[int, list[Series]]] = {}
    for metric, minutes in widest.items():
        by_project: dict[int, list[Series]] = defaultdict(list)
        for series in read_counts(conn, metric, last_minute - minutes + 1, project_ids):
            by_project[series.project_id].append(series)
        counts[metric] = by_project
    for rule in rules:
        if rule not in duration_rules:
            _evaluate_threshold(ctx, rule, counts)
    for rule in duration_rules:  # one bounded read per rule: its own window
        spec = rule.threshold
        assert spec is not None
        since = (last_minute - spec.window_minutes + 1) * 60.0
        durations = read_durations(conn, [rule.project_id], since, (last_minute + 1) * 60.0)[rule.project_id]
        _judge(ctx, rule, "", "", duration_value(spec, durations))


def _settle(ctx: _Context, rules: dict[int, AlertRule], *, thresholds: bool) -> set[str]:
    """Threshold alerts not seen true this round deactivate; alerts of deleted or disabled rules end."""
    gone: set[str] = set()
    for fp, alert in ctx.existing.items():
        rule = rules.get(alert.rule_id or 0)
        if rule is None:
            if alert.state == "pending":
                gone.add(fp)
            elif alert.ends_at is None:
                alert.ends_at, alert.updated_at, alert.changed = ctx.now, ctx.now, True
            continue
        spec = rule.windowed
        if spec is None or fp in ctx.seen or not thresholds:
            continue
        if ctx.record_false(fp) and alert.state == "firing" and alert.ends_at is None:
            # Flapping: stay firing instead of resolving now and firing again next round.
            if alert.annotations.get("flapping") != FLAPPING_NOTE:
                alert.annotations = {**alert.annotations, "flapping": FLAPPING_NOTE}
                alert.updated_at, alert.changed = ctx.now, True
            continue
        if _deactivate(alert, ctx.now, spec.keep_firing_for_seconds) == "delete":
            gone.add(fp)
    return gone
