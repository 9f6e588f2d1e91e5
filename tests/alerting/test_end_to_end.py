"""End to end on the real server: errors sent with sentry-sdk, and alerts posted like Prometheus does,
reach a local webhook receiver once per group. The server runs on a manual clock (ingest stamps events
with it, rules and group timers read it); the alerting loops run in the server as in production."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sentry_sdk
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.alerting.conftest import START
from tests.alerting.receivers import HttpReceiver
from tests.conftest import Server, make_project, make_token, run_server
from watchkeeper.alerting.incidents import Incident, list_incidents
from watchkeeper.config import AlertingSettings, Settings
from watchkeeper.lib.clock import ManualClock


def routing_file(tmp_path: Path, hook: str) -> Path:
    path = tmp_path / "alerting.yml"
    path.write_text(yaml.safe_dump({
        "route": {"receiver": "log", "group_by": ["alertname", "project"], "group_wait": "0s",
                  "routes": [{"matchers": ['alertname=~"Error spike|DiskFull"'], "receiver": "hook"}]},
        "receivers": [{"name": "log", "log_configs": [{}]},
                      {"name": "hook", "webhook_configs": [{"url": hook, "hmac_secret": "k"}]}],
    }))
    return path


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as http:
        yield http


@pytest.fixture
def alerting_server(settings: Settings, tmp_path: Path, receiver: HttpReceiver) -> Iterator[Server]:
    alerting = AlertingSettings(config_file=routing_file(tmp_path, f"{receiver.url}/hook"),
                                evaluation_interval_seconds=0.1, dispatch_interval_seconds=0.1,
                                incident_interval_seconds=0.2)
    with run_server(settings.model_copy(update={"alerting": alerting}), ManualClock(START)) as server:
        yield server


def incidents_of(server: Server) -> list[Incident]:
    with server.runtime.engine.connect() as conn:
        return list_incidents(conn)


def send_errors(dsn: str, count: int) -> None:
    client = sentry_sdk.Client(dsn=dsn, default_integrations=False)
    with sentry_sdk.new_scope() as scope:
        scope.set_client(client)
        for index in range(count):
            try:
                raise RuntimeError(f"payment provider down ({index})")
            except RuntimeError:
                sentry_sdk.capture_exception()
    client.flush(timeout=10)
    client.close(timeout=10)


def test_an_error_spike_sent_with_sentry_sdk_notifies_once_per_group(alerting_server: Server,
                                                                     receiver: HttpReceiver) -> None:
    backend = make_project(alerting_server, "Backend")
    send_errors(backend.dsn, 15)
    (first,) = receiver.wait_for(1)
    # A second project's spike: by the time its notification arrives the dispatcher has looked at the
    # first group many times, and must not have notified it again.
    frontend = make_project(alerting_server, "Frontend")
    send_errors(frontend.dsn, 12)
    requests = receiver.wait_for(2)
    payloads = [r.json() for r in requests]
    assert len(requests) == 2
    assert [p["groupLabels"] for p in payloads] == [{"alertname": "Error spike", "project": "backend"},
                                                   {"alertname": "Error spike", "project": "frontend"}]
    alert = payloads[0]["alerts"][0]
    assert alert["status"] == "firing" and alert["labels"]["severity"] == "high"
    # The value when it fired: the evaluator may look while the SDK is still sending (11 to 15).
    summary = re.fullmatch(r"backend: (\d+)\.0 errors per minute \(more than 10\)", alert["annotations"]["summary"])
    assert summary is not None and 10 < int(summary.group(1)) <= 15
    assert first.headers["X-Watchkeeper-Signature"].startswith("sha256=")
    # Each group's spike (severity high) opened one incident.
    deadline = time.monotonic() + 15
    while len(incidents_of(alerting_server)) < 2:
        assert time.monotonic() < deadline, "no incident for each group"
        time.sleep(0.05)
    opened = sorted(incidents_of(alerting_server), key=lambda i: i.project_id or 0)
    assert [(i.project_id, i.severity, i.state) for i in opened] == [
        (backend.id, "high", "triggered"), (frontend.id, "high", "triggered")]
    assert opened[0].title.startswith("backend: ") and opened[1].title.startswith("frontend: ")  # the summary
    assert len(receiver.requests) == 2  # still exactly one notification per group
    metrics = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(httpx.get(f"{alerting_server.url}/metrics").text)
               for s in family.samples}
    assert metrics[("watchkeeper_alert_evaluation_seconds_count", ())] >= 2
    assert metrics[("watchkeeper_alerts", (("state", "firing"),))] >= 2


def test_prometheus_style_alerts_are_routed_and_silenced(alerting_server: Server, receiver: HttpReceiver) -> None:
    token = make_token(alerting_server)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=alerting_server.url, headers=headers, timeout=30) as api:
        silence = {"matchers": [{"name": "alertname", "value": "DiskFull", "isRegex": False}],
                   "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2026-01-01T01:00:00Z",
                   "createdBy": "ops", "comment": "disk swap tonight"}
        created = api.post("/api/v2/silences", json=silence)
        assert created.status_code == 200, created.text
        alert: dict[str, Any] = {"labels": {"alertname": "DiskFull", "instance": "db1", "severity": "high"},
                                 "annotations": {"summary": "db1 disk 95 %"}, "generatorURL": "http://prom/graph"}
        assert api.post("/api/v2/alerts", json=[alert]).status_code == 200
        (listed,) = api.get("/api/v2/alerts").json()
        assert listed["status"] == {"state": "suppressed", "silencedBy": [created.json()["silenceID"]],
                                    "inhibitedBy": []}
        assert listed["receivers"] == [{"name": "hook"}]
        assert api.delete(f"/api/v2/silence/{created.json()['silenceID']}").status_code == 200
        (request,) = receiver.wait_for(1)
    body = request.json()
    assert body["groupKey"] == '{}/{alertname=~"Error spike|DiskFull"}:{alertname="DiskFull"}'
    assert body["alerts"][0]["generatorURL"] == "http://prom/graph"
    assert body["alerts"][0]["endsAt"] == "2026-01-01T00:05:00Z"  # now + resolve_timeout


def test_a_test_notification_goes_through_every_integration(alerting_server: Server,
                                                             receiver: HttpReceiver) -> None:
    token = make_token(alerting_server)
    with httpx.Client(base_url=alerting_server.url, headers={"Authorization": f"Bearer {token}"}) as api:
        answer = api.post("/api/v1/alerting/receivers/hook/test")
        assert answer.status_code == 202 and len(answer.json()["queued"]) == 1
        (request,) = receiver.wait_for(1)
        assert api.post("/api/v1/alerting/receivers/nobody/test").status_code == 404
        entries = api.get("/api/v1/audit-log").json()["entries"]
        assert [e["target_id"] for e in entries if e["action"] == "channel.test"] == ["hook"]
        shown = api.get("/api/v1/alerting/receivers").json()["receivers"]
        assert [(r["name"], r["integrations"]) for r in shown] == [("log", ["log/0"]), ("hook", ["webhook/0"])]
        assert shown[1]["webhook_configs"][0]["hmac_secret"] == "••••••"
    body = request.json()
    assert body["alerts"][0]["labels"]["alertname"] == "TestNotification"
    assert body["alerts"][0]["annotations"]["summary"].startswith("Test notification requested by admin-")
