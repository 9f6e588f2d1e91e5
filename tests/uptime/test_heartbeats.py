"""Heartbeats with a manual clock: period + grace, cron + time zone, /start durations, failures,
maintenance; Sentry check-ins read from the ingest's log."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection

from tests.uptime.conftest import UptimeWorld
from watchkeeper.errors.tables import envelope_items
from watchkeeper.lib.blobs import pack_document
from watchkeeper.uptime.check_ins import consume_check_ins
from watchkeeper.uptime.heartbeats import PingKind, record_ping, sweep_heartbeats
from watchkeeper.uptime.maintenance import MaintenanceSpec, create_window
from watchkeeper.uptime.monitors import find_monitor_by_slug, get_monitor
from watchkeeper.uptime.reports import list_outages


def ping(world: UptimeWorld, monitor_id: int, kind: PingKind = "success", **extra: object) -> dict[str, object]:
    def run(conn: Connection) -> dict[str, object]:
        monitor = get_monitor(conn, monitor_id)
        assert monitor is not None
        return record_ping(conn, monitor, kind, now=world.clock.now(), **extra)  # type: ignore[arg-type]

    return world.write(run)  # type: ignore[no-any-return]


def sweep(world: UptimeWorld) -> int:
    return world.write(lambda conn: sweep_heartbeats(conn, world.clock.now()))  # type: ignore[no-any-return]


def hourly(world: UptimeWorld, **config: object) -> int:
    return world.create({"name": "backup", "slug": "backup", "type": "heartbeat",
                         "config": {"period_seconds": 3600, "grace_seconds": 600, **config}}).id


def test_new_heartbeat_is_never_late_before_its_first_ping(world: UptimeWorld) -> None:
    monitor_id = hourly(world)
    world.clock.advance(10 * 86400)
    assert sweep(world) == 0 and world.monitor(monitor_id).status == "new"


def test_late_after_period_plus_grace_then_up_on_the_next_ping(world: UptimeWorld) -> None:
    monitor_id = hourly(world)
    ping(world, monitor_id)
    assert world.monitor(monitor_id).status == "up"
    world.clock.advance(3600 + 599)
    assert sweep(world) == 0
    world.clock.advance(2)
    assert sweep(world) == 1
    assert world.monitor(monitor_id).status == "down"
    (late,) = world.signals("heartbeat.late")
    assert late.payload["monitor_id"] == monitor_id and "it was due by" in late.payload["error"]
    assert sweep(world) == 0  # already down: signalled once
    world.clock.advance(60)
    ping(world, monitor_id)
    assert world.monitor(monitor_id).status == "up"
    assert [s.kind for s in world.signals()] == ["heartbeat.late", "monitor.up"]
    with world.runtime.engine.connect() as conn:
        (outage,) = list_outages(conn, monitor_id, world.clock.now())
    assert outage["duration_seconds"] == 61 and not outage["ongoing"]


def test_start_then_success_measures_the_run(world: UptimeWorld) -> None:
    monitor_id = hourly(world)
    ping(world, monitor_id, "start")
    world.clock.advance(42.5)
    assert ping(world, monitor_id)["duration_seconds"] == 42.5


def test_fail_and_nonzero_exit_status_are_down_at_once(world: UptimeWorld) -> None:
    monitor_id = hourly(world)
    ping(world, monitor_id)
    ping(world, monitor_id, "fail", exit_status=3)
    assert world.monitor(monitor_id).status == "down"
    (failed,) = world.signals("heartbeat.failed")
    assert failed.payload["error"] == "the job reported failure (exit status 3)"


def test_cron_schedule_in_a_time_zone(world: UptimeWorld) -> None:
    # Daily at 02:00 in New York (07:00 UTC in winter), 30 minutes of grace.
    world.clock.set(dt.datetime(2026, 1, 10, 7, 1, tzinfo=dt.UTC).timestamp())
    monitor_id = world.create({"name": "nightly", "type": "heartbeat", "config": {
        "cron": "0 2 * * *", "timezone": "America/New_York", "grace_seconds": 1800}}).id
    ping(world, monitor_id)
    deadline = world.monitor(monitor_id).heartbeat_deadline
    assert deadline == dt.datetime(2026, 1, 11, 7, 30, tzinfo=dt.UTC).timestamp()
    world.clock.set(deadline - 1)
    assert sweep(world) == 0
    world.clock.set(deadline + 1)
    assert sweep(world) == 1


def test_no_late_signal_during_maintenance(world: UptimeWorld) -> None:
    monitor_id = hourly(world)
    ping(world, monitor_id)
    now = world.clock.now()
    world.write(lambda conn: create_window(conn, world.project_id, MaintenanceSpec(
        title="migration", starts_at=now + 3000, ends_at=now + 9000), now=now))
    world.clock.advance(5000)
    assert sweep(world) == 0 and world.monitor(monitor_id).status == "up"
    world.clock.advance(4001)
    assert sweep(world) == 1


def _store_check_in(world: UptimeWorld, document: dict[str, object]) -> None:
    world.write(lambda conn: conn.execute(envelope_items.insert().values(
        project_id=world.project_id, type="check_in", event_id=None, received=world.clock.now(),
        data=pack_document(document))))


def test_sentry_check_ins_create_and_drive_a_heartbeat(world: UptimeWorld) -> None:
    config = {"schedule": {"type": "interval", "value": 1, "unit": "hour"}, "checkin_margin": 5,
              "timezone": "UTC"}
    _store_check_in(world, {"check_in_id": "a" * 32, "monitor_slug": "nightly-export", "status": "in_progress",
                            "monitor_config": config})
    world.clock.advance(30)
    _store_check_in(world, {"check_in_id": "a" * 32, "monitor_slug": "nightly-export", "status": "ok",
                            "duration": 29.5, "monitor_config": config})
    assert world.write(lambda conn: consume_check_ins(conn)) == 2
    assert world.write(lambda conn: consume_check_ins(conn)) == 0  # the position is kept
    with world.runtime.engine.connect() as conn:
        monitor = find_monitor_by_slug(conn, world.project_id, "nightly-export")
    assert monitor is not None and monitor.status == "up" and monitor.managed_by == "sentry"
    assert monitor.config["period_seconds"] == 3600 and monitor.config["grace_seconds"] == 300
    _store_check_in(world, {"check_in_id": "b" * 32, "monitor_slug": "nightly-export", "status": "error"})
    world.write(lambda conn: consume_check_ins(conn))
    assert world.monitor(monitor.id).status == "down"
    assert len(world.signals("heartbeat.failed")) == 1


def test_a_run_that_outlives_its_max_run_time_failed(world: UptimeWorld) -> None:
    monitor_id = hourly(world, max_run_seconds=300)
    ping(world, monitor_id)
    world.clock.advance(60)
    ping(world, monitor_id, "start")
    started = world.clock.now()
    world.clock.advance(300)
    assert sweep(world) == 0  # exactly at the limit: still running
    world.clock.advance(1)
    assert sweep(world) == 1
    monitor = world.monitor(monitor_id)
    assert monitor.status == "down" and monitor.run_started_at is None
    (failed,) = world.signals("heartbeat.failed")
    assert "did not finish within 300 s" in failed.payload["error"]
    assert sweep(world) == 0  # signalled once
    with world.runtime.engine.connect() as conn:
        (outage,) = list_outages(conn, monitor_id, world.clock.now())
    assert outage["ongoing"] and outage["started_at"] == started + 300
    world.clock.advance(30)
    ping(world, monitor_id)  # the job finally reports: up again, no duration from the abandoned start
    assert world.monitor(monitor_id).status == "up"
    assert [s.kind for s in world.signals()] == ["heartbeat.failed", "monitor.up"]


def test_a_run_that_finishes_in_time_or_has_no_limit_is_not_failed(world: UptimeWorld) -> None:
    limited = hourly(world, max_run_seconds=300)
    unlimited = world.create({"name": "other", "slug": "other", "type": "heartbeat",
                              "config": {"period_seconds": 86400}}).id
    for monitor_id in (limited, unlimited):
        ping(world, monitor_id)
        ping(world, monitor_id, "start")
    world.clock.advance(200)
    ping(world, limited)
    world.clock.advance(1000)
    assert sweep(world) == 0
    assert world.monitor(limited).status == "up" and world.monitor(unlimited).status == "up"
    assert world.signals("heartbeat.failed") == []
