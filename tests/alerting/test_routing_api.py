"""Receivers and the routing tree edited over the REST API and stored in the database, on the real server:
CRUD, validation errors naming the field, masked secrets kept when sent back, an alert routed by a stored
route to a local webhook, and the routing file (read-only here) reloaded when it changes or on SIGHUP."""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.alerting.conftest import START
from tests.alerting.receivers import HttpReceiver, SmtpReceiver
from tests.conftest import Server, make_token, run_server
from tests.test_cli import CONSOLE_SCRIPT, _environ, _free_port
from watchkeeper.config import AlertingSettings, Settings
from watchkeeper.lib.clock import ManualClock

TOKEN_PATH = "/services/T000/B000/hook-token-123"
HMAC_SECRET = "hmac-secret-456"
SMTP_PASSWORD = "smtp-password-789"


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as http:
        yield http


@pytest.fixture
def fast_server(settings: Settings) -> Iterator[Server]:
    """The server with no routing file (the tree is the database's), its loops running quickly."""
    alerting = AlertingSettings(evaluation_interval_seconds=0.1, dispatch_interval_seconds=0.1)
    with run_server(settings.model_copy(update={"alerting": alerting}), ManualClock(START)) as server:
        yield server


@pytest.fixture
def admin_api(fast_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{fast_server.url}/api/v1", timeout=30,
                      headers={"Authorization": f"Bearer {make_token(fast_server)}"}) as client:
        yield client


