"""Uptime %, percentiles, SLA and error budget from recorded outcomes; the monitors file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Connection

from tests.uptime.conftest import UptimeWorld
from watchkeeper.config import ConfigError
from watchkeeper.uptime.checkers import CheckResult
from watchkeeper.uptime.maintenance import MaintenanceSpec, create_window
from watchkeeper.uptime.monitors import list_monitors
from watchkeeper.uptime.monitors_file import FileMonitor, load_monitors_file, sync_monitors
from watchkeeper.uptime.reports import components_sla_month, daily_bars, sla_month, uptime_between
from watchkeeper.uptime.results import CheckOutcome, record_results

NOV_1 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp()


def record(world: UptimeWorld, monitor_id: int, outcomes: list[tuple[float, bool, float | None]]) -> None:
    batch = [CheckOutcome(monitor_id, at, CheckResult(ok, ms, None, None if ok else "down")) for at, ok, ms in outcomes]
    world.write(lambda conn: record_results(conn, batch))


def test_uptime_percent_is_confirmed_downtime_over_the_time_watched_and_percentiles(world: UptimeWorld) -> None:
    monitor = world.create({"name": "x", "type": "tcp", "failures_to_down": 1,
                            "config": {"host": "127.0.0.1", "port": 1}})
    start = NOV_1 + 3600
    # 100 checks a minute apart: 95 good with 10..104 ms, 5 failures (5 one-minute outages), and a good one.
    record(world, monitor.id, [(start + 60 * i, i % 20 != 19, 10.0 + i if i % 20 != 19 else None) for i in range(100)]
           + [(start + 6000, True, 58.0)])
    now = NOV_1 + 86400
    with world.runtime.engine.connect() as conn:
        day = uptime_between(conn, monitor.id, NOV_1, now, now=now)
        month = uptime_between(conn, monitor.id, NOV_1, NOV_1 + 30 * 86400, now=now)
        bars = daily_bars(conn, [monitor.id], now - 1, days=2)
    # Counted from the first check (01:00), not from midnight: 23 hours watched, 5 minutes down.
    expected = round(100 * (1 - 300 / (23 * 3600)), 4)
    assert day["checks"] == 101 and day["failures"] == 5 and day["uptime_percent"] == expected
    assert day["downtime_seconds"] == 300 and day["counted_seconds"] == 23 * 3600
    assert month["uptime_percent"] == expected  # nothing after now is counted
    assert day["response_ms_p50"] == pytest.approx(58, rel=0.03)
    assert day["response_ms_p95"] == pytest.approx(104, rel=0.03)
    assert bars[0] == {"date": "2026-10-31", "uptime_percent": None, "downtime_minutes": 0}
    assert bars[-1]["date"] == "2026-11-01" and bars[-1]["downtime_minutes"] == 5


def test_sla_compliance_and_error_budget(world: UptimeWorld) -> None:
    monitor = world.create({"name": "x", "type": "tcp", "failures_to_down": 1, "sla_target": 99.9,
                            "config": {"host": "127.0.0.1", "port": 1}})
    # Watched from Nov 1st, down 30 minutes on Nov 10th: 43.2 minutes of budget in a 30-day month at 99.9 %.
    down_at = NOV_1 + 9 * 86400
    record(world, monitor.id, [(NOV_1, True, 5.0), (down_at - 60, True, 5.0), (down_at, False, None),
                               (down_at + 1800, True, 5.0)])
    with world.runtime.engine.connect() as conn:
        report = sla_month(conn, monitor.id, 99.9, 2026, 11, now=NOV_1 + 30 * 86400)
        october = sla_month(conn, monitor.id, 99.9, 2026, 10, now=NOV_1 + 30 * 86400)
    assert report["downtime_minutes"] == 30 and report["budget_minutes"] == 43.2
    assert report["budget_remaining_minutes"] == 13.2 and report["met"]
    assert report["compliance_percent"] == pytest.approx(100 * (1 - 30 / (30 * 1440)), abs=1e-4)
    # October, before the first check: no data, neither 100 % nor met.
    assert october["downtime_minutes"] == 0 and october["compliance_percent"] is None and october["met"] is None


def write_file(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_monitors_file_adds_changes_and_removes(world: UptimeWorld, tmp_path: Path) -> None:
    file = write_file(tmp_path / "monitors.yaml", """
monitors:
  - {project: uptime, slug: api, name: API, type: http, config: {url: "https://api.example.com/health"}}
  - {project: uptime, slug: db, name: DB, type: tcp, config: {host: db.example.com, port: 5432}}
