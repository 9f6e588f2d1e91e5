"""Back-test: when would a rule have fired over the last hours? Replays the per-minute counts (threshold
rules of every aggregation, one evaluation per minute with the rule's `for` and `keep_firing_for`; the
transaction durations for `average` and `percentile`, at most MAX_DURATIONS of the newest in the
period), the count baselines (anomaly rules) or the signal log (event rules) without touching any alert.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

import orjson
from sqlalchemy import Connection, select

from watchkeeper.alerting.anomaly import AnomalySpec, first_minutes, minute_counts, score, windows
from watchkeeper.alerting.metrics import Series, count_value, duration_value, read_counts, read_timed_durations
from watchkeeper.alerting.rules import DURATION_METRICS, EventSpec, PayloadCondition, RuleIn, ThresholdSpec
from watchkeeper.lib.signals import signals

STEP_SECONDS = 60.0


@dataclass
class Firing:
    subject: str
    started_at: float
    ended_at: float | None = None
    peak: float | None = None

    def to_api(self) -> dict[str, Any]:
        return {"subject": self.subject, "started_at": self.started_at, "ended_at": self.ended_at,
                "peak_value": self.peak}


@dataclass
class _Replay:
    spec: ThresholdSpec | AnomalySpec
    subject: str
    active_at: float | None = None
    last_true: float | None = None
    current: Firing | None = None
    done: list[Firing] = field(default_factory=list)

    def step(self, at: float, value: float | None, breached: bool | None = None) -> None:
        if breached is None:
            assert isinstance(self.spec, ThresholdSpec)
            breached = value is not None and self.spec.breached(value)
        if breached and value is not None:
            self.last_true = at
            if self.active_at is None:
                self.active_at = at
            if self.current is None and at - self.active_at >= self.spec.for_seconds:
                self.current = Firing(self.subject, at, peak=value)
            if self.current is not None:
                self.current.peak = max(self.current.peak or value, value)
            return
        if self.current is not None:
            if at - (self.last_true or at) >= self.spec.keep_firing_for_seconds:
                self.current.ended_at = at
                self.done.append(self.current)
                self.current, self.active_at = None, None
        else:
            self.active_at = None


def _threshold(conn: Connection, project_id: int, spec: ThresholdSpec, since: float, now: float) -> list[Firing]:
    first_step = int(since // 60)
    last_step = int(now // 60)
    window = spec.window_minutes
    steps = range(first_step, last_step + 1)
    if spec.metric in DURATION_METRICS:
        rows = read_timed_durations(conn, [project_id], (first_step - window + 1) * 60.0,
                                    (last_step + 1) * 60.0)[project_id]
        ends = [at for at, _ in rows]
        replay = _Replay(spec, f"project:{project_id}")
        for minute in steps:
            low, high = bisect_left(ends, (minute - window + 1) * 60.0), bisect_left(ends, (minute + 1) * 60.0)
            replay.step(min(now, (minute + 1) * STEP_SECONDS), duration_value(spec, [d for _, d in rows[low:high]]))
        return replay.done + ([replay.current] if replay.current else [])
    by_metric = {m: read_counts(conn, m, first_step - window + 1, [project_id]) for m in spec.counts}
    project = {m: found[0] for m, found in by_metric.items() if found}
    series = by_metric[spec.metric]
    if spec.metric != "issue_events" and not series:
        series = [Series(project_id, "", "", {})]
    firings: list[Firing] = []
    for one in series:
        replay = _Replay(spec, one.subject or f"project:{project_id}")
        for minute in steps:
            replay.step(min(now, (minute + 1) * STEP_SECONDS), count_value(spec, one, project, minute - window + 1,
                                                                           minute))
        firings += replay.done + ([replay.current] if replay.current else [])
    return firings


def _anomaly(conn: Connection, project_id: int, spec: AnomalySpec, since: float, now: float) -> list[Firing]:
    first_step, last_step = int(since // 60), int(now // 60)
    low = windows(spec, first_step)[1][0][0]
    counts = minute_counts(conn, spec.metric, project_id, low, last_step)
    prefix = list(accumulate((counts.get(m, 0) for m in range(low, last_step + 1)), initial=0))

    def total(first: int, last: int) -> float:
        return float(prefix[last - low + 1] - prefix[first - low])

    oldest = first_minutes(conn, [project_id])[project_id]
    replay = _Replay(spec, f"project:{project_id}")
    for minute in range(first_step, last_step + 1):
        current, baseline = windows(spec, minute)
        at = min(now, (minute + 1) * STEP_SECONDS)
        if oldest is None or oldest > baseline[0][0]:
            replay.step(at, None, False)
            continue
        found = score(spec, total(*current), [total(*w) for w in baseline])
        replay.step(at, found.value, found.breached)
    return replay.done + ([replay.current] if replay.current else [])


def _event(conn: Connection, project_id: int, spec: EventSpec, since: float, now: float) -> list[Firing]:
    kinds = [spec.signal, *spec.resolving_signals]
    rows = conn.execute(select(signals.c.kind, signals.c.subject, signals.c.payload, signals.c.created_at)
                        .where(signals.c.project_id == project_id, signals.c.kind.in_(kinds),
                               signals.c.created_at >= since, signals.c.created_at <= now)
                        .order_by(signals.c.id)).all()
    open_by_subject: dict[str, Firing] = {}
    firings: list[Firing] = []
    for kind, subject, payload, at in rows:
        current = open_by_subject.get(subject)
        if current is not None and spec.resolve_after is not None and at - current.started_at >= spec.resolve_after:
            current.ended_at = current.started_at + spec.resolve_after
            del open_by_subject[subject]
            current = None
        if kind in spec.resolving_signals and kind != spec.signal:
            if current is not None:
                current.ended_at = at
                del open_by_subject[subject]
            continue
        if current is None and _matches(spec.where, orjson.loads(payload)):
            open_by_subject[subject] = Firing(subject, at)
            firings.append(open_by_subject[subject])
    for firing in open_by_subject.values():
        if spec.resolve_after is not None and now - firing.started_at >= spec.resolve_after:
            firing.ended_at = firing.started_at + spec.resolve_after
    return firings


def _matches(conditions: list[PayloadCondition], payload: dict[str, Any]) -> bool:
    return all(c.holds(payload) for c in conditions)


def backtest(conn: Connection, project_id: int, rule: RuleIn, *, now: float, hours: float = 24) -> dict[str, Any]:
    """When `rule` would have fired in the project over the last `hours`.

    >>> # backtest(conn, 1, RuleIn(...), now=clock.now())["firings"]
    """
    since = now - hours * 3600
    if rule.threshold is not None:
        firings = _threshold(conn, project_id, rule.threshold, since, now)
    elif rule.anomaly is not None:
        firings = _anomaly(conn, project_id, rule.anomaly, since, now)
    else:
        assert rule.event is not None
        firings = _event(conn, project_id, rule.event, since, now)
    firings.sort(key=lambda f: (f.started_at, f.subject))
    return {"from": since, "until": now, "step_seconds": STEP_SECONDS if rule.event is None else None,
            "firings": [f.to_api() for f in firings]}
