"""Uptime checks follow the background lease (store/leases.py) between two real servers on one database."""

from __future__ import annotations

import httpx

from tests.conftest import make_project, make_token, run_server
from tests.test_roles import leading, wait_until, with_role
from tests.uptime.conftest import HttpTarget
from watchkeeper.config import Settings
from watchkeeper.lib.clock import ManualClock


def test_a_server_that_takes_the_lease_back_checks_its_monitors_again(
    settings: Settings, http_target: HttpTarget,
) -> None:
    """The checks' HTTP clients live as long as the server: stopping the work when the lease moved away
    must not close them, or every check after the lease came back fails. Each server has its own clock:
    moving one past the other's term is, to the lease, the other not renewing (see test_roles)."""
    quick = with_role(settings, "all", lease_seconds=1.0)
    clock_a, clock_b = ManualClock(), ManualClock()
    with run_server(quick, clock_a) as a:
        wait_until(lambda: leading(a.runtime))
        project = make_project(a)
        headers = {"Authorization": f"Bearer {make_token(a)}"}
        spec = {"name": "Shop", "type": "http", "config": {"url": http_target.url + "/health"}, "interval_seconds": 60}
        created = httpx.post(f"{a.url}/api/v1/projects/{project.id}/monitors", json=spec, headers=headers)
        assert created.status_code == 201, created.text
        # Scheduled (at a random start within its interval of a's clock), then past that start.
        wait_until(lambda: "watchkeeper_uptime_monitors_scheduled 1.0" in httpx.get(f"{a.url}/metrics").text)
        clock_a.advance(61)
        wait_until(lambda: http_target.hits == 1)
        with run_server(quick, clock_b) as b:
            clock_b.advance(70)  # b takes the lease (the monitor is due again at +121 only)
            wait_until(lambda: leading(b.runtime) and not leading(a.runtime))
            clock_a.advance(120)  # a takes it back, and the monitor is due
            wait_until(lambda: leading(a.runtime) and not leading(b.runtime))
            wait_until(lambda: http_target.hits == 2)
            monitor = httpx.get(f"{a.url}/api/v1/monitors/{created.json()['id']}",
                                headers=headers).json()
            assert monitor["status"] == "up", monitor
