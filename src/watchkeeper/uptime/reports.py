"""Uptime percentages, response-time percentiles, outages and SLA compliance.

Uptime % and SLA compliance have one definition, in `availability` (docs/uptime.md): confirmed downtime
over counted time (from the first check, less paused time and maintenance), so the numbers agree with the
outages a person sees and with each other on every page. Response times come from the rollups.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

from sqlalchemy import Connection, func, select

from watchkeeper.uptime.availability import Availability, combined, monitors_availability
from watchkeeper.uptime.results import DAY, HOUR, MINUTE
from watchkeeper.uptime.sketches import merged, quantile
from watchkeeper.uptime.tables import check_results, monitor_rollups, outages

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


def uptime_between(conn: Connection, monitor_id: int, start: float, end: float, *, now: float | None = None,
                   percentiles: bool = True) -> dict[str, Any]:
    """Uptime % (the one definition, `availability`) and response times over [start, end), up to `now`.

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
    seen = monitors_availability(conn, [monitor_id], start, end, end if now is None else now)[monitor_id]
    return {
        "start": start, "end": end, "checks": int(checks), "failures": int(failures),
        "uptime_percent": seen.percent, "counted_seconds": round(seen.counted_seconds, 3),
        "downtime_seconds": round(seen.down_seconds, 3),
        "response_ms_avg": round(float(total_ms) / count, 3) if count else None,
        "response_ms_p50": quantile(sketch, 0.5), "response_ms_p95": quantile(sketch, 0.95),
    }


def uptime_summary(conn: Connection, monitor_id: int, now: float) -> dict[str, Any]:
    return {name: uptime_between(conn, monitor_id, now - seconds, now, now=now) for name, seconds in RANGES.items()}


def daily_bars(conn: Connection, monitor_ids: list[int], now: float, days: int = 90) -> list[dict[str, Any]]:
    """One entry per UTC day, oldest first: uptime % of the monitors together (a component: down while any
    is down), None where no time was counted that day."""
    first = (int(now // DAY) - days + 1) * DAY
    return bars_of(combined(monitors_availability(conn, monitor_ids, first, now, now).values()), now, days)


def bars_of(seen: Availability, now: float, days: int = 90) -> list[dict[str, Any]]:
    """`daily_bars` of availability already read (covering at least the `days` UTC days up to `now`)."""
    today = int(now // DAY) * DAY
    bars = []
    for day in range(today - (days - 1) * DAY, today + 1, DAY):
        part = seen.between(day, day + DAY)
        bars.append({
            "date": dt.datetime.fromtimestamp(day, dt.UTC).date().isoformat(),
            "uptime_percent": part.percent, "downtime_minutes": round(part.down_seconds / 60.0, 1),
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
    """`sla_month` for a status-page component (down while any of its monitors is down).

    Compliance is the month's uptime % so far (`availability`); `met` is None ("no data") for a month with no
    counted time. The error budget is `100 - target` % of the month's counted time, the rest of a current
    month assumed counted, so a monitor added mid-month has the budget of the days it is watched.

    >>> # components_sla_month(conn, [7, 8], 99.9, 2026, 11, now) → {"compliance_percent": 99.9, ...}
    """
    start, end = month_bounds(year, month)
    seen = combined(monitors_availability(conn, monitor_ids, start, end, now).values())
    compliance = seen.percent
    expected = seen.counted_seconds
    if compliance is not None and now < end:
        expected += end - max(now, start)
    budget = (1 - target / 100.0) * expected / 60.0
    down = seen.down_seconds
    return {
        "month": f"{year:04d}-{month:02d}", "target_percent": target,
        "compliance_percent": compliance, "met": None if compliance is None else compliance >= target,
        "counted_minutes": round(seen.counted_seconds / 60.0, 3),
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
