"""The scheduler and the monitor state machine, against a real HTTP target, with a manual clock."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import select

from tests.uptime.conftest import HttpsTarget, HttpTarget, UptimeWorld, new_scheduler
from watchkeeper.uptime.maintenance import MaintenanceSpec, create_window
from watchkeeper.uptime.monitors import set_paused
from watchkeeper.uptime.tables import check_results, outages


def http_monitor(target: HttpTarget, **extra: object) -> dict[str, object]:
    return {"name": "Shop", "type": "http", "interval_seconds": 60, "config": {"url": target.url + "/health"},
            **extra}


def start(world: UptimeWorld) -> None:
    world.run(world.scheduler.refresh())
    world.tick(60)  # past the start jitter (at most one interval)


def test_new_monitor_goes_up_quietly_then_down_after_two_failures(world: UptimeWorld,
                                                                  http_target: HttpTarget) -> None:
    monitor = world.create(http_monitor(http_target))
    start(world)
    assert world.monitor(monitor.id).status == "up"
    assert world.signals() == []
    http_target.set_healthy(False)
    world.tick(60)
    first_failure = world.monitor(monitor.id).last_check_at
    assert world.monitor(monitor.id).status == "up" and world.monitor(monitor.id).consecutive_failures == 1
    world.tick(60)
    down = world.monitor(monitor.id)
    assert down.status == "down" and down.last_error == "status 500"
    (signal,) = world.signals("monitor.down")
    assert signal.payload["monitor_id"] == monitor.id and signal.payload["error"] == "status 500"
    world.tick(60)
    assert len(world.signals("monitor.down")) == 1  # still down: no repeat
    with world.runtime.engine.connect() as conn:
        (outage,) = conn.execute(select(outages)).all()
    assert outage.started_at == first_failure and outage.ended_at is None and outage.first_error == "status 500"


def test_up_again_after_m_successes_closes_the_outage(world: UptimeWorld, http_target: HttpTarget) -> None:
    monitor = world.create(http_monitor(http_target, successes_to_up=2, failures_to_down=1))
    start(world)
    http_target.set_healthy(False)
    world.tick(60)
    assert world.monitor(monitor.id).status == "down"
    http_target.set_healthy(True)
    world.tick(60)
    assert world.monitor(monitor.id).status == "down"
    world.tick(60)
    assert world.monitor(monitor.id).status == "up"
    (up,) = world.signals("monitor.up")
    assert up.payload["down_seconds"] == 120
    with world.runtime.engine.connect() as conn:
        (outage,) = conn.execute(select(outages)).all()
    assert outage.ended_at == world.monitor(monitor.id).status_changed_at


def test_restart_creates_no_false_transitions(world: UptimeWorld, http_target: HttpTarget) -> None:
    monitor = world.create(http_monitor(http_target, failures_to_down=1))
    start(world)
    http_target.set_healthy(False)
    world.tick(60)
    assert world.monitor(monitor.id).status == "down"
    # A new process: a new scheduler reads the persisted state and keeps the rhythm of the checks.
    world.scheduler = new_scheduler(world.runtime, world.outbound)
    world.run(world.scheduler.refresh())
    assert world.scheduler.next_due() == world.monitor(monitor.id).last_check_at + 60
    world.tick(60)
    assert [s.kind for s in world.signals()] == ["monitor.down"]
    http_target.set_healthy(True)
    world.tick(60)
    assert [s.kind for s in world.signals()] == ["monitor.down", "monitor.up"]


def test_failures_during_maintenance_do_not_bring_it_down(world: UptimeWorld, http_target: HttpTarget) -> None:
    monitor = world.create(http_monitor(http_target, failures_to_down=1))
    start(world)
    now = world.clock.now()
    world.write(lambda conn: create_window(conn, world.project_id, MaintenanceSpec(
        title="deploy", monitor_ids=[monitor.id], starts_at=now, ends_at=now + 150), now=now))
    http_target.set_healthy(False)
    world.tick(60)
    world.tick(60)
    assert world.monitor(monitor.id).status == "up" and world.signals() == []
    world.tick(60)  # the window is over
    assert world.monitor(monitor.id).status == "down"
    with world.runtime.engine.connect() as conn:
        flags = [r.in_maintenance for r in conn.execute(select(check_results).order_by(check_results.c.at))]
    assert flags == [False, True, True, False]


def test_paused_monitors_are_not_checked(world: UptimeWorld, http_target: HttpTarget) -> None:
    monitor = world.create(http_monitor(http_target))
    start(world)
    hits = http_target.hits
    world.write(lambda conn: set_paused(conn, monitor.id, True, now=world.clock.now()))
    world.run(world.scheduler.refresh())
    world.tick(120)
    assert http_target.hits == hits and world.monitor(monitor.id).status == "paused"


def test_pausing_a_down_monitor_ends_its_outage(world: UptimeWorld, http_target: HttpTarget) -> None:
    monitor = world.create(http_monitor(http_target, failures_to_down=1))
    start(world)
    http_target.set_healthy(False)
    world.tick(60)
    assert world.monitor(monitor.id).status == "down"
    world.write(lambda conn: set_paused(conn, monitor.id, True, now=world.clock.now()))
    with world.runtime.engine.connect() as conn:
        (outage,) = conn.execute(select(outages)).all()
    assert outage.ended_at == world.clock.now()


def test_a_timed_out_check_does_not_delay_the_others(world: UptimeWorld, http_target: HttpTarget) -> None:
    slow = world.create({"name": "Slow", "type": "http", "timeout_seconds": 2,
                         "config": {"url": http_target.url + "/sleep"}})
    fast = world.create(http_monitor(http_target))
    world.run(world.scheduler.refresh())
    world.clock.advance(60)

    async def dispatch_then_wait() -> float:
        assert world.scheduler.dispatch_due() == 2
        started = time.monotonic()
        while world.scheduler.unwritten < 1:
            await asyncio.sleep(0.01)
        return time.monotonic() - started

    assert world.run(dispatch_then_wait()) < 1.0  # the fast check finished while the slow one hangs
    world.run(world.scheduler.tick())
    assert world.monitor(fast.id).status == "up"
    assert world.monitor(slow.id).last_error == "timed out after 2s"


def test_certificate_expiring_signalled_once_per_threshold(world: UptimeWorld, https_target: HttpsTarget) -> None:
    world.create({"name": "TLS", "type": "tls", "config": {"host": "127.0.0.1", "port": https_target.port,
                                                            "verify_tls": False}})
    start(world)
    world.tick(60)
    (signal,) = world.signals("certificate.expiring")
    assert signal.payload["threshold_days"] == 14 and 9 < signal.payload["days_left"] < 10.1
    world.clock.advance(4 * 86400)  # now 6 days left: the 7-day threshold
    world.run(world.scheduler.tick())
    world.tick(60)
    assert [s.payload["threshold_days"] for s in world.signals("certificate.expiring")] == [14, 7]


def test_slow_answers_signal_degraded(world: UptimeWorld, http_target: HttpTarget) -> None:
    monitor = world.create({"name": "Slowish", "type": "http",
                            "config": {"url": http_target.url + "/slow", "degraded_ms": 100}})
    start(world)
    world.tick(60)
    assert world.monitor(monitor.id).status == "up" and world.monitor(monitor.id).degraded
    assert len(world.signals("monitor.degraded")) == 1
