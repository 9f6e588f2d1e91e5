"""Charts of a new monitor in Debian's Chromium: with a single check the response-time chart spans the
chosen range ending now (not years), a failed check is a red band and a gap, never a point at 0 ms, and
the monitors list's sparkline shows the first check at once. Screenshots light and dark, 1280 and 390 px."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.conftest import Server, make_project
from tests.web.test_browser import log_in, shot
from tests.web.test_uptime_pages import record
from watchkeeper.store.writer import call_each
from watchkeeper.uptime.monitors import create_monitor
from watchkeeper.uptime.specs import MonitorSpec


def test_a_new_monitors_chart_spans_the_range_and_failed_checks_are_not_zero_ms(page: Page, server: Server) -> None:
    project = make_project(server, "Shop")
    now = server.runtime.clock.now()
    spec = MonitorSpec.model_validate({"name": "Checkout", "type": "tcp", "config": {"host": "127.0.0.1", "port": 1}})
    monitor_id = server.runtime.writer.run_sync(
        call_each, lambda conn: create_monitor(conn, project.id, spec, now=now - 5)).id
    record(server, monitor_id, True, now - 1, 42.0)  # the first and only good check
    log_in(page, server)

    page.goto(f"{server.url}/projects/{project.id}/monitors")
    # One check: the sparkline shows it at once (the latest point is a dot), per minute of the last hour.
    spark = page.locator(f'tr[data-monitor="{monitor_id}"] svg.spark')
    expect(spark.locator("circle")).to_have_count(1)
    expect(spark).to_have_attribute("aria-label", "response time over the last hour, latest 42.0 ms")

    page.goto(f"{server.url}/monitors/{monitor_id}?range=24h")
    chart = page.locator("#response-chart")
    expect(chart).to_have_attribute("data-drawn", "1")
    x_min, x_max = float(chart.get_attribute("data-x-min") or 0), float(chart.get_attribute("data-x-max") or 0)
    # The axis is the last 24 hours ending now, not a window around one point (it spanned 2027 to 2029).
    assert abs((x_max - x_min) - 86400) < 120 and abs(x_max - now) < 120, (x_min, x_max, now)
    assert chart.get_attribute("data-failed-buckets") == "0"

    # A failed check (no response): a red band and a gap in the line; the series holds no 0 ms.
    record(server, monitor_id, False, now - 180, error="connection refused")
    page.reload()
    expect(chart).to_have_attribute("data-failed-buckets", "1")
    data = page.evaluate("JSON.parse(document.getElementById('response-data').textContent)")
    assert 0 not in data["y"] and None in data["y"] and data["failures"].count(1) == 1
    expect(page.locator(".chart-key")).to_contain_text("failed checks")
    shot(page, "uptime-10-new-monitor-chart")
    page.emulate_media(color_scheme="dark")
    shot(page, "uptime-11-new-monitor-chart-dark")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(chart).to_have_attribute("data-failed-buckets", "1")
    shot(page, "uptime-12-new-monitor-chart-dark-phone")
    page.emulate_media(color_scheme="light")
    shot(page, "uptime-13-new-monitor-chart-phone")
    # A few minutes on, the same hour draws a line of the minutes' checks.
    record(server, monitor_id, True, now - 120, 30.0)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{server.url}/projects/{project.id}/monitors")
    points = spark.locator("polyline").get_attribute("points") or ""
    assert len(points.split()) == 2 and re.search(r"/monitors$", page.url)
    shot(page, "uptime-14-new-monitor-list")
