"""Sentry cron check-ins drive heartbeats: `sentry_sdk.crons.capture_checkin` / `@monitor` work unchanged.

The ingest keeps each `check_in` envelope item as sent (the `envelope_items` log). This reader follows
that log by id (its position in `uptime_cursors`), finds the heartbeat of the project with the check-in's
`monitor_slug` — creating it from the SDK's `monitor_config` when there is one, as Sentry does — and
applies `in_progress` as a start, `ok` as a success and `error` as a failure.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, select

from watchkeeper.errors.tables import envelope_items
from watchkeeper.lib.blobs import unpack_document
from watchkeeper.store.dialect import upsert
from watchkeeper.uptime.heartbeats import PingKind, record_ping
from watchkeeper.uptime.monitors import Monitor, create_monitor, find_monitor_by_slug
from watchkeeper.uptime.specs import MonitorSpec
from watchkeeper.uptime.tables import cursors

log = logging.getLogger(__name__)
CURSOR = "sentry_check_ins"
KINDS: dict[str, PingKind] = {"in_progress": "start", "ok": "success", "error": "fail", "timeout": "fail"}
INTERVAL_UNITS = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400, "month": 30 * 86400,
                  "year": 365 * 86400}
SLUG = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


def heartbeat_from_sentry(slug: str, config: dict[str, Any]) -> MonitorSpec | None:
    """The heartbeat described by an SDK's `monitor_config`, or None when it cannot be understood."""
    schedule = config.get("schedule") or {}
    heartbeat: dict[str, Any] = {"timezone": config.get("timezone") or "UTC",
                                 "grace_seconds": int(float(config.get("checkin_margin") or 1) * 60)}
    if schedule.get("type") == "crontab":
        heartbeat["cron"] = schedule.get("value")
    elif schedule.get("type") == "interval" and schedule.get("unit") in INTERVAL_UNITS:
        heartbeat["period_seconds"] = max(60, int(schedule.get("value") or 1) * INTERVAL_UNITS[schedule["unit"]])
    else:
        return None
    try:
        return MonitorSpec(name=slug, slug=slug, type="heartbeat", config=heartbeat)
    except ValidationError:
        return None


def _monitor_for(conn: Connection, project_id: int, check_in: dict[str, Any], now: float) -> Monitor | None:
    slug = str(check_in.get("monitor_slug") or "").lower()
    if not SLUG.match(slug):
        return None
    monitor = find_monitor_by_slug(conn, project_id, slug)
    if monitor is None and isinstance(check_in.get("monitor_config"), dict):
        spec = heartbeat_from_sentry(slug, check_in["monitor_config"])
        if spec is not None:
            monitor = create_monitor(conn, project_id, spec, now=now, managed_by="sentry")
    return monitor if monitor is not None and monitor.type == "heartbeat" else None


def apply_check_in(conn: Connection, project_id: int, check_in: dict[str, Any], received: float) -> bool:
    kind = KINDS.get(str(check_in.get("status")))
    if kind is None:
        return False
    monitor = _monitor_for(conn, project_id, check_in, received)
    if monitor is None:
        return False
    duration = check_in.get("duration")
    record_ping(conn, monitor, kind, now=received, source="sentry",
                duration_seconds=float(duration) if isinstance(duration, int | float) and kind != "start" else None)
    return True


def consume_check_ins(conn: Connection, *, limit: int = 500) -> int:
    """Apply check-ins stored since the last call; returns how many were read."""
    position = conn.execute(select(cursors.c.position).where(cursors.c.name == CURSOR)).scalar() or 0
    rows = conn.execute(
        select(envelope_items.c.id, envelope_items.c.project_id, envelope_items.c.received, envelope_items.c.data)
        .where(envelope_items.c.type == "check_in", envelope_items.c.id > position)
        .order_by(envelope_items.c.id).limit(limit)
    ).all()
    for row in rows:
        try:
            document = unpack_document(row.data)
        except Exception:
            log.warning("check-in %d is not readable; skipped", row.id)
            continue
        if isinstance(document, dict):
            apply_check_in(conn, row.project_id, document, row.received)
    if rows:
        _save_position(conn, rows[-1].id)
    return len(rows)


def _save_position(conn: Connection, position: int) -> None:
    statement = upsert(conn, cursors).values(name=CURSOR, position=position)
    conn.execute(statement.on_conflict_do_update(index_elements=["name"], set_={"position": position}))
