"""Uptime percentages, response-time percentiles, outages and SLA compliance, read from the rollups.

Uptime % counts checks: (checks - failures) / checks, leaving out checks made during maintenance.
SLA compliance counts confirmed downtime: the minutes between an outage's start and end (less any
maintenance window), so it agrees with the outages a person sees, and the error budget is in minutes.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

from sqlalchemy import Connection, delete, func, select

from watchkeeper.uptime.maintenance import list_windows, merged_periods
from watchkeeper.uptime.results import DAY, HOUR, MINUTE
from watchkeeper.uptime.sketches import merged, quantile
from watchkeeper.uptime.tables import check_results, heartbeat_pings, monitor_rollups, monitors, outages

RANGES = {"24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "90d": 90 * 86400}


def _resolution_for(seconds: float) -> int:
    if seconds <= 2 * 86400:
        return MINUTE
    return HOUR if seconds <= 90 * 86400 else DAY


def _bucket_filter(monitor_id: int, resolution: int, start: float, end: float) -> Any:
    first = int(start // resolution) * resolution
    return (
        (monitor_rollups.c.monitor_id == monitor_id)
        & (monitor_rollups.c.resolution == resolution)
        & (monitor_rollups.c.bucket >= first)
        & (monitor_rollups.c.bucket < end)
    )


def uptime_between(conn: Connection, monitor_id: int, start: float, end: float, *,
                   percentiles: bool = True) -> dict[str, Any]:
    """Uptime % and response times over [start, end).

    >>> # uptime_between(conn, 7, now - 86400, now) → {"uptime_percent": 99.93, "checks": 1440, ...}
    """
    resolution = _resolution_for(end - start)
    checks, failures, total_ms, count = conn.execute(
        select(func.coalesce(func.sum(monitor_rollups.c.checks), 0),
               func.coalesce(func.sum(monitor_rollups.c.failures), 0),
               func.coalesce(func.sum(monitor_rollups.c.response_ms_sum), 0.0),
               func.coalesce(func.sum(monitor_rollups.c.response_count), 0))
        .where(_bucket_filter(monitor_id, resolution, start, end))
    ).one()
    sketch_resolution = DAY if end - start > 90 * 86400 else HOUR
    sketch = merged(conn.execute(select(monitor_rollups.c.sketch).where(
        _bucket_filter(monitor_id, sketch_resolution, start, end))).scalars() if percentiles else ())
    return {
        "start": start, "end": end, "checks": int(checks), "failures": int(failures),
        "uptime_percent": round(100.0 * (checks - failures) / checks, 4) if checks else None,
        "response_ms_avg": round(float(total_ms) / count, 3) if count else None,
        "response_ms_p50": quantile(sketch, 0.5), "response_ms_p95": quantile(sketch, 0.95),
    }


def uptime_summary(conn: Connection, monitor_id: int, now: float) -> dict[str, Any]:
    return {name: uptime_between(conn, monitor_id, now - seconds, now) for name, seconds in RANGES.items()}


def daily_bars(conn: Connection, monitor_ids: list[int], now: float, days: int = 90) -> list[dict[str, Any]]:
    """One entry per UTC day, oldest first: uptime % of the monitors together (None: no checks that day)."""
    today = int(now // DAY) * DAY
    first = today - (days - 1) * DAY
    totals: dict[int, list[int]] = {}
    if monitor_ids:
        rows = conn.execute(
            select(monitor_rollups.c.bucket, func.sum(monitor_rollups.c.checks), func.sum(monitor_rollups.c.failures))
            .where(monitor_rollups.c.monitor_id.in_(monitor_ids), monitor_rollups.c.resolution == DAY,
                   monitor_rollups.c.bucket >= first)
            .group_by(monitor_rollups.c.bucket)
        )
        totals = {int(bucket): [int(c), int(f)] for bucket, c, f in rows}
    bars = []
    for day in range(first, today + 1, DAY):
        checks, failures = totals.get(day, [0, 0])
        bars.append({
            "date": dt.datetime.fromtimestamp(day, dt.UTC).date().isoformat(),
            "uptime_percent": round(100.0 * (checks - failures) / checks, 3) if checks else None,
            "failures": failures,
        })
    return bars


def list_outages(conn: Connection, monitor_id: int, now: float, *, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(select(outages).where(outages.c.monitor_id == monitor_id)
                        .order_by(outages.c.started_at.desc()).limit(limit))
    return [
        {"id": r.id, "started_at": r.started_at, "ended_at": r.ended_at, "first_error": r.first_error,
         "duration_seconds": round((r.ended_at or now) - r.started_at, 3), "ongoing": r.ended_at is None}
        for r in rows
    ]


def maintenance_between(conn: Connection, monitor_id: int, start: float, end: float) -> list[tuple[float, float]]:
    """The monitor's maintenance periods within [start, end), merged."""
    project_id = conn.execute(select(monitors.c.project_id).where(monitors.c.id == monitor_id)).scalar()
    if project_id is None:
        return []
    windows = [w for w in list_windows(conn, [project_id]) if w.covers(monitor_id)]
    periods = [(max(b, start), min(e, end)) for w in windows for b, e in w.periods_between(start, end)]
    return merged_periods(periods)


