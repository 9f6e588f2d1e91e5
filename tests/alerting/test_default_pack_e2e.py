"""The default rule pack alerts on every bad state the product knows (issue 22, point 1), end to end on
the real server: from the signal's real source (a ping URL, a failing HTTP target, a TLS server, a
heartbeat left silent, sentry-sdk) to a local webhook receiver. Every alert links to the page of what
caused it under the configured public_url (point 6), and so does the incident it opens."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sentry_sdk
import yaml

from tests.alerting.receivers import HttpReceiver, SmtpReceiver
from tests.conftest import ProjectFixture, Server, make_project, make_token, run_server
from tests.uptime.conftest import HttpsTarget, HttpTarget, http_target, https_target  # noqa: F401 (fixtures)
from watchkeeper.config import AlertingSettings, Settings
from watchkeeper.lib.clock import ManualClock

PUBLIC = "https://watch.example.com"


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as http:
        yield http


@contextlib.contextmanager
def serve(settings: Settings, tmp_path: Path, integrations: dict[str, Any]) -> Iterator[Server]:
    routing = tmp_path / "alerting.yml"
    routing.write_text(yaml.safe_dump({
        "route": {"receiver": "hook", "group_by": ["alertname", "project", "monitor", "issue"], "group_wait": "0s"},
        "receivers": [{"name": "hook", **integrations}],
    }))
    alerting = AlertingSettings(config_file=routing, evaluation_interval_seconds=0.1, dispatch_interval_seconds=0.1,
                                incident_interval_seconds=0.2)
    uptime = settings.uptime.model_copy(update={"sweep_seconds": 0.2, "flush_seconds": 0.1})
    fast = settings.model_copy(update={"alerting": alerting, "uptime": uptime, "public_url": PUBLIC})
    # The clock is manual (a late heartbeat is a clock move away) and starts now (certificates expire in
    # real days).
    with run_server(fast, ManualClock(time.time())) as server:
        yield server


@pytest.fixture
def pack_server(settings: Settings, tmp_path: Path, receiver: HttpReceiver) -> Iterator[Server]:
    with serve(settings, tmp_path, {"webhook_configs": [{"url": f"{receiver.url}/hook"}]}) as server:
        yield server


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {timeout} s")


def alert_named(receiver: HttpReceiver, name: str, clock: ManualClock | None = None, **labels: str) -> dict[str, Any]:
    """The first firing alert called `name` (with `labels`) that reached the webhook. With `clock`, moves
    it on by a check interval each second meanwhile (a new monitor's first check is jittered by up to one
    interval)."""
    moved = time.monotonic()

    def find() -> dict[str, Any] | None:
        nonlocal moved
        if clock is not None and time.monotonic() - moved > 1.0:
            clock.advance(61)
            moved = time.monotonic()
        for request in list(receiver.requests):
            for alert in request.json()["alerts"]:
                if alert["status"] == "firing" and alert["labels"]["alertname"] == name and \
                        all(alert["labels"].get(k) == v for k, v in labels.items()):
                    return dict(alert)
        return None

    return wait_for(find, f"{name!r} alert at the webhook")  # type: ignore[no-any-return]


def manual(server: Server) -> ManualClock:
    clock = server.runtime.clock
    assert isinstance(clock, ManualClock)
    return clock


@pytest.fixture
def api(pack_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=pack_server.url, headers={"Authorization": f"Bearer {make_token(pack_server)}"},
                      timeout=30) as client:
        yield client


@pytest.fixture
def shop(pack_server: Server, api: httpx.Client) -> ProjectFixture:
    """A project with its default pack in place (applied by the first evaluation round)."""
    project = make_project(pack_server, "Shop")
    wait_for(lambda: len(api.get(f"/api/v1/projects/{project.id}/alert-rules").json()["rules"]) >= 8,
             "default rule pack")
    return project


def monitor(api: httpx.Client, project: ProjectFixture, spec: dict[str, Any]) -> dict[str, Any]:
    created = api.post(f"/api/v1/projects/{project.id}/monitors", json=spec)
    assert created.status_code == 201, created.text
    return dict(created.json())


def incident_source(api: httpx.Client, title_part: str) -> str:
    def find() -> str | None:
        for incident in api.get("/api/v1/incidents").json()["incidents"]:
            if title_part in incident["title"]:
                return str(api.get(f"/api/v1/incidents/{incident['id']}").json()["source_url"])
        return None

    return wait_for(find, f"incident about {title_part!r}")  # type: ignore[no-any-return]


def test_a_failed_cron_job_alerts_by_exit_status_and_by_fail(pack_server: Server, api: httpx.Client,
                                                             shop: ProjectFixture, receiver: HttpReceiver) -> None:
    backup = monitor(api, shop, {"name": "Nightly backup", "type": "heartbeat", "config": {"period_seconds": 86400}})
    report = monitor(api, shop, {"name": "Weekly report", "type": "heartbeat", "config": {"period_seconds": 86400}})
    assert httpx.get(f"{pack_server.url}/ping/{backup['uuid']}/1").status_code == 200
    assert httpx.post(f"{pack_server.url}/ping/{report['uuid']}/fail").status_code == 200
    failed = alert_named(receiver, "Heartbeat failed", monitor=str(backup["id"]))
    assert failed["annotations"] == {"summary": "Nightly backup reported a failure",
                                     "description": "the job reported failure (exit status 1)"}
    assert failed["generatorURL"] == f"{PUBLIC}/monitors/{backup['id']}"
    other = alert_named(receiver, "Heartbeat failed", monitor=str(report["id"]))
    assert other["annotations"]["description"] == "the job reported failure"
    assert other["generatorURL"] == f"{PUBLIC}/monitors/{report['id']}"
    # Severity high opens an incident, which links to the heartbeat too.
    assert incident_source(api, "Nightly backup") == f"{PUBLIC}/monitors/{backup['id']}"


def test_a_late_heartbeat_alerts(pack_server: Server, api: httpx.Client, shop: ProjectFixture,
                                 receiver: HttpReceiver) -> None:
    job = monitor(api, shop, {"name": "Sync", "type": "heartbeat",
                              "config": {"period_seconds": 60, "grace_seconds": 0}})
    assert httpx.get(f"{pack_server.url}/ping/{job['uuid']}").status_code == 200
    manual(pack_server).advance(120)
    late = alert_named(receiver, "Heartbeat missed", monitor=str(job["id"]))
    assert late["annotations"]["summary"] == "Sync did not check in on time"
    assert late["generatorURL"] == f"{PUBLIC}/monitors/{job['id']}"


def test_a_monitor_down_alerts_and_its_incident_links_to_it(pack_server: Server, api: httpx.Client,
                                                            shop: ProjectFixture, receiver: HttpReceiver,
                                                            http_target: HttpTarget) -> None:  # noqa: F811
    http_target.set_healthy(False)
    site = monitor(api, shop, {"name": "Checkout", "type": "http", "config": {"url": http_target.url + "/health"},
                               "failures_to_down": 1})
    down = alert_named(receiver, "Monitor down", manual(pack_server), monitor=str(site["id"]))
    assert down["annotations"]["summary"] == "Checkout is down"
    assert down["generatorURL"] == f"{PUBLIC}/monitors/{site['id']}"
    assert incident_source(api, "Checkout is down") == f"{PUBLIC}/monitors/{site['id']}"


def test_an_expiring_certificate_alerts(pack_server: Server, api: httpx.Client, shop: ProjectFixture,
                                        receiver: HttpReceiver, https_target: HttpsTarget) -> None:  # noqa: F811
    tls = monitor(api, shop, {"name": "Shop TLS", "type": "tls",
                              "config": {"host": "127.0.0.1", "port": https_target.port, "verify_tls": False}})
    expiring = alert_named(receiver, "Certificate expiring", manual(pack_server), monitor=str(tls["id"]))
    assert expiring["annotations"]["summary"].startswith("The certificate of Shop TLS expires in ")
    assert expiring["generatorURL"] == f"{PUBLIC}/monitors/{tls['id']}"


def send_errors(server: Server, project: ProjectFixture, count: int) -> None:
    dsn = f"http://{project.public_key}@{server.url.removeprefix('http://')}/{project.id}"
    client = sentry_sdk.Client(dsn=dsn, default_integrations=False)
    with sentry_sdk.new_scope() as scope:
        scope.set_client(client)
        for _ in range(count):
            try:
                raise RuntimeError("payment provider down")
            except RuntimeError:
                sentry_sdk.capture_exception()
    client.flush(timeout=10)
    client.close(timeout=10)


def test_new_issues_spikes_and_regressions_alert(pack_server: Server, api: httpx.Client, shop: ProjectFixture,
                                                 receiver: HttpReceiver) -> None:
    send_errors(pack_server, shop, 12)
    new = alert_named(receiver, "New error type")
    issue_id = new["labels"]["issue"]
    assert new["annotations"]["summary"].startswith("New issue in shop: RuntimeError")
    assert new["generatorURL"] == f"{PUBLIC}/issues/{issue_id}"
    spike = alert_named(receiver, "Error spike")
    assert spike["generatorURL"] == f"{PUBLIC}/projects/{shop.id}/issues"
    assert api.patch(f"/api/v1/issues/{issue_id}", json={"status": "resolved"}).status_code == 200
    send_errors(pack_server, shop, 1)
    regressed = alert_named(receiver, "Issue regressed", issue=issue_id)
    assert regressed["annotations"]["summary"].startswith("Regression in shop: RuntimeError")
    assert regressed["generatorURL"] == f"{PUBLIC}/issues/{issue_id}"


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as mail:
        yield mail


def test_every_channel_links_to_the_cause(settings: Settings, tmp_path: Path, receiver: HttpReceiver,
                                          smtp: SmtpReceiver) -> None:
    """Slack, Discord, Teams, PagerDuty and e-mail messages link each alert to the page of what caused it."""
    url = receiver.url
    integrations = {
        "slack_configs": [{"api_url": f"{url}/slack", "send_resolved": False}],
        "discord_configs": [{"webhook_url": f"{url}/discord"}], "teams_configs": [{"webhook_url": f"{url}/teams"}],
        "pagerduty_configs": [{"routing_key": "key", "url": f"{url}/pagerduty"}],
        "email_configs": [{"to": "oncall@example.com", "from": "wk@example.com", "smarthost": smtp.smarthost,
                           "require_tls": False}],
    }
    with serve(settings, tmp_path, integrations) as server:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {make_token(server)}"},
                          timeout=30) as api:
            project = make_project(server, "Shop")
            wait_for(lambda: len(api.get(f"/api/v1/projects/{project.id}/alert-rules").json()["rules"]) >= 8,
                     "default rule pack")
            job = monitor(api, project, {"name": "Backup", "type": "heartbeat", "config": {"period_seconds": 3600}})
        assert httpx.get(f"{server.url}/ping/{job['uuid']}/fail").status_code == 200
        page = f"{PUBLIC}/monitors/{job['id']}"
        wanted = {"/slack", "/discord", "/teams", "/pagerduty"}
        wait_for(lambda: wanted <= {r.path for r in receiver.requests} and smtp.messages, "every channel")
        bodies = {r.path: r.json() for r in receiver.requests}
        slack_text = bodies["/slack"]["blocks"][1]["text"]["text"]
        assert f"<{page}|Source>" in slack_text
        assert bodies["/discord"]["embeds"][0]["url"] == page
        teams_lines = [b["text"] for b in bodies["/teams"]["attachments"][0]["content"]["body"]]
        assert any(f"[Source]({page})" in line for line in teams_lines)
        assert bodies["/pagerduty"]["links"][0]["href"] == page
        (_, _, message), = smtp.messages
        text, html = message.get_payload()  # type: ignore[misc]
        assert f"Source: {page}" in text.get_payload(decode=True).decode()
        assert f'href="{page}"' in html.get_payload(decode=True).decode()
