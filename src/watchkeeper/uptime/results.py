"""Recording check results: the monitor's state machine, outages, signals and rollups, in one transaction.

`record_results` is a writer function: the scheduler hands it a batch of outcomes every second or so, and
state, raw results, rollups, outages and signals are committed together, so the state persisted always
matches the results kept, and a restart resumes exactly where it stopped (no false down/up).

States: new → up | down; up ⇄ down; paused. Down after `failures_to_down` consecutive failures (never
during maintenance), up again after `successes_to_up` consecutive successes. A new monitor goes up at
its first success without a signal.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, select, tuple_, update

from watchkeeper.lib.signals import emit_signals, register_signal
from watchkeeper.store.dialect import upsert
from watchkeeper.uptime.checkers import CheckResult
from watchkeeper.uptime.maintenance import in_maintenance, list_windows
from watchkeeper.uptime.sketches import new_sketch, sketch_from_bytes, sketch_to_bytes
from watchkeeper.uptime.tables import check_results, monitor_rollups, monitors, outages

MONITOR_DOWN = register_signal("monitor.down", "a monitor failed its confirmation checks and is down")
MONITOR_UP = register_signal("monitor.up", "a down monitor recovered")
MONITOR_DEGRADED = register_signal("monitor.degraded", "a monitor answers, but slower than its degraded_ms")
CERTIFICATE_EXPIRING = register_signal(
    "certificate.expiring", "a monitored TLS certificate expires within a warning threshold (30/14/7 days)"
)

MINUTE, HOUR, DAY = 60, 3600, 86400
RESOLUTIONS = (MINUTE, HOUR, DAY)
# Minute rows are many and short-lived: counts only. Hour and day rows carry a percentile sketch.
SKETCHED = (HOUR, DAY)
MAX_ERROR_CHARS = 1000
ROLLUP_KEYS_PER_QUERY = 300


@dataclass(slots=True)
class CheckOutcome:
    monitor_id: int
    at: float  # when the check started (epoch seconds)
    result: CheckResult


STATE_FIELDS = (
    "status", "status_changed_at", "consecutive_failures", "consecutive_successes", "failing_since",
    "degraded", "last_check_at", "last_error", "cert_warned_days", "cert_expires_at", "first_result_at",
)


def _load_state(conn: Connection, monitor_ids: list[int]) -> dict[int, dict[str, Any]]:
    columns = [monitors.c.id, monitors.c.project_id, monitors.c.name, monitors.c.type, monitors.c.config,
               monitors.c.paused, monitors.c.failures_to_down, monitors.c.successes_to_up,
               *(monitors.c[name] for name in STATE_FIELDS)]
    rows = conn.execute(select(*columns).where(monitors.c.id.in_(monitor_ids)))
    return {row.id: dict(row._mapping) for row in rows}


def _signal(kind: str, state: dict[str, Any], at: float, **payload: Any) -> dict[str, Any]:
    return {
        "kind": kind, "project_id": state["project_id"], "subject": f"monitor:{state['id']}", "created_at": at,
        "payload": {"monitor_id": state["id"], "name": state["name"], "type": state["type"], **payload},
    }


class _Batch:
    """What one batch changes, collected while the outcomes are applied in time order."""

    def __init__(self) -> None:
        self.signals: list[dict[str, Any]] = []
        self.opened: list[dict[str, Any]] = []
        self.closed: list[dict[str, Any]] = []
        self.results: list[dict[str, Any]] = []


def _apply(state: dict[str, Any], outcome: CheckOutcome, maintenance: bool, batch: _Batch) -> None:
    result, at = outcome.result, outcome.at
    error = result.error[:MAX_ERROR_CHARS] if result.error else None
    state["last_check_at"] = at
    state["last_error"] = error
    if state["first_result_at"] is None:
        state["first_result_at"] = at  # uptime is counted from here (docs/uptime.md)
    if result.ok:
        state["consecutive_successes"] += 1
        state["consecutive_failures"] = 0
        state["failing_since"] = None
    elif not maintenance:
        state["consecutive_failures"] += 1
        state["consecutive_successes"] = 0
        if state["failing_since"] is None:
            state["failing_since"] = at
    status = state["status"]
    if result.ok and (status == "new" or (status == "down" and state["consecutive_successes"] >= state[
            "successes_to_up"])):
        down_for = at - (state["status_changed_at"] or at)
        _set_status(state, "up", at)
        if status == "down":
            batch.closed.append({"monitor_id": state["id"], "ended_at": at})
            batch.signals.append(_signal(MONITOR_UP, state, at, down_seconds=round(down_for, 3)))
    elif not result.ok and status in ("new", "up") and state["consecutive_failures"] >= state["failures_to_down"]:
        _set_status(state, "down", at)
        started = state["failing_since"] or at
        batch.opened.append({"monitor_id": state["id"], "started_at": started, "first_error": error})
        batch.signals.append(_signal(MONITOR_DOWN, state, at, error=error, since=started))
    _degradation(state, result, at, batch)
    _certificate(state, result, at, batch)
    batch.results.append({
        "monitor_id": state["id"], "at": at, "ok": result.ok, "response_ms": result.response_ms,
        "status_code": result.status_code, "error": error, "in_maintenance": maintenance,
    })


def _set_status(state: dict[str, Any], status: str, at: float) -> None:
    state["status"] = status
    state["status_changed_at"] = at


def _degradation(state: dict[str, Any], result: CheckResult, at: float, batch: _Batch) -> None:
    degraded = result.ok and result.degraded
    if degraded and not state["degraded"]:
        batch.signals.append(_signal(MONITOR_DEGRADED, state, at, response_ms=result.response_ms))
    if result.ok:
        state["degraded"] = degraded


def warning_thresholds(state: dict[str, Any]) -> list[int]:
    config = orjson.loads(state["config"]) if isinstance(state["config"], str) else state["config"]
    return sorted(config.get("warn_days") or config.get("cert_warn_days") or [30, 14, 7], reverse=True)


def _certificate(state: dict[str, Any], result: CheckResult, at: float, batch: _Batch) -> None:
    if result.cert_expires_at is None:
        return
    state["cert_expires_at"] = result.cert_expires_at
    thresholds = warning_thresholds(state)
    days_left = (result.cert_expires_at - at) / 86400
    crossed = [t for t in thresholds if days_left <= t]
    if not crossed:
        state["cert_warned_days"] = None  # renewed (or never close): warn again next time
        return
    threshold = min(crossed)
    if state["cert_warned_days"] is None or threshold < state["cert_warned_days"]:
        state["cert_warned_days"] = threshold
        batch.signals.append(_signal(CERTIFICATE_EXPIRING, state, at, days_left=round(days_left, 2),
                                     threshold_days=threshold, expires_at=result.cert_expires_at))


def record_results(conn: Connection, outcomes: Sequence[CheckOutcome]) -> list[int]:
    """Apply a batch of outcomes in the caller's transaction; returns the ids of monitors that changed status.

    >>> # await writer.run(call_each, lambda conn: record_results(conn, outcomes))
    """
    if not outcomes:
        return []
    states = _load_state(conn, sorted({o.monitor_id for o in outcomes}))
    windows = list_windows(conn, {s["project_id"] for s in states.values()})
    before = {mid: s["status"] for mid, s in states.items()}
    batch = _Batch()
    for outcome in sorted(outcomes, key=lambda o: o.at):
        state = states.get(outcome.monitor_id)
        if state is None or state["paused"]:
            continue  # deleted or paused while the check ran
        maintenance = in_maintenance(windows, state["project_id"], state["id"], outcome.at)
        _apply(state, outcome, maintenance, batch)
    touched = {r["monitor_id"] for r in batch.results}
    _write_state(conn, [s for mid, s in states.items() if mid in touched])
    if batch.results:
        conn.execute(check_results.insert(), batch.results)
    _write_outages(conn, batch)
    add_to_rollups(conn, batch.results)
    emit_signals(conn, batch.signals)
    from watchkeeper.uptime.incidents import follow_outages

    follow_outages(conn, batch.opened, batch.closed)
    return [mid for mid, s in states.items() if s["status"] != before[mid]]


def _write_state(conn: Connection, states: list[dict[str, Any]]) -> None:
    if not states:
        return
    statement = update(monitors).where(monitors.c.id == bindparam("monitor_id")).values(
        {name: bindparam(f"new_{name}") for name in STATE_FIELDS}
    )
    conn.execute(statement, [
        {"monitor_id": s["id"], **{f"new_{name}": s[name] for name in STATE_FIELDS}} for s in states
    ])


def _write_outages(conn: Connection, batch: _Batch) -> None:
    # In time order: one batch may hold a monitor's recovery and its next outage, or both ends of one.
    events = [(o["started_at"], 0, o) for o in batch.opened] + [(c["ended_at"], 1, c) for c in batch.closed]
    for _, closing, event in sorted(events, key=lambda e: (e[0], e[1])):
        if closing:
            conn.execute(update(outages).where(outages.c.monitor_id == event["monitor_id"],
                                               outages.c.ended_at.is_(None)).values(ended_at=event["ended_at"]))
        else:
            event["id"] = conn.execute(outages.insert().values(
                {k: event[k] for k in ("monitor_id", "started_at", "first_error")})).inserted_primary_key[0]  # type: ignore[index]


def _bucket_totals(results: list[dict[str, Any]]) -> dict[tuple[int, int, int], dict[str, Any]]:
    totals: dict[tuple[int, int, int], dict[str, Any]] = defaultdict(
        lambda: {"checks": 0, "failures": 0, "maintenance_checks": 0, "response_ms_sum": 0.0,
                 "response_count": 0, "values": []}
    )
    for r in results:
        for resolution in RESOLUTIONS:
            total = totals[(r["monitor_id"], resolution, int(r["at"] // resolution) * resolution)]
            if r["in_maintenance"]:
                total["maintenance_checks"] += 1
                continue
            total["checks"] += 1
            total["failures"] += 0 if r["ok"] else 1
            if r["response_ms"] is not None:
                total["response_ms_sum"] += r["response_ms"]
                total["response_count"] += 1
                if resolution in SKETCHED:
                    total["values"].append(r["response_ms"])
    return totals


COUNTS = ("checks", "failures", "maintenance_checks", "response_ms_sum", "response_count")


def add_to_rollups(conn: Connection, results: list[dict[str, Any]]) -> None:
    """Add results to the minute, hour and day rows (read, merge, upsert: only the writer writes them)."""
    totals = _bucket_totals(results)
    if not totals:
        return
    key = tuple_(monitor_rollups.c.monitor_id, monitor_rollups.c.resolution, monitor_rollups.c.bucket)
    keys = list(totals)
    existing: dict[tuple[int, int, int], Any] = {}
    # In chunks: a backlog of results must not exceed the database's limit on bound parameters.
    for start in range(0, len(keys), ROLLUP_KEYS_PER_QUERY):
        chunk = keys[start:start + ROLLUP_KEYS_PER_QUERY]
        for found in conn.execute(select(monitor_rollups).where(key.in_(chunk))):
            existing[(found.monitor_id, found.resolution, found.bucket)] = found
    rows: list[dict[str, Any]] = []
    for (monitor_id, resolution, bucket), total in totals.items():
        old = existing.get((monitor_id, resolution, bucket))
        row = {"monitor_id": monitor_id, "resolution": resolution, "bucket": bucket,
               **{c: total[c] + (getattr(old, c) if old is not None else 0) for c in COUNTS}, "sketch": None}
        if resolution in SKETCHED:
            sketch = sketch_from_bytes(old.sketch) if old is not None and old.sketch else new_sketch()
            for value in total["values"]:
                sketch.add(max(value, 0.0))
            row["sketch"] = sketch_to_bytes(sketch)
        rows.append(row)
    statement = upsert(conn, monitor_rollups)
    statement = statement.on_conflict_do_update(
        index_elements=["monitor_id", "resolution", "bucket"],
        set_={c: statement.excluded[c] for c in (*COUNTS, "sketch")},
    )
    conn.execute(statement, rows)
