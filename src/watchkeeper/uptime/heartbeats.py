"""Heartbeats: jobs report in (`/ping/...` or Sentry check-ins) and are down when a report is late or failed.

A heartbeat expects a ping every `period_seconds`, or at each time of a cron expression in a time zone,
plus `grace_seconds`. `heartbeat_deadline` on the monitor is when the next ping is due at the latest;
`sweep_heartbeats` marks the ones past it down. `/start` opens a run: the next success measures its
duration, and a run still open after the config's `max_run_seconds` has failed (`heartbeat.failed`).
States as healthchecks: new (no ping yet), up, down, paused.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any, Literal

from croniter import croniter
from sqlalchemy import Connection, select, update

from watchkeeper.lib.signals import emit_signals, register_signal
from watchkeeper.uptime.incidents import follow_outages
from watchkeeper.uptime.maintenance import in_maintenance, list_windows
from watchkeeper.uptime.monitors import Monitor, monitor_from_row
from watchkeeper.uptime.results import MONITOR_UP
from watchkeeper.uptime.tables import heartbeat_pings, monitors, outages

HEARTBEAT_LATE = register_signal("heartbeat.late", "a heartbeat's ping did not arrive within its period and grace")
HEARTBEAT_FAILED = register_signal("heartbeat.failed", "a job reported failure (/fail, non-zero exit, Sentry error)")

PingKind = Literal["success", "start", "fail"]


def next_expected(config: dict[str, Any], after: float) -> float:
    """When the next ping is expected after one at `after` (grace not included).

    >>> next_expected({"period_seconds": 3600, "cron": None, "timezone": "UTC"}, 1000.0)
    4600.0
    """
    if config.get("cron"):
        moment = dt.datetime.fromtimestamp(after, zoneinfo.ZoneInfo(config.get("timezone") or "UTC"))
        return float(croniter(config["cron"], moment).get_next(float))
    return after + float(config["period_seconds"])


def deadline_after(config: dict[str, Any], after: float) -> float:
    return next_expected(config, after) + float(config.get("grace_seconds", 0))


def _signal(kind: str, monitor: Monitor, at: float, **payload: Any) -> dict[str, Any]:
    return {"kind": kind, "project_id": monitor.project_id, "subject": f"monitor:{monitor.id}", "created_at": at,
            "payload": {"monitor_id": monitor.id, "name": monitor.name, "type": monitor.type, **payload}}


def _go_down(conn: Connection, monitor: Monitor, at: float, since: float, error: str, kind: str) -> None:
    conn.execute(update(monitors).where(monitors.c.id == monitor.id).values(
        status="down", status_changed_at=at, last_error=error, consecutive_successes=0,
        consecutive_failures=monitor.consecutive_failures + 1))
    outage_id = conn.execute(outages.insert().values(monitor_id=monitor.id, started_at=since, first_error=error)
                             ).inserted_primary_key[0]  # type: ignore[index]
    emit_signals(conn, [_signal(kind, monitor, at, error=error)])
    follow_outages(conn, [{"monitor_id": monitor.id, "started_at": since, "first_error": error, "id": outage_id}], [])


def _go_up(conn: Connection, monitor: Monitor, at: float) -> None:
    conn.execute(update(outages).where(outages.c.monitor_id == monitor.id, outages.c.ended_at.is_(None))
                 .values(ended_at=at))
    emit_signals(conn, [_signal(MONITOR_UP, monitor, at, down_seconds=round(at - (monitor.status_changed_at or at),
                                                                              3))])
    follow_outages(conn, [], [{"monitor_id": monitor.id, "ended_at": at}])


def record_ping(conn: Connection, monitor: Monitor, kind: PingKind, *, now: float, source: str = "http",
                exit_status: int | None = None, body: str | None = None,
                duration_seconds: float | None = None) -> dict[str, Any]:
    """Apply one ping in the caller's transaction.

    >>> # record_ping(conn, monitor, "success", now=clock.now())
    """
    if kind == "start":
        duration = None
    elif duration_seconds is not None:
        duration = duration_seconds
    else:
        duration = round(now - monitor.run_started_at, 3) if monitor.run_started_at is not None else None
    conn.execute(heartbeat_pings.insert().values(monitor_id=monitor.id, at=now, kind=kind, exit_status=exit_status,
                                                 duration_seconds=duration, source=source, body=body))
    if monitor.paused:
        return {"status": "paused"}
    if kind == "start":
        conn.execute(update(monitors).where(monitors.c.id == monitor.id).values(run_started_at=now))
        return {"status": monitor.status}
    values: dict[str, Any] = {"run_started_at": None, "last_check_at": now}
    if monitor.first_result_at is None:
        values["first_result_at"] = now  # uptime is counted from here (docs/uptime.md)
    if monitor.type == "heartbeat":
        values["heartbeat_deadline"] = deadline_after(monitor.config, now)
    conn.execute(update(monitors).where(monitors.c.id == monitor.id).values(values))
    if kind == "fail":
        if monitor.status != "down":
            error = f"the job reported failure (exit status {exit_status})" if exit_status is not None \
                else "the job reported failure"
            _go_down(conn, monitor, now, now, error, HEARTBEAT_FAILED)
        return {"status": "down"}
    conn.execute(update(monitors).where(monitors.c.id == monitor.id).values(
        status="up", consecutive_failures=0, consecutive_successes=monitor.consecutive_successes + 1,
        last_error=None, **({"status_changed_at": now} if monitor.status != "up" else {})))
    if monitor.status == "down":
        _go_up(conn, monitor, now)
    return {"status": "up", "duration_seconds": duration}


def sweep_heartbeats(conn: Connection, now: float) -> int:
    """Mark heartbeats whose deadline passed, or whose run outlived `max_run_seconds`, as down (not
    during maintenance); returns how many went down."""
    rows = conn.execute(select(monitors).where(
        monitors.c.type == "heartbeat", monitors.c.status == "up", monitors.c.paused.is_(False),
        monitors.c.heartbeat_deadline < now)).all()
    late = [monitor_from_row(row) for row in rows]
    overrun = _overrun_runs(conn, now)
    windows = list_windows(conn, {m.project_id for m in late + overrun}) if late or overrun else []
    count = 0
    for monitor in late:
        if in_maintenance(windows, monitor.project_id, monitor.id, now) or monitor.id in {m.id for m in overrun}:
            continue
        assert monitor.heartbeat_deadline is not None
        _go_down(conn, monitor, now, monitor.heartbeat_deadline,
                 f"no ping since {_iso(monitor.last_check_at)}; it was due by {_iso(monitor.heartbeat_deadline)}",
                 HEARTBEAT_LATE)
        count += 1
    for monitor in overrun:
        # The run is over either way: a late success must not be timed from this start.
        conn.execute(update(monitors).where(monitors.c.id == monitor.id).values(run_started_at=None))
        if monitor.status == "down" or in_maintenance(windows, monitor.project_id, monitor.id, now):
            continue
        assert monitor.run_started_at is not None
        limit = int(monitor.config["max_run_seconds"])
        _go_down(conn, monitor, now, monitor.run_started_at + limit,
                 f"the run started at {_iso(monitor.run_started_at)} did not finish within {limit} s",
                 HEARTBEAT_FAILED)
        count += 1
    return count


def _overrun_runs(conn: Connection, now: float) -> list[Monitor]:
    """Heartbeats with an open run older than their `max_run_seconds` (few: only runs in progress)."""
    rows = conn.execute(select(monitors).where(
        monitors.c.type == "heartbeat", monitors.c.paused.is_(False), monitors.c.run_started_at.is_not(None))).all()
    found = [monitor_from_row(row) for row in rows]
    return [m for m in found if m.config.get("max_run_seconds") and m.run_started_at is not None
            and now > m.run_started_at + float(m.config["max_run_seconds"])]


def _iso(epoch: float | None) -> str:
    if epoch is None:
        return "never"
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def recent_pings(conn: Connection, monitor_id: int, *, limit: int = 50) -> list[dict[str, Any]]:
    rows = conn.execute(select(heartbeat_pings).where(heartbeat_pings.c.monitor_id == monitor_id)
                        .order_by(heartbeat_pings.c.at.desc()).limit(limit))
    return [{"at": r.at, "kind": r.kind, "exit_status": r.exit_status, "duration_seconds": r.duration_seconds,
             "source": r.source, "body": r.body} for r in rows]
