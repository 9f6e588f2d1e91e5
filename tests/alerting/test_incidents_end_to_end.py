"""End to end on the real server: a local service goes down, the uptime monitor confirms it, the default
"Monitor down" rule fires a critical alert, the receiver gets exactly one notification, an incident opens
and its escalation pages; acknowledging through the signed link in the page stops the escalation.

The server runs on a manual clock that the test moves forward (checks, rules, group timers and
escalation steps all read it); its loops run as in production.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.alerting.conftest import START
from tests.alerting.receivers import HttpReceiver
from tests.conftest import Server, make_project, make_token, run_server
from watchkeeper.config import AlertingSettings, Settings
from watchkeeper.lib.clock import ManualClock


class Service:
    """The service under watch: answers GET with 200 until stopped (then connections are refused)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as http:
        yield http


@pytest.fixture
def site(settings: Settings, tmp_path: Path, receiver: HttpReceiver) -> Iterator[tuple[Server, ManualClock]]:
    routing = tmp_path / "alerting.yml"
    routing.write_text(yaml.safe_dump({
        "route": {"receiver": "hook", "group_by": ["alertname", "project"], "group_wait": "0s"},
        "receivers": [{"name": "hook", "webhook_configs": [{"url": f"{receiver.url}/hook"}]},
                      {"name": "pager", "webhook_configs": [{"url": f"{receiver.url}/pager"}]}],
    }))
    alerting = AlertingSettings(config_file=routing, evaluation_interval_seconds=0.1, dispatch_interval_seconds=0.1,
                                incident_interval_seconds=0.1, link_secret="e2e")
    clock = ManualClock(START)
    with run_server(settings.model_copy(update={"alerting": alerting}), clock) as server:
        yield server, clock


def paths(receiver: HttpReceiver, path: str) -> list[Any]:
    return [r.json() for r in list(receiver.requests) if r.path == path]


def advance_until(clock: ManualClock, condition: Callable[[], bool], *, step: float, limit: int = 40) -> None:
    """Move the server's clock by `step` until `condition` holds, giving its loops time after each move."""
    for _ in range(limit):
        clock.advance(step)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.02)
    raise AssertionError("condition not reached")


def test_a_service_going_down_pages_once_opens_an_incident_and_the_link_stops_escalation(
        site: tuple[Server, ManualClock], receiver: HttpReceiver) -> None:
    server, clock = site
    service = Service()
    api = httpx.Client(base_url=server.url + "/api/v1", headers={"Authorization": f"Bearer {make_token(server)}"},
                       timeout=30)
    project = make_project(server, "Shop")
    policy = {"name": "Ops", "steps": [{"targets": [{"kind": "receiver", "name": "pager"}], "minutes": 5},
                                       {"targets": [{"kind": "receiver", "name": "pager"}], "minutes": 5}]}
    assert api.post("/escalation-policies", json=policy).status_code == 201
    monitor = api.post(f"/projects/{project.id}/monitors", json={
        "name": "Shop API", "type": "http", "config": {"url": service.url}, "interval_seconds": 10,
        "timeout_seconds": 2, "failures_to_down": 2})
    assert monitor.status_code == 201, monitor.text
    advance_until(clock, lambda: api.get(f"/monitors/{monitor.json()['id']}").json()["status"] == "up", step=10)

    service.stop()
    advance_until(clock, lambda: bool(paths(receiver, "/pager")), step=10)
    incidents = api.get("/incidents").json()["incidents"]
    assert len(incidents) == 1
    incident = api.get(f"/incidents/{incidents[0]['id']}").json()
    assert incident["severity"] == "critical" and incident["state"] == "triggered"
    assert [(a["name"], a["severity"], a["resolved_at"]) for a in incident["alerts"]] == [
        ("Shop API is down", "critical", None)]
    assert incident["title"] == "Shop API is down" and incident["impact_started_at"] <= incident["created_at"]
    (page,) = paths(receiver, "/pager")
    assert page["incident"]["id"] == incident["id"]

    # The signed link: first a page with a button (mail scanners open links), then the action.
    link = page["incident"]["acknowledge_url"]
    with httpx.Client() as browser:
        assert "Acknowledge incident" in browser.get(link).text
        assert "is now <strong>acknowledged</strong>" in browser.post(link).text
    assert api.get(f"/incidents/{incident['id']}").json()["state"] == "acknowledged"

    # Past the step's five minutes: no second page. Positive control: the loops are running, since the
    # monitor keeps being checked (its last check time follows the clock).
    monitor_url = f"/monitors/{monitor.json()['id']}"
    for _ in range(4):
        clock.advance(120)
        before = clock.now()
        def checked(since: float = before) -> bool:
            return bool((api.get(monitor_url).json().get("last_check_at") or 0) >= since)

        advance_until(clock, checked, step=0)
    assert len(paths(receiver, "/pager")) == 1
    hooks = paths(receiver, "/hook")
    assert len(hooks) == 1 and hooks[0]["alerts"][0]["labels"]["severity"] == "critical"
    timeline = api.get(f"/incidents/{incident['id']}").json()["timeline"]
    kinds = [e["kind"] for e in timeline]
    # The alert may have fired a clock step before the round that opened the incident: then it comes first.
    assert sorted(kinds[:2]) == ["alert.fired", "status"] and kinds[2] == "notification"
    assert "Acknowledged via a link" in timeline[-1]["text"]