""")

    def sync(entries: list[FileMonitor]) -> dict[str, int]:
        return world.write(lambda conn: sync_monitors(conn, entries, now=world.clock.now()))  # type: ignore[no-any-return]

    def names(conn: Connection) -> list[tuple[str | None, str, str | None]]:
        return [(m.slug, m.name, m.managed_by) for m in list_monitors(conn, world.project_id)]

    assert sync(load_monitors_file(file)) == {"created": 2, "changed": 0, "deleted": 0}
    assert sync(load_monitors_file(file)) == {"created": 0, "changed": 0, "deleted": 0}
    write_file(file, """
monitors:
  - {project: uptime, slug: api, name: API v2, type: http, config: {url: "https://api.example.com/health"}}
""")
    assert sync(load_monitors_file(file)) == {"created": 0, "changed": 1, "deleted": 1}
    with world.runtime.engine.connect() as conn:
        assert names(conn) == [("api", "API v2", "config")]


@pytest.mark.parametrize(("text", "message"), [
    ("monitors: [{project: p, slug: a, name: A, type: http, config: {url: 'gopher://x'}}]", "config.url"),
    ("monitors: [{project: p, name: A, type: tcp, config: {host: x, port: 1}}]", "monitors.0.slug"),
    ("monitors: [{project: p, slug: a, name: A, type: tcp, colour: red, config: {host: x, port: 1}}]",
     "monitors.0.colour"),
    ("monitors: [{project: p, slug: a, name: A, type: tcp, config: {host: x, port: 1}},"
     " {project: p, slug: a, name: B, type: tcp, config: {host: x, port: 1}}]", "monitors.1.slug"),
    ("monitors: [", "not valid YAML"),
])
def test_monitors_file_errors_name_the_entry(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_monitors_file(write_file(tmp_path / "m.yaml", text))
    assert message in str(caught.value)


def test_unknown_project_in_the_file_is_an_error(world: UptimeWorld, tmp_path: Path) -> None:
    entries = load_monitors_file(write_file(tmp_path / "m.yaml", """
monitors: [{project: nowhere, slug: a, name: A, type: tcp, config: {host: x, port: 1}}]
"""))
    with pytest.raises(ConfigError, match="unknown project 'nowhere'"):
        world.write(lambda conn: sync_monitors(conn, entries, now=world.clock.now()))


def test_maintenance_is_left_out_of_the_sla(world: UptimeWorld) -> None:
    monitor = world.create({"name": "x", "type": "tcp", "failures_to_down": 1, "sla_target": 99.9,
                            "config": {"host": "127.0.0.1", "port": 1}})
    down_at = NOV_1 + 9 * 86400 + 2 * 3600 - 600  # 01:50 UTC on Nov 10th, down for 30 minutes
    record(world, monitor.id, [(down_at - 60, True, 5.0), (down_at, False, None), (down_at + 1800, True, 5.0)])
    # Nightly maintenance 02:00-03:00 UTC: 20 of the 30 minutes fall in it.
    world.write(lambda conn: create_window(conn, world.project_id, MaintenanceSpec(
        title="nightly", cron="0 2 * * *", timezone="UTC", duration_seconds=3600), now=NOV_1))
    with world.runtime.engine.connect() as conn:
        report = sla_month(conn, monitor.id, 99.9, 2026, 11, now=NOV_1 + 30 * 86400)
    assert report["downtime_minutes"] == 10


def test_a_component_is_down_while_any_of_its_monitors_is(world: UptimeWorld) -> None:
    first, second = (world.create({"name": n, "type": "tcp", "failures_to_down": 1,
                                   "config": {"host": "127.0.0.1", "port": 1}}).id for n in ("a", "b"))
    down_at = NOV_1 + 9 * 86400
    # a: down 20 min; b: down from minute 10 to minute 40 (overlapping): the component 40 minutes.
    record(world, first, [(NOV_1, True, 5.0), (down_at, False, None), (down_at + 1200, True, 5.0)])
    record(world, second, [(NOV_1, True, 5.0), (down_at + 600, False, None), (down_at + 2400, True, 5.0)])
    with world.runtime.engine.connect() as conn:
        report = components_sla_month(conn, [first, second], 99.9, 2026, 11, now=NOV_1 + 30 * 86400)
        alone = components_sla_month(conn, [first], 99.9, 2026, 11, now=NOV_1 + 30 * 86400)
    assert report["downtime_minutes"] == 40 and report["budget_remaining_minutes"] == pytest.approx(3.2)
    assert report["met"] and report["compliance_percent"] == pytest.approx(100 * (1 - 40 / (30 * 1440)), abs=1e-4)
    assert alone["downtime_minutes"] == 20 and alone["met"]