def wait_until(what: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def fields_of(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 422, answer.text
    return [e["field"] for e in answer.json()["errors"]]


def test_a_fresh_server_has_the_log_receiver_and_a_root_route_in_the_database(admin_api: httpx.Client) -> None:
    receivers = admin_api.get("/alerting/receivers").json()
    assert receivers["source"] == "database" and receivers["read_only"] is False
    assert [r["name"] for r in receivers["receivers"]] == ["log"]
    tree = admin_api.get("/alerting/routes").json()["route"]
    assert tree["receiver"] == "log" and tree["group_by"] == ["alertname", "project"] and tree["routes"] == []


def test_receivers_and_routes_are_created_read_replaced_and_deleted(fast_server: Server,
                                                                   admin_api: httpx.Client) -> None:
    created = admin_api.post("/alerting/receivers", json={
        "name": "ops", "webhook_configs": [{"url": "https://hooks.example.com/ops", "max_alerts": 5}]})
    assert created.status_code == 201, created.text
    assert created.json()["integrations"] == ["webhook/0"]
    root = admin_api.get("/alerting/routes").json()["route"]
    route = admin_api.post("/alerting/routes", json={
        "parent_id": root["id"], "matchers": ['severity="critical"'], "receiver": "ops", "group_wait": "10s",
        "continue": True})
    assert route.status_code == 201, route.text
    second = admin_api.post("/alerting/routes", json={"parent_id": root["id"], "matchers": ["team=web"],
                                                      "group_by": ["..."], "position": 0}).json()
    tree = admin_api.get("/alerting/routes").json()["route"]
    assert [c["id"] for c in tree["routes"]] == [second["id"], route.json()["id"]]  # position 0 went first
    child = tree["routes"][1]
    assert child["matchers"] == ['severity="critical"'] and child["group_wait"] == "10s" and child["continue"]
    assert child["group_interval"] is None  # inherited

    # A child of a child; then renaming the receiver carries the routes along.
    nested = admin_api.post("/alerting/routes", json={"parent_id": child["id"], "matchers": ['service="db"'],
                                                      "receiver": "ops"}).json()
    renamed = admin_api.put("/alerting/receivers/ops", json={
        "name": "oncall", "webhook_configs": [{"url": "https://hooks.example.com/ops"}]})
    assert renamed.status_code == 200, renamed.text
    assert admin_api.get(f"/alerting/routes/{nested['id']}").json()["receiver"] == "oncall"
    assert admin_api.get("/alerting/receivers/ops").status_code == 404

    replaced = admin_api.put(f"/alerting/routes/{child['id']}", json={
        "matchers": ['severity=~"critical|high"'], "receiver": "oncall", "repeat_interval": "1h", "position": 0})
    assert replaced.status_code == 200, replaced.text
    tree = admin_api.get("/alerting/routes").json()["route"]
    assert tree["routes"][0]["id"] == child["id"] and tree["routes"][0]["repeat_interval"] == "1h"
    assert tree["routes"][0]["group_wait"] is None and tree["routes"][0]["continue"] is False

    # In use: the receiver cannot go; the root cannot go; deleting a route takes its children.
    assert admin_api.delete("/alerting/receivers/oncall").status_code == 409
    assert admin_api.delete(f"/alerting/routes/{tree['id']}").status_code == 409
    assert admin_api.delete(f"/alerting/routes/{child['id']}").status_code == 204
    assert admin_api.get(f"/alerting/routes/{nested['id']}").status_code == 404
    assert admin_api.delete("/alerting/receivers/oncall").status_code == 204
    assert [r["name"] for r in admin_api.get("/alerting/receivers").json()["receivers"]] == ["log"]
    assert admin_api.delete("/alerting/routes/99999").status_code == 404
    from watchkeeper.auth.audit import list_entries

    with fast_server.runtime.engine.connect() as conn:
        entries, _ = list_entries(conn, limit=100)
    assert [(e.action, e.target_id) for e in reversed(entries)] == [
        ("receiver.create", "ops"), ("route.create", str(route.json()["id"])), ("route.create", str(second["id"])),
        ("route.create", str(nested["id"])), ("receiver.update", "oncall"), ("route.update", str(child["id"])),
        ("route.delete", str(child["id"])), ("receiver.delete", "oncall")]
    assert entries[3].details["renamed_from"] == "ops" and entries[0].actor_email is not None


def test_bad_receivers_and_routes_are_422_naming_the_field(admin_api: httpx.Client) -> None:
    root = admin_api.get("/alerting/routes").json()["route"]
    receivers = [
        ({"name": "x", "webhook_configs": [{"max_alerts": 1}]}, "webhook_configs.0.url"),
        ({"name": "x", "email_configs": [{"to": "a@example.com", "smarthost": "mail"}]}, "email_configs.0.smarthost"),
        ({"name": "x", "twilio_configs": [{"account_sid": "AC1", "auth_token": "t", "from": "+1", "to": []}]},
         "twilio_configs.0.to"),
        ({"name": "x", "pagerduty_configs": [{}]}, "pagerduty_configs.0.routing_key"),
        ({"name": "x", "carrier_pigeon_configs": [{}]}, "carrier_pigeon_configs"),
        ({"name": ""}, "name"),
        ({"name": "log"}, "name"),  # taken
        ({"name": "a/b"}, "name"),
        ({"name": "x", "webhook_configs": [{"url": "https://hooks.example.com/••••••"}]}, "webhook_configs.0.url"),
    ]
    for body, field in receivers:
        assert field in fields_of(admin_api.post("/alerting/receivers", json=body)), body
    routes = [
        ({"parent_id": root["id"], "matchers": ["severity=~("]}, "matchers"),
        ({"parent_id": root["id"], "receiver": "nobody"}, "receiver"),
        ({"parent_id": root["id"], "group_wait": "soon"}, "group_wait"),
        ({"parent_id": 99999}, "parent_id"),
        ({"parent_id": root["id"], "mute_time_intervals": ["nights"]}, "mute_time_intervals"),
    ]
    for body, field in routes:
        assert field in fields_of(admin_api.post("/alerting/routes", json=body)), body
    for body, field in (({"matchers": ["a=b"], "receiver": "log"}, "matchers"), ({}, "receiver")):
        assert field in fields_of(admin_api.put(f"/alerting/routes/{root['id']}", json=body)), body
    assert admin_api.get("/alerting/routes").json()["route"]["routes"] == []


def test_secrets_are_masked_and_kept_when_the_masked_value_is_sent_back(fast_server: Server,
                                                                     admin_api: httpx.Client) -> None:
    body = {"name": "team", "webhook_configs": [{"url": f"https://hooks.example.com{TOKEN_PATH}",
                                                 "hmac_secret": HMAC_SECRET}],
            "email_configs": [{"to": "ops@example.com", "smarthost": "smtp.example.com:587", "auth_username": "ops",
                               "auth_password": SMTP_PASSWORD}],
            "slack_configs": [{"api_url": f"https://hooks.slack.com{TOKEN_PATH}", "channel": "#ops"}]}
    created = admin_api.post("/alerting/receivers", json=body)
    assert created.status_code == 201, created.text
    shown = admin_api.get("/alerting/receivers/team")
    for secret in (TOKEN_PATH, HMAC_SECRET, SMTP_PASSWORD):
        assert secret not in shown.text and secret not in created.text
        assert secret not in admin_api.get("/alerting/receivers").text
    view = shown.json()
    assert view["webhook_configs"][0]["url"] == "https://hooks.example.com/••••••"
    assert view["webhook_configs"][0]["hmac_secret"] == "••••••"
    assert view["email_configs"][0]["auth_password"] == "••••••" and view["email_configs"][0]["to"] == "ops@example.com"
    # The masked view sent back with one change: the secrets stay as stored.
    view["email_configs"][0]["to"] = "team@example.com"
    del view["integrations"]
    assert admin_api.put("/alerting/receivers/team", json=view).status_code == 200
    from watchkeeper.alerting.routing_store import get_receiver

    server_engine = fast_server.runtime.engine
    with server_engine.connect() as conn:
        stored = get_receiver(conn, "team")
    assert stored is not None
    assert stored.webhook_configs[0].url == f"https://hooks.example.com{TOKEN_PATH}"
    assert stored.webhook_configs[0].hmac_secret is not None
    assert stored.webhook_configs[0].hmac_secret.get_secret_value() == HMAC_SECRET
    assert stored.email_configs[0].auth_password is not None
    assert stored.email_configs[0].auth_password.get_secret_value() == SMTP_PASSWORD
    assert stored.email_configs[0].to == "team@example.com"
    assert stored.slack_configs[0].api_url == f"https://hooks.slack.com{TOKEN_PATH}"
    # A new value replaces the secret.
    view["webhook_configs"][0]["hmac_secret"] = "a-new-secret"
    admin_api.put("/alerting/receivers/team", json=view)
    with server_engine.connect() as conn:
        again = get_receiver(conn, "team")
    assert again is not None and again.webhook_configs[0].hmac_secret is not None
    assert again.webhook_configs[0].hmac_secret.get_secret_value() == "a-new-secret"


def test_an_alert_routed_by_a_stored_route_reaches_a_local_webhook_signed_with_the_kept_secret(
    fast_server: Server, admin_api: httpx.Client, receiver: HttpReceiver
) -> None:
    created = admin_api.post("/alerting/receivers", json={
        "name": "disks", "webhook_configs": [{"url": f"{receiver.url}/hook/token-1", "hmac_secret": HMAC_SECRET}]})
    assert created.status_code == 201, created.text
    # Saved back masked, as the edit form does: URL and secret are kept.
    view = admin_api.get("/alerting/receivers/disks").json()
    del view["integrations"]
    assert admin_api.put("/alerting/receivers/disks", json=view).status_code == 200
    root = admin_api.get("/alerting/routes").json()["route"]
    route = admin_api.post("/alerting/routes", json={
        "parent_id": root["id"], "matchers": ['alertname="DiskFull"'], "receiver": "disks", "group_wait": "0s",
        "group_by": ["alertname", "instance"]})
    assert route.status_code == 201, route.text
    alerts = [{"labels": {"alertname": "DiskFull", "instance": "db-1", "severity": "critical"},
               "annotations": {"summary": "disk 97% full"}},
              {"labels": {"alertname": "CpuHigh", "instance": "db-1"}}]
    posted = httpx.post(f"{fast_server.url}/api/v2/alerts", json=alerts,
                        headers={"Authorization": admin_api.headers["Authorization"]})
    assert posted.status_code == 200, posted.text
    (request,) = receiver.wait_for(1)
    assert request.path == "/hook/token-1"
    payload = request.json()
    assert payload["receiver"] == "disks" and payload["groupLabels"] == {"alertname": "DiskFull", "instance": "db-1"}
    assert [a["labels"]["alertname"] for a in payload["alerts"]] == ["DiskFull"]
    expected = "sha256=" + hmac.new(HMAC_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Watchkeeper-Signature"] == expected
    # The test button of the API goes to the same place.
    assert admin_api.post("/alerting/receivers/disks/test").status_code == 202
    (_, test) = receiver.wait_for(2)
    assert test.json()["alerts"][0]["labels"]["alertname"] == "TestNotification"


def test_an_email_channel_added_over_the_api_logs_in_with_its_kept_password(admin_api: httpx.Client) -> None:
    with SmtpReceiver(auth=("alerts", SMTP_PASSWORD)) as smtp:
        created = admin_api.post("/alerting/receivers", json={"name": "mail", "email_configs": [{
            "to": "ops@example.com", "smarthost": smtp.smarthost, "auth_username": "alerts",
            "auth_password": SMTP_PASSWORD, "require_tls": False}]})
        assert created.status_code == 201, created.text
        view = admin_api.get("/alerting/receivers/mail").json()
        assert view["email_configs"][0]["auth_password"] == "••••••"
        del view["integrations"]
        view["email_configs"][0]["to"] = "team@example.com"
        assert admin_api.put("/alerting/receivers/mail", json=view).status_code == 200
        assert admin_api.post("/alerting/receivers/mail/test").status_code == 202
        with smtp.recorder.arrived:
            assert smtp.recorder.arrived.wait_for(lambda: smtp.messages, 20)
        (_, recipients, message) = smtp.messages[0]
        assert recipients == ["team@example.com"] and "TestNotification" in str(message["Subject"])


# --- the routing file ---------------------------------------------------------------------------------


def write_routing(path: Path, receiver: str, url: str) -> None:
    path.write_text(yaml.safe_dump({
        "route": {"receiver": "log", "group_wait": "0s", "group_by": ["alertname"],
                  "routes": [{"matchers": ['alertname="DiskFull"'], "receiver": receiver}]},
        "receivers": [{"name": "log", "log_configs": [{}]}, {"name": receiver, "webhook_configs": [{"url": url}]}],
    }))


def test_with_a_routing_file_the_api_is_read_only_and_the_file_is_reloaded_when_it_changes(
    settings: Settings, tmp_path: Path, receiver: HttpReceiver
) -> None:
    path = tmp_path / "alerting.yml"
    write_routing(path, "alpha", f"{receiver.url}/alpha")
    alerting = AlertingSettings(config_file=path, evaluation_interval_seconds=0.1, dispatch_interval_seconds=0.1)
    with run_server(settings.model_copy(update={"alerting": alerting}), ManualClock(START)) as server, \
            httpx.Client(base_url=f"{server.url}/api/v1", timeout=30,
                         headers={"Authorization": f"Bearer {make_token(server)}"}) as api:
        shown = api.get("/alerting/receivers").json()
        assert shown["source"] == "file" and shown["read_only"] and shown["file"] == str(path)
        assert [r["name"] for r in shown["receivers"]] == ["log", "alpha"]
        tree = api.get("/alerting/routes").json()["route"]
        assert tree["routes"][0]["receiver"] == "alpha" and "id" not in tree
        refused = api.post("/alerting/receivers", json={"name": "x"})
        assert refused.status_code == 409 and str(path) in refused.json()["detail"]
        assert api.post("/alerting/routes", json={"parent_id": 1}).status_code == 409

        write_routing(path, "bravo", f"{receiver.url}/bravo")
        wait_until(lambda: [r["name"] for r in api.get("/alerting/receivers").json()["receivers"]] == ["log", "bravo"])
        post = httpx.post(f"{server.url}/api/v2/alerts", json=[{"labels": {"alertname": "DiskFull"}}],
                          headers={"Authorization": api.headers["Authorization"]})
        assert post.status_code == 200
        assert receiver.wait_for(1)[0].path == "/bravo"

        path.write_text("route: {receiver: nobody}\nreceivers: [{name: log}]\n")  # a mistake: kept out
        bad = wait_until(lambda: (r := api.get("/alerting/receivers").json())["file_error"] and r)
        assert "no receiver named 'nobody'" in bad["file_error"] and [r["name"] for r in bad["receivers"]] == [
            "log", "bravo"]


def settings_file(tmp_path: Path, routing: Path, **alerting: Any) -> Path:
    """A settings file naming the routing file (WATCHKEEPER_ALERTING__CONFIG_FILE cannot: a name ending in
    _FILE is read as "the value is in this file")."""
    path = tmp_path / "watchkeeper.yml"
    path.write_text(yaml.safe_dump({"alerting": {"config_file": str(routing), **alerting}}))
    return path


def _start_serve(settings: Settings, port: int, config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(CONSOLE_SCRIPT), "--config", str(config), "--data-dir", str(settings.data_dir), "serve", "--port",
         str(port)],
        env=_environ(settings, WATCHKEEPER_LOG_LEVEL="warning"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_serve_reloads_the_routing_file_on_sighup(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "alerting.yml"
    write_routing(path, "alpha", "https://hooks.example.com/a")
    port = _free_port()
    process = _start_serve(settings, port, settings_file(tmp_path, path, dispatch_interval_seconds=0.1))
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _healthy(base, process))
        token = subprocess.run(
            [str(CONSOLE_SCRIPT), "--data-dir", str(settings.data_dir), "token", "create", "sighup"],
            env=_environ(settings), capture_output=True, text=True, timeout=60, check=True,
        ).stdout.strip().splitlines()[-1]
        api = httpx.Client(base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30)

        def names() -> list[str]:
            return [r["name"] for r in api.get("/alerting/receivers").json()["receivers"]]

        assert names() == ["log", "alpha"]
        # The same size, modification time and inode: only the signal can tell the server.
        stat = path.stat()
        with path.open("r+") as file:
            text = file.read()
            file.seek(0)
            file.write(text.replace("alpha", "omega"))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        time.sleep(1.0)  # ten dispatch rounds
        assert names() == ["log", "alpha"]
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: names() == ["log", "omega"])
        assert process.poll() is None  # SIGHUP did not end it
        api.close()
    finally:
        _stop(process)


def _healthy(base: str, process: subprocess.Popen[str]) -> bool:
    assert process.poll() is None, process.stderr.read() if process.stderr else ""
    try:
        return httpx.get(f"{base}/health").status_code == 200
    except httpx.TransportError:
        return False


def test_config_check_rejects_the_routing_file_that_serve_rejects(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "alerting.yml"
    path.write_text(yaml.safe_dump({
        "route": {"receiver": "log", "routes": [{"matchers": ['severity="critical"'], "receiver": "pager"}]},
        "receivers": [{"name": "log", "log_configs": [{}]}],
    }))
    config = settings_file(tmp_path, path)
    check_command = [str(CONSOLE_SCRIPT), "--config", str(config), "--data-dir", str(settings.data_dir), "config",
                     "check"]
    check = subprocess.run(check_command, env=_environ(settings), capture_output=True, text=True, timeout=60)
    serve = _start_serve(settings, _free_port(), config)
    try:
        _, serve_err = serve.communicate(timeout=60)
    finally:
        if serve.poll() is None:
            _stop(serve)
    problem = "route.routes.0.receiver: no receiver named 'pager'"
    assert serve.returncode == 2 and problem in serve_err, serve_err
    assert check.returncode == 2 and problem in check.stderr and str(path) in check.stderr, check.stdout + check.stderr
    assert "Traceback" not in check.stderr + serve_err

    path.write_text(path.read_text().replace("pager", "log"))
    fixed = subprocess.run(check_command, env=_environ(settings), capture_output=True, text=True, timeout=60)
    assert fixed.returncode == 0 and "configuration OK" in fixed.stdout
