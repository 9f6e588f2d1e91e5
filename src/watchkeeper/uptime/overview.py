"""What the app's monitor pages read beyond single reports: a page of the list with each monitor's 24-hour
uptime and hourly response times (from the hour rollups, one query for the whole page), status counts,
and a monitor's response-time series for its chart."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from watchkeeper.uptime.availability import monitors_availability
from watchkeeper.uptime.results import HOUR, MINUTE
from watchkeeper.uptime.tables import check_results, monitor_rollups, monitors

SPARK_HOURS = 24
SPARK_MINUTES = 60


def status_counts(conn: Connection, project_id: int) -> dict[str, int]:
    """How many of the project's monitors are in each status (index ix_monitors_project_status)."""
    rows = conn.execute(select(monitors.c.status, func.count()).where(monitors.c.project_id == project_id)
                        .group_by(monitors.c.status))
    return {str(status): int(count) for status, count in rows}


def last_day(conn: Connection, monitor_ids: list[int], now: float) -> dict[int, dict[str, Any]]:
    """Per monitor: uptime % over the last 24 hours and, for the list's sparkline, the average response time
    of each hour (None where there were no timed checks), oldest first. A monitor with fewer than two such
    hours (a new one) gets the last hour per minute instead (`spark_step` 60), so its line starts with its
    first checks rather than after an hour.

    >>> # last_day(conn, [1, 2], now)[1] → {"uptime_percent": 99.3, "spark_ms": [12.0, None, ...], "spark_step": 3600}
    """
    found: dict[int, dict[str, Any]] = {
        i: {"uptime_percent": None, "spark_ms": [None] * SPARK_HOURS, "spark_step": HOUR} for i in monitor_ids}
    if not monitor_ids:
        return found
    _fill(conn, found, monitor_ids, HOUR, now)
    young = [i for i, entry in found.items() if sum(v is not None for v in entry["spark_ms"]) < 2]
    if young:
        for monitor_id in young:
            found[monitor_id] |= {"spark_ms": [None] * SPARK_MINUTES, "spark_step": MINUTE}
        _fill(conn, found, young, MINUTE, now)
    # The one definition of uptime (docs/uptime.md), as on the monitor's page and the status page.
    for monitor_id, seen in monitors_availability(conn, monitor_ids, now - 86400, now, now).items():
        found[monitor_id]["uptime_percent"] = seen.percent
    return found


def _fill(conn: Connection, found: dict[int, dict[str, Any]], monitor_ids: list[int], step: int, now: float) -> None:
    slots = len(found[monitor_ids[0]]["spark_ms"])
    first = (int(now // step) - slots + 1) * step
    rows = conn.execute(
        select(monitor_rollups.c.monitor_id, monitor_rollups.c.bucket, monitor_rollups.c.response_ms_sum,
               monitor_rollups.c.response_count)
        .where(monitor_rollups.c.monitor_id.in_(monitor_ids), monitor_rollups.c.resolution == step,
               monitor_rollups.c.bucket >= first))
    for monitor_id, bucket, total_ms, count in rows:
        slot = (int(bucket) - first) // step
        if 0 <= slot < slots and count:
            found[monitor_id]["spark_ms"][slot] = round(total_ms / count, 1)


def response_series(conn: Connection, monitor_id: int, start: float, end: float) -> dict[str, Any]:
    """Average response time and failed checks per bucket over [start, end): per minute up to two days,
    else per hour. `x` are bucket starts (epoch seconds), `step` the bucket size."""
    resolution = MINUTE if end - start <= 2 * 86400 else HOUR
    rows = conn.execute(
        select(monitor_rollups.c.bucket, monitor_rollups.c.failures, monitor_rollups.c.response_ms_sum,
               monitor_rollups.c.response_count)
        .where(monitor_rollups.c.monitor_id == monitor_id, monitor_rollups.c.resolution == resolution,
               monitor_rollups.c.bucket >= int(start // resolution) * resolution, monitor_rollups.c.bucket < end)
        .order_by(monitor_rollups.c.bucket))
    series: dict[str, Any] = {"x": [], "ms": [], "failures": [], "step": resolution}
    for bucket, failures, total_ms, count in rows:
        series["x"].append(int(bucket))
        series["ms"].append(round(total_ms / count, 2) if count else None)
        series["failures"].append(int(failures))
    return series


def failed_checks(conn: Connection, monitor_id: int, *, limit: int = 20) -> list[dict[str, Any]]:
    """The most recent failed checks (raw results, kept `retention.check_results_days`)."""
    rows = conn.execute(select(check_results).where(check_results.c.monitor_id == monitor_id,
                                                    check_results.c.ok.is_(False))
                        .order_by(check_results.c.at.desc()).limit(limit))
    return [{"at": r.at, "ok": r.ok, "response_ms": r.response_ms, "status_code": r.status_code,
             "error": r.error, "in_maintenance": r.in_maintenance} for r in rows]