def _without(span: tuple[float, float], holes: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """`span` less the (merged, ordered) `holes`."""
    pieces, begin = [], span[0]
    for hole_begin, hole_end in holes:
        if hole_end <= begin or hole_begin >= span[1]:
            continue
        if hole_begin > begin:
            pieces.append((begin, hole_begin))
        begin = max(begin, hole_end)
    if begin < span[1]:
        pieces.append((begin, span[1]))
    return pieces


def down_periods(conn: Connection, monitor_id: int, start: float, end: float) -> list[tuple[float, float]]:
    """The monitor's confirmed outages within [start, end), less its maintenance, merged."""
    rows = conn.execute(select(outages.c.started_at, outages.c.ended_at).where(
        outages.c.monitor_id == monitor_id, outages.c.started_at < end,
        (outages.c.ended_at.is_(None)) | (outages.c.ended_at > start)))
    spans = merged_periods((max(started, start), min(ended or end, end)) for started, ended in rows)
    maintenance = maintenance_between(conn, monitor_id, start, end) if spans else []
    return [piece for span in spans for piece in _without(span, maintenance)]


def downtime_between(conn: Connection, monitor_id: int, start: float, end: float) -> float:
    """Seconds of confirmed outage within [start, end), not counting maintenance."""
    return sum(e - b for b, e in down_periods(conn, monitor_id, start, end))


def month_bounds(year: int, month: int) -> tuple[float, float]:
    start = dt.datetime(year, month, 1, tzinfo=dt.UTC)
    days = calendar.monthrange(year, month)[1]
    return start.timestamp(), start.timestamp() + days * 86400


def sla_month(conn: Connection, monitor_id: int, target: float, year: int, month: int, now: float) -> dict[str, Any]:
    """Compliance with `target` (percent) over a calendar month (UTC), and the error budget left in minutes.

    >>> # sla_month(conn, 7, 99.9, 2026, 11, now) → {"compliance_percent": 99.95, "budget_remaining_minutes": 21.6, ...}
    """
    return components_sla_month(conn, [monitor_id], target, year, month, now)


def components_sla_month(conn: Connection, monitor_ids: list[int], target: float, year: int, month: int,
                         now: float) -> dict[str, Any]:
    """`sla_month` for a status-page component: it is down while any of its monitors is down, so its
    downtime is the union of their outages (each less its own maintenance).

    >>> # components_sla_month(conn, [7, 8], 99.9, 2026, 11, now) → {"compliance_percent": 99.9, ...}
    """
    start, end = month_bounds(year, month)
    elapsed = max(0.0, min(now, end) - start)
    periods = [p for monitor_id in monitor_ids for p in down_periods(conn, monitor_id, start, min(now, end))]
    down = sum(e - b for b, e in merged_periods(periods))
    budget = (1 - target / 100.0) * (end - start) / 60.0
    compliance = 100.0 * (1 - down / elapsed) if elapsed else None
    return {
        "month": f"{year:04d}-{month:02d}", "target_percent": target,
        "compliance_percent": round(compliance, 4) if compliance is not None else None,
        "met": compliance is None or compliance >= target,
        "downtime_minutes": round(down / 60.0, 3), "budget_minutes": round(budget, 3),
        "budget_remaining_minutes": round(budget - down / 60.0, 3),
    }


def recent_results(conn: Connection, monitor_id: int, *, limit: int = 100,
                   before: float | None = None) -> list[dict[str, Any]]:
    query = select(check_results).where(check_results.c.monitor_id == monitor_id)
    if before is not None:
        query = query.where(check_results.c.at < before)
    rows = conn.execute(query.order_by(check_results.c.at.desc()).limit(limit))
    return [{"at": r.at, "ok": r.ok, "response_ms": r.response_ms, "status_code": r.status_code,
             "error": r.error, "in_maintenance": r.in_maintenance} for r in rows]


def expire_results(conn: Connection, now: float, raw_days: int, minute_days: int, hour_days: int,
                   batch: int = 5000) -> int:
    """Delete raw results, pings and rollups past their retention, at most `batch` rows per table."""
    removed = 0
    for table, column, cutoff, extra in (
        (check_results, check_results.c.at, now - raw_days * 86400, None),
        (heartbeat_pings, heartbeat_pings.c.at, now - raw_days * 86400, None),
        (monitor_rollups, monitor_rollups.c.bucket, now - minute_days * 86400, monitor_rollups.c.resolution == MINUTE),
        (monitor_rollups, monitor_rollups.c.bucket, now - hour_days * 86400, monitor_rollups.c.resolution == HOUR),
    ):
        condition = column < cutoff if extra is None else (column < cutoff) & extra
        if table is monitor_rollups:
            removed += conn.execute(delete(table).where(condition)).rowcount
            continue
        ids = select(table.c.id).where(condition).limit(batch).scalar_subquery()
        removed += conn.execute(delete(table).where(table.c.id.in_(ids))).rowcount
    return removed
